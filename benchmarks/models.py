"""Model zoo cost at x4 on a 256x256 input: parameters, GFLOPs per output megapixel, CPU MP/s.

Default (paper) hyperparameters; models without x4 are measured at their largest scale.
MP/s counts output megapixels per second of ``forward`` (RGB in, RGB out) on the CPU, fp32,
median of ``--repeats`` runs after one warm-up. Run with ``nice``; RCAN/EDSR take minutes.

    nice python benchmarks/models.py [--size 256] [--repeats 1] [--threads N] [--only edsr rcan]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sruscale.models import REGISTRY, create_model
from sruscale.models.profile import count_parameters, flops_per_megapixel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only or sorted(REGISTRY)
    print(f"x{args.scale} on {args.size}x{args.size} RGB, CPU fp32, {args.threads} threads, torch {torch.__version__}")
    print(f"| {'model':<14} | scale | {'params':>11} | {'GFLOPs/MP':>9} | {'CPU MP/s':>9} | {'s/image':>8} |")
    print(f"|{'-' * 16}|-------|{'-' * 13}|{'-' * 11}|{'-' * 11}|{'-' * 10}|")
    for name in names:
        cls = REGISTRY[name]
        scale = args.scale if args.scale in cls.scales else max(cls.scales)
        model = create_model(name, scale=scale).eval()
        params = count_parameters(model)
        gflops = flops_per_megapixel(model, size=32)
        x = torch.rand(1, 3, args.size, args.size)
        times = []
        with torch.inference_mode():
            model(x[..., :32, :32])  # warm-up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = model(x)
                times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        mp = out.shape[-1] * out.shape[-2] / 1e6
        print(
            f"| {name:<14} | x{scale:<4} | {params:>11,} | {gflops:>9,.1f} | {mp / sec:>9.3f} | {sec:>8.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
