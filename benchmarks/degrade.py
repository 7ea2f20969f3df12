"""Benchmark ``sruscale degrade``: images/s for the ``bi`` and ``realistic`` presets on 1 and 2 worker
processes, and our MATLAB bicubic against OpenCV's ``resize(INTER_CUBIC)`` on a 2048x2048 image.

    python benchmarks/degrade.py                 # 24 synthetic 256x256 PNGs
    python benchmarks/degrade.py --data ../shared/data/Set5
    nice python benchmarks/degrade.py --images 48 --size 384

Worker timings are wall time of the whole job (process start-up included: each spawned worker
imports torch once). The resize comparison runs both libraries on one thread, float32 RGB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from sruscale.degradations import Pipeline, degrade_folder
from sruscale.resize import imresize


def make_images(folder: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)  # smooth structure + edges
        img.save(folder / f"synthetic_{i:03d}.png")


def bench_presets(hr_dir: Path, scale: int, workers: list[int]) -> None:
    n = len([p for p in hr_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp")])
    print(f"\n{n} HR images from {hr_dir}, scale x{scale}")
    print(f"{'preset':<10} {'workers':>7} {'seconds':>8} {'images/s':>9}")
    for preset in ("bi", "realistic"):
        pipeline = Pipeline.preset(preset, scale)
        for w in workers:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                summary = degrade_folder(hr_dir, Path(out) / "pairs", pipeline=pipeline, seed=0, workers=w)
                wall = time.perf_counter() - start
            if not summary.ok:
                raise SystemExit(f"failures: {summary.failures}")
            print(f"{preset:<10} {w:>7} {wall:>8.2f} {summary.processed / wall:>9.2f}")


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (kernel weights are cached after the first call)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_resize(size: int = 2048, factor: int = 4) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    a = np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    out = size // factor
    ours = _median_time(lambda: imresize(x, 1 / factor), 5)
    cubic = _median_time(lambda: cv2.resize(a, (out, out), interpolation=cv2.INTER_CUBIC), 20)
    area = _median_time(lambda: cv2.resize(a, (out, out), interpolation=cv2.INTER_AREA), 20)
    print(f"\n{size}x{size} RGB float32 -> x1/{factor}, one thread each (median)")
    print(f"  sruscale imresize (MATLAB bicubic, antialiased) {ours * 1e3:8.1f} ms")
    print(f"  cv2.resize INTER_CUBIC (no antialiasing)        {cubic * 1e3:8.1f} ms   ours/cv2 = {ours / cubic:.1f}")
    print(f"  cv2.resize INTER_AREA                           {area * 1e3:8.1f} ms   ours/cv2 = {ours / area:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="HR folder (default: synthetic images)")
    parser.add_argument("--images", type=int, default=24, help="number of synthetic images")
    parser.add_argument("--size", type=int, default=256, help="synthetic image side in pixels")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-presets", action="store_true", help="only the resize comparison")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, {torch.get_num_threads()} torch threads available")
    if not args.skip_presets:
        if args.data is not None:
            bench_presets(args.data, args.scale, args.workers)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                make_images(Path(tmp), args.images, args.size)
                bench_presets(Path(tmp), args.scale, args.workers)
    bench_resize()


if __name__ == "__main__":
    main()
