"""Bundle weights into weights/: fold, score with the benchmark protocol, write the card and the manifest.

    python train/bundle.py runs/fsrcnn_x2 --name fsrcnn-x2 [--urban] [--cpu-hours 0.4]
    python train/bundle.py --rescore weights/fsrcnn_x2.safetensors --name fsrcnn-x2   # re-score, no run folder

From a run: takes ``RUN/best.safetensors``, folds re-parameterised models (``model.for_inference()``),
scores it with :mod:`sruscale.evaluation.protocol` (the one benchmark protocol, what ``sruscale
evaluate`` computes) on Set5, Set14, BSD100 (and Urban100 with ``--urban``) from ../shared/data, writes
``weights/<name with _>.safetensors`` whose card keeps the run's fields (recipe text, command,
iterations, CPU-hours when given) plus the scores, adds or replaces the manifest entry (sha256,
``set5_psnr``), copies the run's validation curve to ``train/logs/<name>_val.csv`` and writes the
scores to ``train/logs/<name>_scores.csv``. ``--rescore`` does the same for a bundled file (no curve).
Prints the README table row.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

from sruscale._fs import atomic_write
from sruscale.evaluation import BENCHMARK_DEGRADATION, Protocol, evaluate_model
from sruscale.models.profile import count_parameters, flops_per_megapixel
from sruscale.weights import load_model, save_model
from sruscale.weights._files import read_metadata

ROOT = Path(__file__).resolve().parents[1]
SETS = ("Set5", "Set14", "BSD100")
PSNR_DIGITS, SSIM_DIGITS = 3, 4  # stored; tables print 2 and 4


def _toml_value(v: object) -> str:
    return json.dumps(v) if not isinstance(v, float) else repr(v)


def write_manifest(entries: list[dict[str, object]], path: Path) -> None:
    lines = ["# Bundled weights: see sruscale/weights.py for the format and train/README.md for recipes.", ""]
    for e in entries:
        lines.append("[[weights]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in e.items()]
        lines.append("")
    with atomic_write(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


def score(weights: Path, data: Path, sets: tuple[str, ...]) -> tuple[Any, dict[str, dict[str, float]], Protocol]:
    """The folded model of ``weights`` and its protocol scores per set (rounded as stored)."""
    model = load_model(weights=weights).for_inference()
    protocol = Protocol.make("paper", scale=model.scale)
    results = evaluate_model(model, [data / s for s in sets], protocol)
    scores = {
        r.name: {
            "psnr": round(r.mean("psnr"), PSNR_DIGITS),
            "ssim": round(r.mean("ssim"), SSIM_DIGITS),
            "images": len(r.images),
        }
        for r in results
    }
    return model, scores, protocol


def heldout_scores(model: Any, data: Path) -> dict[str, Any]:
    """Scores on the real-photo held-out set of ``train/realworld_eval.py`` (blur + noise + JPEG), at the
    model's scale."""
    from realworld_eval import PIPELINE, SEED, heldout_images
    from realworld_eval import SETS as HELDOUT_SETS
    from realworld_eval import score as heldout_score

    from sruscale.evaluation.protocol import run_model

    def up(img: Any) -> Any:
        return run_model(model, img.lr, bit_depth=img.bit_depth)

    scores = {}
    for name in HELDOUT_SETS:
        psnr, ssim = heldout_score(up, heldout_images(data, name, model.scale), model.scale)
        scores[name] = {"psnr": round(psnr, PSNR_DIGITS), "ssim": round(ssim, SSIM_DIGITS)}
    return {"pipeline": str(PIPELINE.relative_to(ROOT)), "seed": SEED, "scores": scores}


