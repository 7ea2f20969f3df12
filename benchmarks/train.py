"""Training throughput on CPU: iterations/s of ``sruscale.training.fit`` at batch 16, LR patch 48.

Runs the real trainer (in-memory uint8 crops, forward, L1, backward, Adam step) on synthetic
images in a temporary folder; the first ``--warmup`` iterations are excluded from the timing.
FSRCNN trains on Y (in_channels = 1), EDSR-baseline on RGB.

    PYTHONPATH=. nice python benchmarks/train.py [--iters 10] [--warmup 3] [--threads N] [--models fsrcnn edsr-baseline]
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sruscale.models import REGISTRY
from sruscale.training import fit, parse_config

CASES = {
    "fsrcnn": {"in_channels": 1, "d": 56, "s": 12, "m": 4, "residual": True},
    "edsr-baseline": {"in_channels": 3, "blocks": 16, "features": 64},
    "espcn": {"in_channels": 1, "features": [64, 32], "residual": True},
}


def _images(folder: Path, n: int = 8, size: int = 320) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"{i}.png")


def bench(
    name: str, hparams: dict, *, scale: int, batch: int, patch: int, iters: int, warmup: int, root: Path
) -> float:
    """Iterations per second after ``warmup`` iterations."""
    cfg = parse_config(
        {
            "iterations": warmup + iters,
            "model": {"name": name, "scale": scale, "hparams": hparams},
            "data": {"train_hr": [str(root / "hr")], "patch_size": patch, "batch_size": batch},
            "optim": {"lr": 1e-4},
            "loss": [{"type": "l1"}],
            "checkpoint": {"every": 10**9},
            "log": {"every": warmup, "tensorboard": False},
        }
    )
    out = root / f"run-{name}"
    t0 = time.perf_counter()
    fit(cfg, out_dir=out, device="cpu")
    total = time.perf_counter() - t0
    with (out / "train.csv").open() as f:
        rows = list(csv.DictReader(f))
    last = float(rows[-1]["it_s"])  # window of the last `iters` iterations (log.every = warmup)
    print(f"  {name}: {last:.3f} it/s ({batch * last:.1f} patches/s); whole fit incl. startup {total:.1f} s")
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fsrcnn", "edsr-baseline"])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, x{args.scale}, batch {args.batch}, "
          f"LR patch {args.patch}, {args.iters} timed iterations after {args.warmup} warmup")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _images(root / "hr")
        for name in args.models:
            if name not in REGISTRY:
                print(f"  {name}: not registered, skipped")
                continue
            iters = args.iters if name != "edsr-baseline" else max(3, args.iters // 2)
            bench(name, CASES.get(name, {}), scale=args.scale, batch=args.batch, patch=args.patch, iters=iters,
                  warmup=args.warmup, root=root)


if __name__ == "__main__":
    main()
