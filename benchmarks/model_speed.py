"""Measured speed of every model `sruscale models` lists: output megapixels per second on this CPU.

Each bundled and installed pretrained model runs as `upscale` runs it (`load_model(NAME)` through
`upscale_tensor`, RGB in and out, fp32, PyTorch backend, one tile) on a seeded random RGB input whose output is
about 1 MP (0.25 MP for networks above 500 GFLOPs per output MP), median of ``--repeats`` runs after a warm-up.
Writes ``sruscale/weights/speed.toml`` (read by `sruscale models`), stamped with the CPU, thread count,
torch version and date; prints the table and, for scale, a plain 64->64 3x3 convolution's GFLOP/s.

    nice python benchmarks/model_speed.py [--threads 2] [--repeats 3] [--dry-run]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sruscale._fs import atomic_write
from sruscale.tiling import upscale_tensor
from sruscale.weights import list_weights, load_model
from sruscale.weights._manifest import SPEED_TABLE

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seconds(fn: object, repeats: int) -> float:
    assert callable(fn)
    with torch.inference_mode():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_gflops(repeats: int) -> float:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.rand(1, 64, 256, 256)
    return 2 * 64 * 64 * 9 * 256 * 256 / seconds(lambda: conv(x), repeats) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dry-run", action="store_true", help="print, do not write speed.toml")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("SRUSCALE_PRETRAINED", "1")
    rows: dict[str, float] = {}
    print(f"{'model':28s} {'GF/MP':>8s} {'out MP/s':>9s}")  # noqa: T201
    for e in sorted(list_weights(), key=lambda e: (e.scale, e.name)):
        model = load_model(e.name).eval()
        gf = e.number("gflops_per_mp") or 0.0
        out_mp = 0.25 if gf > 500 else 1.0
        side = max(16, round((out_mp * 1e6) ** 0.5 / e.scale))
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
        run = lambda m=model, x=x: upscale_tensor(m, x, tile=0)  # noqa: E731  # as upscale runs it, one tile
        mp_s = (side * e.scale) ** 2 / 1e6 / seconds(run, args.repeats)
        rows[e.name] = round(mp_s, 3 if mp_s < 1 else 2)
        print(f"{e.name:28s} {gf:8.1f} {mp_s:9.3f}")  # noqa: T201
    conv = conv_gflops(args.repeats)
    stamp = (f"{datetime.date.today().isoformat()}, {cpu_name()}, {args.threads} threads, "
             f"torch {torch.__version__}, fp32, PyTorch backend")  # fmt: skip
    print(f"plain 3x3 conv 64->64: {conv:.1f} GFLOP/s; {stamp}")  # noqa: T201
    if args.dry_run:
        return
    lines = [
        "# Measured speed of the listed models: output megapixels per second of a whole-image forward,",
        "# written by `python benchmarks/model_speed.py` (do not edit by hand).",
        f"measured_on = {json.dumps(stamp)}",
        f"conv3x3_gflops = {conv:.1f}  # a plain 64->64 3x3 convolution, for scale",
        "",
        "[out_mp_s]",
        *[f"{json.dumps(k)} = {v}" for k, v in rows.items()],
        "",
    ]
    with atomic_write(SPEED_TABLE) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {SPEED_TABLE}")  # noqa: T201


if __name__ == "__main__":
    main()
