"""Model zoo cost at x4: parameters, GFLOPs per output megapixel, CPU MP/s and achieved GFLOP/s.

Default (paper) hyperparameters; models without x4 are measured at their largest scale.
MP/s counts output megapixels per second of ``forward`` (RGB in, RGB out) on the CPU, fp32,
median of ``--repeats`` runs after one warm-up. Re-parameterised models are measured folded
(``for_inference()``), as they ship. The same run measures a plain 64->64 3x3 convolution
(the achievable GFLOP/s on this CPU) and the default-vs-FSRCNN speed ratio on a 1024x1024
Y input. Run with ``nice``; RCAN/EDSR take minutes.

    nice python benchmarks/models.py [--size 256] [--repeats 1] [--threads N] [--only edsr rcan]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from sruscale.models import REGISTRY, create_model
from sruscale.models.profile import count_parameters, flops_per_megapixel


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    with torch.inference_mode():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_gflops(size: int, repeats: int) -> float:
    """Achieved GFLOP/s of one 64->64 3x3 convolution on a ``(1, 64, size, size)`` input."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.rand(1, 64, size, size)
    sec = _seconds(lambda: conv(x), max(repeats, 3))
    return 2 * 64 * 64 * 9 * size * size / sec / 1e9


def mp_per_s(model: torch.nn.Module, x: torch.Tensor, scale: int, repeats: int) -> float:
    sec = _seconds(lambda: model(x), repeats)
    return x.shape[-1] * x.shape[-2] * scale * scale / sec / 1e6


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
    ref = conv_gflops(args.size, args.repeats)
    print(f"plain 64->64 3x3 convolution on {args.size}x{args.size}: {ref:.1f} GFLOP/s")
    head = f"| {'model':<14} | scale | {'params':>11} | {'GFLOPs/MP':>9} | {'CPU MP/s':>9} | {'GFLOP/s':>7}"
    print(f"{head} | {'s/image':>8} |")
    print(f"|{'-' * 16}|-------|{'-' * 13}|{'-' * 11}|{'-' * 11}|{'-' * 9}|{'-' * 10}|")
    for name in names:
        cls = REGISTRY[name]
        scale = args.scale if args.scale in cls.scales else max(cls.scales)
        model = create_model(name, scale=scale).eval().for_inference()
        params = count_parameters(model)
        gflops = flops_per_megapixel(model, size=32)
        x = torch.rand(1, 3, args.size, args.size)
        rate = mp_per_s(model, x, scale, args.repeats)
        sec = args.size * args.size * scale * scale / 1e6 / rate
        print(
            f"| {name:<14} | x{scale:<4} | {params:>11,} | {gflops:>9,.1f} | {rate:>9.3f} | {rate * gflops:>7.1f} "
            f"| {sec:>8.2f} |",
            flush=True,
        )
    # the default family against the model it replaces, on the network's own Y input
    y = torch.rand(1, 1, 1024, 1024)
    fast = create_model("fsrcnn", scale=4, residual=True).eval()
    default = create_model("plainsr", scale=4).eval().for_inference()
    r_fast = mp_per_s(fast, y, 4, args.repeats)
    r_default = mp_per_s(default, y, 4, args.repeats)
    print(
        f"1024x1024 Y x4: plainsr {r_default:.2f} MP/s, fsrcnn {r_fast:.2f} MP/s, "
        f"ratio {r_default / r_fast:.2f} (target >= 0.5)"
    )


if __name__ == "__main__":
    main()
