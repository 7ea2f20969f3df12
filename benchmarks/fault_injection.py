"""Fault injection: kill ``upscale``, ``degrade`` and ``train`` with SIGKILL at random points, resume, compare.

For each command an uninterrupted reference run is made first. Then trials: a run is started
in a fresh folder and killed with SIGKILL (1 or 2 times per trial, the second kill hitting the
first resume) at a random point of its work: after a random number of outputs / log lines have
appeared, plus a random delay of up to 0.3 s. The run is then resumed the way a user would
(the same command again; ``train --resume`` once a checkpoint exists) until it completes, and
the folder is compared with the reference:

* upscale (12 images 40x36, FSRCNN x2, random weights): every output byte-identical;
* degrade (12 images 48x44, ``realistic`` preset; ``--workers 2`` in every other trial): HR/,
  LR_x2/, manifest.jsonl and degrade.json byte-identical; worker processes still alive 3 s
  after their parent was killed are counted as orphans;
* train (FSRCNN x2 tiny, 40 iterations, checkpoint every 5, validation every 10): the weights in
  ``last.safetensors`` and ``best.safetensors`` bit-identical, and ``train.csv`` identical in
  every column but wall time and speed.

Leftovers are files in the output folder after the completed resume whose names are temporary
(``.*.tmp``) or claims (``.*.claim``). Not run in CI: it takes a few minutes.

Usage: ``nice -n 10 python benchmarks/fault_injection.py [--kills 20] [--seed 0] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "120"}
CLI = [sys.executable, "-m", "sruscale"]


@dataclass
class Tally:
    kills: int = 0
    trials: int = 0
    resumes_completed: int = 0
    identical: int = 0
    leftovers: int = 0
    orphans: int = 0
    differing: list[str] | None = None

    def __post_init__(self) -> None:
        self.differing = []


# --------------------------------------------------------------------------- inputs


def _images(folder: Path, n: int, h: int, w: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, size=(h // 4, w // 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((w, h), Image.BICUBIC).save(folder / f"img_{i:02d}.png")
    return folder


def _weights(path: Path) -> Path:
    import torch

    import sruscale

    torch.manual_seed(0)
    model = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.05)
    return sruscale.save_model(model, path)


def _recipe(path: Path, hr: Path, val: Path) -> Path:
    path.write_text(
        "iterations = 40\nseed = 5\n"
        '[model]\nname = "fsrcnn"\nscale = 2\nhparams = {in_channels = 1, d = 8, s = 4, m = 1}\n'
        f'[data]\ntrain_hr = ["{hr}"]\npatch_size = 12\nbatch_size = 2\nworkers = 0\n'
        f'[val]\nhr = "{val}"\nevery = 10\n'
        "[checkpoint]\nevery = 5\nkeep = 2\n[log]\nevery = 1\ntensorboard = false\n"
    )
    return path


# --------------------------------------------------------------------------- running and killing


def _start(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _finish(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, timeout=timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_at(cmd: list[str], progress: Callable[[], int], target: int, delay: float, tally: Tally) -> bool:
    """Start ``cmd``, SIGKILL it once ``progress() >= target`` plus ``delay`` s; False if it finished first."""
    proc = _start(cmd)
    while proc.poll() is None and progress() < target:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        proc.communicate()
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.communicate()
    tally.kills += 1
    deadline = time.monotonic() + 3.0  # worker processes must follow their parent
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.1)
    if _group_alive(proc.pid):
        tally.orphans += 1
        os.killpg(proc.pid, signal.SIGKILL)
    return True


def _count(folder: Path, pattern: str) -> Callable[[], int]:
    return lambda: len(list(folder.glob(pattern))) if folder.exists() else 0


def _lines(path: Path) -> Callable[[], int]:
    def n() -> int:
        try:
            return path.read_bytes().count(b"\n")
        except OSError:
            return 0

    return n


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name.endswith((".tmp", ".claim"))]


def _files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and not p.relative_to(folder).as_posix().startswith(skip)
    }


# --------------------------------------------------------------------------- comparisons


def _train_same(a: Path, b: Path) -> str | None:
    """None when two run folders hold bit-identical weights and the same training log, else why not."""
    from safetensors.torch import load_file

    for name in ("last.safetensors", "best.safetensors"):
        if not (b / name).exists():
            return f"{name} missing"
        x, y = load_file(a / name), load_file(b / name)
        if x.keys() != y.keys() or any(x[k].numpy().tobytes() != y[k].numpy().tobytes() for k in x):
            return f"{name} weights differ"

    def rows(run: Path, name: str) -> list[dict[str, str]]:
        with (run / name).open(newline="") as f:
            return [{k: v for k, v in r.items() if k not in ("time", "it_s")} for r in csv.DictReader(f)]

    for name in ("train.csv", "val.csv"):
        if rows(a, name) != rows(b, name):
            return f"{name} differs"
    return None


# --------------------------------------------------------------------------- the three commands


def _trial_kills(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 3))


def run_upscale(root: Path, rng: np.random.Generator, kills: int) -> Tally:
    src = _images(root / "up_in", 12, 40, 36, seed=1)
    weights = _weights(root / "fsrcnn_x2.safetensors")

    def cmd(out: Path) -> list[str]:
        return [*CLI, "upscale", str(src), "-o", str(out), "--weights", str(weights), "--quiet", "--device", "cpu"]

    ref = root / "up_ref"
    assert _finish(cmd(ref)).returncode == 0
    expected = _files(ref)
    t = Tally()
    while t.kills < kills:
        out = root / f"up_{t.trials}"
        t.trials += 1
        for _ in range(_trial_kills(rng)):
            _kill_at(cmd(out), _count(out, "*.png"), int(rng.integers(0, 12)), float(rng.uniform(0, 0.3)), t)
        done = _finish(cmd(out))
        t.resumes_completed += done.returncode == 0
        got = _files(out) if out.exists() else {}
        t.identical += got == expected
        if got != expected:
            t.differing.append(f"{out.name}: {sorted(set(expected) ^ set(got)) or 'bytes differ'}")
        t.leftovers += len(_leftovers(out)) if out.exists() else 0
    return t


def run_degrade(root: Path, rng: np.random.Generator, kills: int) -> Tally:
    src = _images(root / "deg_in", 12, 48, 44, seed=2)

    def cmd(out: Path, workers: int) -> list[str]:
        return [*CLI, "degrade", str(src), str(out), "--scale", "2", "--preset", "realistic", "--workers", str(workers)]

    ref = root / "deg_ref"
    assert _finish(cmd(ref, 1)).returncode == 0
    expected = _files(ref)
    t = Tally()
    while t.kills < kills:
        out = root / f"deg_{t.trials}"
        workers = 1 + t.trials % 2
        t.trials += 1
        for _ in range(_trial_kills(rng)):
            progress = _count(out / "LR_x2", "*.png")
            _kill_at(cmd(out, workers), progress, int(rng.integers(0, 12)), float(rng.uniform(0, 0.3)), t)
        done = _finish(cmd(out, workers))
        t.resumes_completed += done.returncode == 0
        got = _files(out) if out.exists() else {}
        t.identical += got == expected
        if got != expected:
            t.differing.append(f"{out.name}: {sorted(k for k in expected if got.get(k) != expected[k])}")
        t.leftovers += len(_leftovers(out)) if out.exists() else 0
    return t


def run_train(root: Path, rng: np.random.Generator, kills: int) -> Tally:
    hr, val = _images(root / "tr_hr", 4, 48, 48, seed=3), _images(root / "tr_val", 2, 24, 24, seed=4)
    recipe = _recipe(root / "tiny.toml", hr, val)

    def cmd(out: Path) -> list[str]:
        resume = ["--resume"] if list((out / "checkpoints").glob("iter_*.pt")) else []
        return [*CLI, "train", str(recipe), "--out", str(out), "--device", "cpu", *resume]

    ref = root / "tr_ref"
    done = _finish(cmd(ref))
    assert done.returncode == 0, done.stderr.decode()
    t = Tally()
    while t.kills < kills:
        out = root / f"tr_{t.trials}"
        t.trials += 1
        for _ in range(_trial_kills(rng)):
            # log.jsonl: one line per iteration plus checkpoint/val events, ~55 in all
            _kill_at(cmd(out), _lines(out / "log.jsonl"), int(rng.integers(0, 55)), float(rng.uniform(0, 0.3)), t)
        done = _finish(cmd(out))
        t.resumes_completed += done.returncode == 0
        why = _train_same(ref, out) if done.returncode == 0 else done.stderr.decode().strip().splitlines()[-1:]
        t.identical += why is None
        if why is not None:
            t.differing.append(f"{out.name}: {why}")
        t.leftovers += len(_leftovers(out)) if out.exists() else 0
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs per command (at least)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder, removed)")
    ap.add_argument("--only", choices=["upscale", "degrade", "train"], action="append")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="sruscale-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    runners = {"upscale": run_upscale, "degrade": run_degrade, "train": run_train}
    start = time.perf_counter()
    print(f"seed {args.seed}, at least {args.kills} SIGKILLs per command")
    print(f"{'command':<8} {'kills':>5} {'trials':>6} {'resumes completed':>17} {'identical':>9} "
          f"{'leftover temp files':>19} {'orphaned workers':>16}")
    try:
        for name, run in runners.items():
            if args.only and name not in args.only:
                continue
            t = run(root, rng, args.kills)
            print(f"{name:<8} {t.kills:>5} {t.trials:>6} {t.resumes_completed:>9}/{t.trials:<7} "
                  f"{t.identical:>5}/{t.trials:<3} {t.leftovers:>19} {t.orphans:>16}", flush=True)
            for d in t.differing or []:
                print(f"  differs: {d}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
