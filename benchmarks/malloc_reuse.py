"""glibc block reuse during CPU tiles (``sruscale.tiling._malloc_trim``) against glibc's defaults.

Each measurement is a fresh process (malloc settings are per process): ``upscale_tensor`` of a
random image with automatic tiles, wall / user / system seconds and minor page faults; the two
settings alternate, best of ``--repeats``. The baseline process replaces ``_malloc_trim`` with plain
``malloc_trim`` (the code before the change), so only the ``mallopt`` calls differ.

Usage: ``nice python benchmarks/malloc_reuse.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = (("plainsr-x4", 768), ("span-x4", 384), ("realesrgan-x4plus", 160))  # registry ones need the extra


def child(name: str, side: int, reuse: bool) -> None:
    import ctypes
    import resource
    import time

    import torch

    from sruscale import tiling
    from sruscale.api import load_model

    if not reuse:  # glibc's defaults: trim after each tile, no mallopt
        tiling._malloc_trim = lambda: ctypes.CDLL(None).malloc_trim  # type: ignore[assignment]
    torch.set_num_threads(2)
    model = load_model(name)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    tiling.upscale_tensor(model, x[..., :128, :128])  # warm-up
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    tiling.upscale_tensor(model, x, out_dtype=torch.uint8)
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    print(json.dumps({"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                      "faults": r1.ru_minflt - r0.ru_minflt}))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2] == "reuse")
        return
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2", "SRUSCALE_PRETRAINED": "1"}
    print("| model, input | glibc defaults: wall / sys s, faults | reuse: wall / sys s, faults | speed-up |")
    print("|---|---|---|---|")
    for name, side in CASES:
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for mode in ("default", "reuse"):
                cmd = [sys.executable, __file__, "--child", name, str(side), mode]
                run = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if run.returncode:
                    print(f"| {name} {side}² | not run: {run.stderr.strip().splitlines()[-1]} | | |")
                    break
                r = json.loads(run.stdout.strip().splitlines()[-1])
                if mode not in best or r["wall"] < best[mode]["wall"]:
                    best[mode] = r
            else:
                continue
            break
        if len(best) == 2:
            a, b = best["default"], best["reuse"]
            cells = [f"{r['wall']:.2f} / {r['sys']:.2f}, {r['faults']:.0f}" for r in (a, b)]
            print(f"| {name} {side}² | {cells[0]} | {cells[1]} | {a['wall'] / b['wall']:.2f}x |")


if __name__ == "__main__":
    main()
