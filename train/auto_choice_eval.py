"""Evidence for the per-file model choice (``sruscale upscale`` without ``--model``).

    python train/auto_choice_eval.py validate [--images 25]   # choose the thresholds
    python train/auto_choice_eval.py heldout                  # the README table
    python train/auto_choice_eval.py picture                  # docs/auto_choice_jpeg.png

Inputs are bicubic x4 LR images (MATLAB imresize, 8-bit) saved either as PNG (clean) or as JPEG at
a quality (Pillow's libjpeg, 4:2:0), as photos from the web or a phone come. ``validate`` scores, on
Set5 + the first images of Urban100 (never Set14 or BSD100), each input kind (PNG, JPEG q 30 / 50 /
70 / 90) with the clean default and with ``realworld`` at ``--denoise`` 0 ... 1, and writes
``train/logs/auto_choice_validation.csv`` (Y-PSNR per image, kind and method) from which the
thresholds in :mod:`sruscale.input_quality` are read. ``heldout`` builds a mixed set from Set14 +
BSD100 (per image, seeded: PNG, or JPEG at a quality drawn from 30..95) and compares the automatic
choice with always-clean and always-``realworld`` (default ``--denoise``): mean Y-PSNR and SSIM,
``train/logs/auto_choice_heldout.csv`` and the README block ``auto-choice-table``.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from readme_table import write_block

from sruscale._fs import atomic_write
from sruscale.evaluation import Protocol
from sruscale.evaluation.protocol import benchmark_lr, modcrop, run_model, score_pair
from sruscale.image import list_images, read_image
from sruscale.input_quality import input_quality, route
from sruscale.weights import DEFAULT_DENOISE, choose_model, load_model

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "train" / "logs"
SCALE = 4
KINDS = ("png", 30, 50, 70, 90)
DENOISE = (0.0, 0.25, 0.5, 0.75, 1.0)


def degrade(hr: torch.Tensor, kind: str | int, folder: Path, name: str) -> Path:
    """Bicubic x4 LR of ``hr`` (1, 3, H, W), saved as PNG or as JPEG at quality ``kind``."""
    lr = (benchmark_lr(hr, SCALE)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{name}.png" if kind == "png" else f"{name}_q{kind}.jpg")
    if not path.is_file():
        Image.fromarray(lr).save(path, **({} if kind == "png" else {"quality": int(kind)}))
    return path


def read_hr(path: Path) -> torch.Tensor:
    hr = read_image(path).pixels.double()
    hr = hr.expand(-1, 3, -1, -1) if hr.shape[1] == 1 else hr
    return modcrop(hr, SCALE)


def psnr_ssim(net: torch.nn.Module, lr_path: Path, hr: torch.Tensor) -> tuple[float, float]:
    lr = read_image(lr_path).pixels.double()
    sr = run_model(net, lr, bit_depth=8).clamp(0, 1)  # type: ignore[arg-type]
    v = score_pair(sr, hr, Protocol.make("paper", scale=SCALE, metrics=("psnr", "ssim")))
    return v["psnr"], v["ssim"]


def validate(data: Path, images: int, work: Path) -> None:
    hrs = list_images(data / "Set5") + list_images(data / "Urban100")[: max(0, images - 5)]
    nets = {"clean": load_model(choose_model(SCALE).name, scale=SCALE)}
    nets |= {f"realworld d={d:g}": load_model("realworld", scale=SCALE, denoise=d) for d in DENOISE}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "kind", "jpeg_q", "noise", *nets])
    for path in hrs:
        hr = read_hr(path)
        for kind in KINDS:
            lr_path = degrade(hr, kind, work / "validate", path.stem)
            q = input_quality(lr_path, read_image(lr_path).pixels)
            scores = [psnr_ssim(net, lr_path, hr)[0] for net in nets.values()]
            w.writerow([path.stem, kind, q.jpeg or "", f"{q.noise:.2f}", *(f"{s:.3f}" for s in scores)])
            print(path.stem, kind, q.describe(), " ".join(f"{s:.2f}" for s in scores), flush=True)  # noqa: T201
    with atomic_write(LOGS / "auto_choice_validation.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def heldout(data: Path, work: Path, readme: Path) -> None:
    rng = random.Random(1)
    clean = load_model(choose_model(SCALE).name, scale=SCALE)
    nets: dict[str, torch.nn.Module] = {"clean": clean}
    for d in DENOISE:
        nets[f"realworld d={d:g}"] = load_model("realworld", scale=SCALE, denoise=d)
    rows: dict[str, list[tuple[float, float]]] = {"always clean": [], f"always realworld (d={DEFAULT_DENOISE:g})": [],
                                                  "automatic": []}  # fmt: skip
    routed = {"clean": 0, "realworld": 0}
    for name in ("Set14", "BSD100"):
        for path in list_images(data / name):
            hr = read_hr(path)
            kind: str | int = "png" if rng.random() < 0.3 else rng.randint(30, 95)
            lr_path = degrade(hr, kind, work / "heldout", path.stem)
            q = input_quality(lr_path, read_image(lr_path).pixels)
            choice = route(q)
            auto = "clean" if choice.model is None else f"realworld d={choice.denoise:g}"
            routed["clean" if choice.model is None else "realworld"] += 1
            rows["always clean"].append(psnr_ssim(nets["clean"], lr_path, hr))
            rows[f"always realworld (d={DEFAULT_DENOISE:g})"].append(
                psnr_ssim(nets[f"realworld d={DEFAULT_DENOISE:g}"], lr_path, hr)
            )
            rows["automatic"].append(psnr_ssim(nets[auto], lr_path, hr))
            print(path.stem, kind, q.describe(), "->", auto, flush=True)  # noqa: T201
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "psnr", "ssim", "images"])
    lines = ["| x4, mixed held-out set (Set14 + BSD100: 30% PNG, else JPEG q 30-95) | Y-PSNR | SSIM |", "|---|---|---|"]
    for label, vals in rows.items():
        p, s = float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals]))
        w.writerow([label, f"{p:.3f}", f"{s:.4f}", len(vals)])
        lines.append(f"| {label} | {p:.2f} | {s:.4f} |")
    lines.append(f"\n({routed['clean']} inputs went to the clean default, {routed['realworld']} to `realworld`.)")
    with atomic_write(LOGS / "auto_choice_heldout.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    print("\n".join(lines))  # noqa: T201
    write_block(readme, "auto-choice-table", "\n".join(lines))


def picture(data: Path, work: Path, path: Path, image: str = "monarch", quality: int = 30) -> None:
    """bicubic | the clean default (what ran before the per-file choice) | automatic | HR on one Set14 image
    saved as a JPEG, where the clean default differs most from HR."""
    from sruscale.evaluation.report import GridRow, write_grid

    hr = read_hr(next((data / "Set14").glob(f"{image}.*")))
    lr_path = degrade(hr, quality, work / "picture", image)
    lr = read_image(lr_path).pixels.double()
    q = input_quality(lr_path, read_image(lr_path).pixels)
    way = route(q)
    panels = []
    for label, net in (("clean default", load_model(choose_model(SCALE).name, scale=SCALE)),
                       (f"automatic: realworld d={way.denoise:g}" if way.model else "automatic: clean",
                        load_model(way.model, scale=SCALE, denoise=way.denoise) if way.model else None),
                       ("bicubic", load_model("bicubic", scale=SCALE))):  # fmt: skip
        sr = run_model(net or load_model(choose_model(SCALE).name, scale=SCALE), lr, bit_depth=8).clamp(0, 1)
        v = score_pair(sr, hr, Protocol.make("paper", scale=SCALE, metrics=("psnr",)))
        panels.append((f"{label}\n{v['psnr']:.2f} dB", sr))
    title = f"Set14/{image} as a JPEG (quality {quality}), x4: {q.describe()}"
    write_grid([GridRow(title=title, panels=[*panels, ("HR", hr)])], path)
    print(f"wrote {path}")  # noqa: T201


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("validate", "heldout", "picture"))
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--images", type=int, default=25, help="validate: Set5 + the first N-5 Urban100 images")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "auto_choice")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    if args.what == "validate":
        validate(args.data, args.images, args.work)
    elif args.what == "heldout":
        heldout(args.data, args.work, args.readme)
    else:
        picture(args.data, args.work, ROOT / "docs" / "auto_choice_jpeg.png")


if __name__ == "__main__":
    main()
