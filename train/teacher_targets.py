"""Distillation targets, computed once: a teacher network's output on the training LR, blended with HR.

    python train/teacher_targets.py --teacher span-x4 --scale 4 --alpha 0.5 --out runs/distill_x4

For every image of the training sets (T91 + BSD200, the "291"; never a benchmark set): the HR is
modcropped to the scale, its LR is MATLAB bicubic rounded to 8 bits (what ``sruscale degrade``
writes and what the recipes train on), the teacher upscales that LR through sruscale's own pipeline
(``load_model(NAME)``: a pretrained network of a registry package, e.g. SPAN), and the target is
``alpha * HR + (1 - alpha) * teacher``, rounded to 8 bits. Writes ``OUT/LR_xS/{set}/NAME.png`` and
``OUT/target/{set}/NAME.png``; a recipe then trains on ``train_hr = OUT/target/...`` with
``train_lr = OUT/LR_xS/...`` (pairs matched by name). Existing files are kept (rerun to resume).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from sruscale._fs import atomic_write
from sruscale.evaluation.protocol import benchmark_lr, modcrop
from sruscale.image import list_images, read_image
from sruscale.tiling import upscale_tensor
from sruscale.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
SETS = ("T91", "BSD200")


def _save(path: Path, x: torch.Tensor) -> None:
    """``(1, 3, H, W)`` in [0, 1] as an 8-bit PNG (atomic)."""
    from PIL import Image

    arr = (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="span-x4", help="model name (a pretrained network, e.g. span-x4)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of HR in the target (0 = teacher only)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    teacher = load_model(args.teacher, scale=args.scale)
    print(f"teacher: {teacher.origin}")  # noqa: T201
    s, done = args.scale, 0
    for name in SETS:
        for path in list_images(args.data / name):
            lr_path = args.out / f"LR_x{s}" / name / f"{path.stem}.png"
            target_path = args.out / "target" / name / f"{path.stem}.png"
            if lr_path.is_file() and target_path.is_file():
                continue
            hr = read_image(path).pixels.float()
            if hr.shape[1] == 1:
                hr = hr.expand(-1, 3, -1, -1)
            hr = modcrop(hr, s)
            lr = benchmark_lr(hr, s).float()
            sr = upscale_tensor(teacher, lr, tile=None, overlap=None, precision="fp32", device="cpu")
            target = args.alpha * hr + (1 - args.alpha) * sr.clamp(0, 1)
            _save(lr_path, lr)
            _save(target_path, target)
            done += 1
    print(f"wrote {done} pairs under {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
