"""Tiled inference on CPU: speed cost of tiling and peak memory as the image grows.

Model: FSRCNN x2 (paper size d=56, s=12, m=4, Y channel + bicubic Cb/Cr) with *random*
weights; speed and memory do not depend on the weight values. Input and output are uint8 RGB,
as when upscaling photos.

1. 2048x2048 input: untiled (``tile=0``) vs tiled (auto tile size) wall time, interleaved
   ``--repeats`` times, best of each; output megapixels per second.
2. Peak RSS (``VmHWM``) for 1024^2 and 4096^2 inputs, each in a fresh subprocess, since the
   high-water mark is per process; compared with the growth of the output image itself, with
   and without the growth of the (caller-owned) uint8 input.

Usage: ``nice python benchmarks/upscale.py [--threads 1] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from sruscale.models import create_model
from sruscale.tiling import auto_tile_size, default_overlap, upscale_tensor

MB = 1e6


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"{key} not in /proc/self/status")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("fsrcnn", scale=2).eval()


def _image(size: int) -> torch.Tensor:
    return torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def child(size: int, threads: int) -> None:
    """Upscale one ``size``^2 image with the default (auto) tiling; print a JSON line of measurements."""
    torch.set_num_threads(threads)
    model, x = _model(), _image(size)
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    y = upscale_tensor(model, x, out_dtype=torch.uint8)
    seconds = time.perf_counter() - start
    result = {
        "size": size,
        "tile": auto_tile_size(model, tuple(x.shape), torch.device("cpu"), torch.float32),
        "rss_before_mb": before,
        "peak_mb": _status_mb("VmHWM"),
        "seconds": seconds,
        "in_mb": x.numel() / MB,
        "out_mb": y.numel() / MB,
    }
    print(json.dumps(result))


def speed(size: int, threads: int, repeats: int) -> None:
    torch.set_num_threads(threads)
    model, x = _model(), _image(size)
    upscale_tensor(model, x[..., :64, :64], tile=0)  # warm-up
    tile = auto_tile_size(model, tuple(x.shape), torch.device("cpu"), torch.float32)
    tiles: list[int] = []
    times: dict[str, list[float]] = {"untiled": [], "tiled": []}
    cpu: dict[str, list[float]] = {"untiled": [], "tiled": []}
    for _ in range(repeats):
        for name, t in (("untiled", 0), ("tiled", tile)):
            start, start_cpu = time.perf_counter(), time.process_time()
            upscale_tensor(model, x, tile=t, out_dtype=torch.uint8, progress=lambda d, n: tiles.append(n))
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    out_mp = (2 * size) ** 2 / 1e6
    print(
        f"## Speed: FSRCNN x2 (random weights), {size}x{size} RGB uint8 -> {2 * size}x{2 * size}, CPU, "
        f"{threads} thread(s), best of {repeats}"
    )
    print(
        f"tile {tile} px, overlap {default_overlap(model)} px (+{default_overlap(model) // 4} feather), "
        f"{max(tiles)} tiles\n"
    )
    print("| mode | wall s | CPU s | output MP/s (wall) |")
    print("|---|---|---|---|")
    for k, v in best.items():
        print(f"| {k} | {v:.2f} | {best_cpu[k]:.2f} | {out_mp / v:.2f} |")
    print(
        f"\ntiled / untiled ratio: wall {best['tiled'] / best['untiled']:.3f}, "
        f"CPU time {best_cpu['tiled'] / best_cpu['untiled']:.3f} (target <= 1.10)\n"
    )


def memory(sizes: list[int], threads: int) -> None:
    rows = []
    for size in sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--threads", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print("## Peak RSS (fresh process per size, auto tiling, uint8 in/out)\n")
    print("| input | tile | seconds | RSS before call MB | peak RSS MB | input MB | output MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']}^2 | {r['tile']} | {r['seconds']:.1f} | {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} "
            f"| {r['in_mb']:.0f} | {r['out_mb']:.0f} |"
        )
    lo, hi = rows[0], rows[-1]
    growth = hi["peak_mb"] - lo["peak_mb"]
    out_growth = hi["out_mb"] - lo["out_mb"]
    in_growth = hi["in_mb"] - lo["in_mb"]
    work = (hi["peak_mb"] - hi["rss_before_mb"] - hi["out_mb"]) - (lo["peak_mb"] - lo["rss_before_mb"] - lo["out_mb"])
    print(
        f"\npeak RSS growth {lo['size']}^2 -> {hi['size']}^2: {growth:.0f} MB; output image growth "
        f"{out_growth:.0f} MB, input image growth {in_growth:.0f} MB; "
        f"growth of the working set beyond the input and output buffers: {work:.0f} MB"
    )
    for label, g in (("with the input", growth), ("without the input", growth - in_growth)):
        verdict = "met" if g <= out_growth else "NOT met"
        print(f"target (peak growth <= output growth), {label}: {g:.0f} <= {out_growth:.0f} MB: {verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--size", type=int, default=2048, help="input side for the speed comparison")
    p.add_argument("--memory-sizes", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    speed(args.size, args.threads, args.repeats)
    memory(args.memory_sizes, args.threads)


if __name__ == "__main__":
    main()
