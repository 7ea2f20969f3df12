"""Bundle a finished training run into weights/: copy, score on the benchmarks, update the manifest.

    python train/bundle.py runs/fsrcnn_x2 --name fsrcnn-x2

Copies ``RUN/best.safetensors`` to ``weights/<name with _>.safetensors``, scores it with the
paper protocol (``sruscale.evaluation``: modcrop, MATLAB bicubic LR, Y, crop = scale) on Set5,
Set14, BSD100 (and Urban100 with --urban) from ../shared/data, writes the scores into the
weights' card and adds or replaces the entry in weights/manifest.toml with its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tomllib
from pathlib import Path

from sruscale.checkpoint import load_model_file, read_metadata, save_model
from sruscale.evaluation import Protocol, evaluate_model

ROOT = Path(__file__).resolve().parents[1]


def _toml_value(v: object) -> str:
    return json.dumps(v) if not isinstance(v, float) else f"{v:.4f}"


def write_manifest(entries: list[dict[str, object]], path: Path) -> None:
    lines = ["# Bundled weights: see sruscale/weights.py for the format and train/README.md for recipes.", ""]
    for e in entries:
        lines.append("[[weights]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in e.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training run folder (holds best.safetensors)")
    ap.add_argument("--name", required=True, help="manifest name, e.g. fsrcnn-x2")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--urban", action="store_true", help="also score Urban100 (slow on CPU)")
    args = ap.parse_args()

    src = args.run / "best.safetensors"
    meta = read_metadata(src)
    model = load_model_file(src)
    sets = ["Set5", "Set14", "BSD100"] + (["Urban100"] if args.urban else [])
    protocol = Protocol.make("paper", scale=model.scale)
    results = evaluate_model(model, [args.data / s for s in sets], protocol)
    scores = {r.name: {"psnr_y": round(r.mean("psnr"), 3), "ssim_y": round(r.mean("ssim"), 4)} for r in results}
    for name, s in scores.items():
        print(f"{name:10s} x{model.scale}: {s['psnr_y']:.2f} dB / {s['ssim_y']:.4f}")  # noqa: T201

    card = dict(meta["card"])
    card["benchmarks"] = {"protocol": protocol.as_dict(), "scores": scores}
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
            "set5_psnr": scores["Set5"]["psnr_y"],
        }
    )
    write_manifest(sorted(entries, key=lambda e: (e["scale"], e["name"])), manifest)
    logs = ROOT / "train" / "logs"
    logs.mkdir(exist_ok=True)
    shutil.copyfile(args.run / "val.csv", logs / f"{args.name}_val.csv")  # the validation curve
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {digest[:12]}...)")  # noqa: T201


if __name__ == "__main__":
    main()
