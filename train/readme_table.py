"""Regenerate the README's "Bundled weights" table and the comparison picture in one command.

    python train/readme_table.py [--sets Set5 Set14 BSD100 Urban100] [--grid docs/comparison_x4.png]

Scores bicubic and every bundled benchmark model (``weights/manifest.toml`` entries without a
``family``) at its scale with the one benchmark protocol (:mod:`sruscale.evaluation.protocol`, what
``sruscale evaluate`` computes) on each set in ``../shared/data``, next to the published numbers of
the paper the architecture comes from, the parameters and the GFLOPs per output megapixel. Scores are
cached in ``train/logs/readme_scores.csv`` by the file's sha256, so a rerun scores only new or
changed files (``--rescore`` ignores the cache). The table replaces the lines between
``<!-- weights-table:start -->`` and ``<!-- weights-table:end -->`` in README.md
(:func:`write_block`). The picture shows, for one Urban100 image at x4, the crop where the default
model differs most from HR: bicubic, each bundled x4 model, HR.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from pathlib import Path

import torch

from sruscale._fs import atomic_write
from sruscale.evaluation import Protocol, evaluate_model
from sruscale.evaluation.protocol import run_benchmark_image, score_pair
from sruscale.evaluation.report import GridRow, write_grid
from sruscale.image import read_image
from sruscale.weights import choose_model, load_model
from sruscale.weights._manifest import WeightsEntry, list_weights, verify

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "train" / "logs" / "readme_scores.csv"
SETS = ("Set5", "Set14", "BSD100", "Urban100")

#: published Y-PSNR (Set5, Set14, BSD100, Urban100) of each architecture's paper at full size,
#: as reported in the papers' (or, for bicubic/SRCNN/FSRCNN, VDSR's and LapSRN's) tables
PUBLISHED: dict[tuple[str, int], tuple[str, tuple[float, ...]]] = {
    ("bicubic", 2): ("bicubic", (33.66, 30.24, 29.56, 26.88)),
    ("bicubic", 3): ("bicubic", (30.39, 27.55, 27.21, 24.46)),
    ("bicubic", 4): ("bicubic", (28.42, 26.00, 25.96, 23.14)),
    ("fsrcnn", 2): ("FSRCNN", (37.05, 32.66, 31.53, 29.88)),
    ("fsrcnn", 3): ("FSRCNN", (33.18, 29.37, 28.53, 26.43)),
    ("fsrcnn", 4): ("FSRCNN", (30.72, 27.61, 26.98, 24.62)),
    ("plainsr", 2): ("VDSR (target)", (37.53, 33.03, 31.90, 30.76)),
    ("plainsr", 3): ("VDSR (target)", (33.66, 29.77, 28.82, 27.14)),
    ("plainsr", 4): ("VDSR (target)", (31.35, 28.01, 27.29, 25.18)),
    ("srcnn", 4): ("SRCNN", (30.48, 27.49, 26.90, 24.52)),
    ("vdsr", 4): ("VDSR 20x64", (31.35, 28.01, 27.29, 25.18)),
    ("lapsrn", 4): ("LapSRN", (31.54, 28.19, 27.32, 25.21)),
    ("edsr-baseline", 4): ("EDSR-baseline 16x64", (32.09, 28.58, 27.57, 26.04)),
    ("dbpn", 4): ("D-DBPN", (32.47, 28.82, 27.72, 26.38)),
}


def _read_cache() -> dict[tuple[str, str], dict[str, str]]:
    if not CACHE.is_file():
        return {}
    with CACHE.open(encoding="utf-8") as f:
        return {(r["key"], r["dataset"]): r for r in csv.DictReader(f)}


def _write_cache(rows: dict[tuple[str, str], dict[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["key", "dataset", "images", "psnr", "ssim"], lineterminator="\n")
    w.writeheader()
    for k in sorted(rows):
        w.writerow(rows[k])
    with atomic_write(CACHE) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def scores(
    key: str, model: torch.nn.Module, scale: int, data: Path, sets: tuple[str, ...],
    cache: dict[tuple[str, str], dict[str, str]],
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """``{set: (psnr, ssim)}`` of ``model``, scored with the protocol unless ``cache`` has ``key``."""
    out = {}
    for name in sets:
        if (key, name) not in cache:
            (r,) = evaluate_model(model, [data / name], Protocol.make("paper", scale=scale))  # type: ignore[arg-type]
            cache[(key, name)] = {"key": key, "dataset": name, "images": str(len(r.images)),
                                  "psnr": f"{r.mean('psnr'):.3f}", "ssim": f"{r.mean('ssim'):.4f}"}  # fmt: skip
            _write_cache(cache)
            print(f"  {key} {name}: {r.mean('psnr'):.2f} dB", flush=True)  # noqa: T201
        row = cache[(key, name)]
        out[name] = (float(row["psnr"]), float(row["ssim"]))
    return out


def _params(e: WeightsEntry | None) -> str:
    n = e.number("params") if e is not None else 0
    return "0" if not n else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def table(data: Path, sets: tuple[str, ...], *, rescore: bool) -> str:
    cache = {} if rescore else _read_cache()
    entries = [e for e in list_weights() if not e.family]
    plain_default = {s: max((e for e in entries if e.scale == s and not e.source), key=lambda e: e.set5_psnr or 0).name
                     for s in {e.scale for e in entries}}  # fmt: skip
    lines = [
        "| scale | model | params | GFLOPs/MP | " + " | ".join(sets) + " | published (paper's full-size model) |",
        "|---|---|---|---|" + "---|" * len(sets) + "---|",
    ]
    for scale in sorted({e.scale for e in entries}):
        rows: list[tuple[str, WeightsEntry | None]] = [("bicubic", None)]
        rows += [(e.name, e) for e in sorted(entries, key=lambda e: -(e.set5_psnr or 0)) if e.scale == scale]
        default = choose_model(scale).name
        for name, e in rows:
            key = f"bicubic-x{scale}" if e is None else f"{e.name}@{e.sha256[:12]}"
            if e is not None:
                verify(e)
            got = scores(key, load_model(name, scale=scale), scale, data, sets, cache)
            arch = "bicubic" if e is None else e.arch
            label, pub = PUBLISHED.get((arch, scale), ("", ()))
            published = f"{label}: " + " / ".join(f"{p:.2f}" for p in pub[: len(sets)]) if pub else "-"
            flops = e.number("gflops_per_mp") if e is not None else None
            shown = f"**`{name}`** (default)" if name == default else f"`{name}`"
            if e is not None and e.source:  # a pretrained network of a registry package (the pretrained extra)
                shown = f"`{name}` ({e.source}" + (", the default when installed)" if name == default else ")")
            elif e is not None and any(x.source and x.scale == scale for x in entries) and name == plain_default[scale]:
                shown = f"**`{name}`** (default without the pretrained extra)"
            lines.append(
                f"| x{scale} | {shown} | {_params(e)} | {f'{flops:.1f}' if flops is not None else '-'} | "
                + " | ".join(f"{got[s][0]:.2f} / {got[s][1]:.4f}" for s in sets)
                + f" | {published} |"
            )
    return "\n".join(lines)


def grid(data: Path, path: Path, *, image: str = "img_092") -> None:
    """bicubic | every bundled x4 model | HR on one Urban100 image (crop where the default errs most)."""
    entries = sorted((e for e in list_weights() if not e.family and e.scale == 4), key=lambda e: -(e.set5_psnr or 0))
    default = choose_model(4).name
    entries.sort(key=lambda e: e.name != default)  # second panel: write_grid crops where it errs most
    hr_img = read_image(next((data / "Urban100").glob(f"{image}.*")))
    protocol = Protocol.make("paper", scale=4, metrics=("psnr", "ssim"))
    panels = []
    for name in ["bicubic"] + [e.name for e in entries]:
        hr, _, sr = run_benchmark_image(load_model(name, scale=4), hr_img)
        v = score_pair(sr, hr, protocol)
        panels.append((f"{name}\n{v['psnr']:.2f} dB", sr))
    write_grid([GridRow(title=f"Urban100/{image}, x4 (Y-PSNR of the whole image)", panels=[*panels, ("HR", hr)])], path)


def write_block(readme: Path, block: str, text: str) -> None:
    """Replace the lines between ``<!-- BLOCK:start -->`` and ``<!-- BLOCK:end -->`` of ``readme`` with ``text``."""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    content = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme}: no {start} ... {end} block to replace")
    with atomic_write(readme) as tmp:
        tmp.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", content), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", nargs="+", default=list(SETS), help="benchmark sets (default: all four)")
    ap.add_argument("--rescore", action="store_true", help="ignore the score cache")
    ap.add_argument("--grid", type=Path, help="also write the x4 comparison picture here")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    text = table(args.data, tuple(args.sets), rescore=args.rescore)
    print(text)  # noqa: T201
    write_block(args.readme, "weights-table", text)
    if args.grid is not None:
        grid(args.data, args.grid)
        print(f"wrote {args.grid}")  # noqa: T201


if __name__ == "__main__":
    main()