def readme_row(name: str, scores: dict[str, dict[str, float]]) -> str:
    cells = [f"{scores[s]['psnr']:.2f} / {scores[s]['ssim']:.4f}" if s in scores else "" for s in SETS]
    return f"| `{name}` | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?", help="training run folder (holds best.safetensors and val.csv)")
    ap.add_argument("--rescore", type=Path, help="re-score this weights file instead of a run's best")
    ap.add_argument("--name", required=True, help="manifest name, e.g. fsrcnn-x2")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--urban", action="store_true", help="also score Urban100 (slow on CPU)")
    ap.add_argument("--cpu-hours", type=float, help="training cost to record in the card")
    ap.add_argument("--family", default="", help="special-purpose family of the entry (e.g. realworld)")
    ap.add_argument("--denoise", type=float, help="the entry's denoise strength within its family (0 or 1)")
    ap.add_argument("--heldout", action="store_true", help="also score the real-photo held-out set (realworld_eval.py)")
    args = ap.parse_args()
    if (args.run is None) == (args.rescore is None):
        ap.error("give a run folder or --rescore FILE (one of them)")

    src = args.rescore if args.rescore is not None else args.run / "best.safetensors"
    meta = read_metadata(src)
    sets = SETS + (("Urban100",) if args.urban else ())
    model, scores, protocol = score(src, args.data, sets)
    for name, s in scores.items():
        print(f"{name:10s} x{model.scale}: {s['psnr']:.3f} dB / {s['ssim']:.4f}")  # noqa: T201

    card = dict(meta.get("card", {}))
    card["benchmarks"] = {"protocol": protocol.as_dict(), "degradation": BENCHMARK_DEGRADATION, "scores": scores}
    if args.cpu_hours is not None:
        card["cpu_hours"] = args.cpu_hours
    if args.heldout:
        card["heldout"] = heldout_scores(model, args.data)
        print("held-out:", card["heldout"]["scores"])  # noqa: T201
    val = card.get("validation", {}).get("best")
    val_dir = Path(card.get("data", {}).get("val", "")).name
    val_lr = card.get("recipe", {}).get("config", {}).get("val", {}).get("lr")
    if val and val_dir in scores and not val_lr:  # the run's best, validated on bicubic LR: the protocol's score
        card["validation"] = {"best": {"iter": val.get("iter"), "psnr": scores[val_dir]["psnr"],
                                       "ssim": scores[val_dir]["ssim"], "set": val_dir}}  # fmt: skip
    out = ROOT / "weights" / (args.name.replace("-", "_") + ".safetensors")
    save_model(model, out, extra=card)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()

    manifest = ROOT / "weights" / "manifest.toml"
    old = tomllib.loads(manifest.read_text(encoding="utf-8")).get("weights", []) if manifest.exists() else []
    entries = [e for e in old if e["name"] != args.name]
    entries.append(
        {
            "name": args.name,
            "file": out.name,
            "arch": meta["arch"],
            "scale": model.scale,
            "sha256": digest,
            "recipe": card.get("recipe", {}).get("path", ""),
            "set5_psnr": scores["Set5"]["psnr"],
            "params": count_parameters(model),
            "gflops_per_mp": round(flops_per_megapixel(model), 3),  # the `fast` alias picks the lowest
        }
        | ({"family": args.family} if args.family else {})
        | ({"denoise": args.denoise} if args.denoise is not None else {})
    )
    write_manifest(sorted(entries, key=lambda e: (e["scale"], e["name"])), manifest)

    logs = ROOT / "train" / "logs"
    if args.run is not None:
        shutil.copyfile(args.run / "val.csv", logs / f"{args.name}_val.csv")  # the validation curve
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "images", "psnr", "ssim", "protocol", "crop_border"])
    for name, s in scores.items():
        writer.writerow([name, s["images"], f"{s['psnr']:.{PSNR_DIGITS}f}", f"{s['ssim']:.{SSIM_DIGITS}f}",
                         protocol.name, protocol.crop_border])  # fmt: skip
    with atomic_write(logs / f"{args.name}_scores.csv") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {digest[:12]}...)")  # noqa: T201
    print("README row:", readme_row(args.name, scores))  # noqa: T201


if __name__ == "__main__":
    main()
