"""Hostile inputs against the real command line: every case must fail one file (or decode correctly), never hang.

Builds, in a temporary folder: input folders holding a symbolic link loop, a FIFO, a link to
``/dev/zero`` and a Unix socket under image names; a sparse file far over the read cap; a batch of
small JPEGs, one with a truncated ICC profile; PPM/PGM with maxval 1000, 32-bit integer, float and
CIELAB TIFFs; memory exhaustion injected on one file (a ``python -c`` bootstrap patches one library
function, then runs ``sruscale.cli.main``); weights whose metadata nests 100 000 levels deep; an
``evaluate`` pair over ``--max-pixels``. Then it runs ``upscale``, ``degrade`` and ``evaluate`` on
them as subprocesses, each with a timeout, and prints one row per case (case, command, expected,
got) and the counts; the exit code is 1 when any case fails.

Usage: ``nice python benchmarks/hostile.py [--keep DIR] [--timeout 120]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "400", "SRUSCALE_PRETRAINED": "0"}
ENV.pop("SRUSCALE_DEBUG", None)
OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. Error code 12"


@dataclass
class Run:
    code: int | None  # None: timed out
    text: str  # stdout + stderr, whitespace collapsed
    seconds: float


@dataclass
class Case:
    name: str
    command: str
    expected: str
    argv: list[str]
    check: Callable[[Run], str]  # "" when the run is right, else what is wrong
    patch: str = ""  # Python run before the CLI in the same process (fault injection)
    got: str = field(default="", init=False)
    ok: bool = field(default=False, init=False)


# --------------------------------------------------------------------------- inputs


def _png(path: Path, value: int = 120, size: tuple[int, int] = (24, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    arr = np.clip(value + 2 * xx - yy, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([arr, arr[::-1], 255 - arr])).save(path)
    return path


#: special file name -> the reason the commands must give for it
REASONS = {"loop.png": "symbolic link loop", "fifo.png": "a FIFO", "zero.png": "a character device",
           "sock.png": "a socket"}  # fmt: skip


def _special(path: Path) -> bool:
    """Make the special file :data:`REASONS` names ``path.name``; False when it cannot be made (a socket path
    too long for AF_UNIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name == "loop.png":
        path.symlink_to(path.name)
    elif path.name == "fifo.png":
        os.mkfifo(path)
    elif path.name == "zero.png":
        path.symlink_to("/dev/zero")
    else:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(path))
        except OSError:
            return False
        finally:
            sock.close()
    return True


def _specials(folder: Path) -> list[str]:
    """Every special file of :data:`REASONS` in ``folder``; the names made."""
    return [name for name in REASONS if _special(folder / name)]


def _truncated_icc() -> bytes:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return srgb[: len(srgb) // 2]


def _formats(folder: Path) -> dict[str, float]:
    """Constant images in odd pixel formats -> the value in [0, 1] each must decode to."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = 12, 12
    (folder / "ppm1000.ppm").write_bytes(b"P6\n12 12\n1000\n" + np.full((h, w, 3), 500, ">u2").tobytes())
    (folder / "pgm1000.pgm").write_bytes(b"P5\n12 12\n1000\n" + np.full((h, w), 250, ">u2").tobytes())
    Image.fromarray(np.full((h, w), 2**30, np.int32)).save(folder / "int32.tif")
    Image.fromarray(np.full((h, w), 0.25, np.float32)).save(folder / "float.tif")
    planes = [np.full((h, w), v, np.uint8) for v in (255, 128, 128)]  # L* 100, a* 0, b* 0: white
    Image.merge("LAB", [Image.fromarray(p) for p in planes]).save(folder / "lab.tif")
    return {"ppm1000": 0.5, "pgm1000": 0.25, "int32": 2**30 / (2**31 - 1), "float": 0.25, "lab": 1.0}


def _deep_weights(path: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    meta = {"format": "sruscale", "arch": "fsrcnn", "scale": "2", "hparams": "[" * 100_000 + "]" * 100_000}
    save_file({"w": torch.zeros(1)}, str(path), metadata=meta)
    return path


# --------------------------------------------------------------------------- checks


def _expect(code: int, *texts: str, files: tuple[Path, ...] = ()) -> Callable[[Run], str]:
    """Exit ``code``, no traceback, every text in the output, every file written."""

    def check(run: Run) -> str:
        if run.code is None:
            return f"hung: killed after {run.seconds:.0f} s"
        problems = []
        if run.code != code:
            problems.append(f"exit {run.code}")
        if "Traceback" in run.text:
            problems.append("traceback")
        problems += [f"no {t!r}" for t in texts if t not in run.text]
        problems += [f"missing {f.name}" for f in files if not f.is_file()]
        return "; ".join(problems)

    return check


def _values(out: Path, expected: dict[str, float]) -> Callable[[Run], str]:
    def check(run: Run) -> str:
        base = _expect(0)(run)
        if base:
            return base
        problems = []
        for stem, want in expected.items():
            f = out / f"{stem}_x2.png"
            if not f.is_file():
                problems.append(f"missing {f.name}")
                continue
            im = Image.open(f)
            arr = np.asarray(im).astype(np.float64)
            peak = 65535.0 if arr.max() > 255 or im.mode.startswith("I") else 255.0
            got = float(arr.mean()) / peak
            if im.mode in ("RGBA", "LA") or abs(got - want) > 2 / 255:
                problems.append(f"{stem}: {got:.4f} ({im.mode}), want {want:.4f}")
        return "; ".join(problems)

    return check


def _json_check(path: Path, scored: list[str], failed: set[str], code: int = 1) -> Callable[[Run], str]:
    def check(run: Run) -> str:
        base = _expect(code)(run)
        if base:
            return base
        try:
            data = json.loads(path.read_text())["datasets"][0]
        except (OSError, ValueError, KeyError, IndexError) as exc:
            return f"no results file ({exc})"
        got_scored = [p["image"] for p in data["per_image"]]
        got_failed = {Path(f["file"]).name for f in data["failed"]}
        problems = []
        if got_scored != scored:
            problems.append(f"scored {got_scored}")
        if not failed <= got_failed:
            problems.append(f"failed {sorted(got_failed)}")
        return "; ".join(problems)

    return check


# --------------------------------------------------------------------------- cases


def build(root: Path) -> list[Case]:
    cases: list[Case] = []
    up = ["upscale", "-m", "bicubic", "-s", "2"]

    hostile = root / "hostile"  # every kind of special file together
    for i in range(2):
        _png(hostile / f"good{i}.png", value=60 * i)
    specials = _specials(hostile)
    for name in specials:  # and each kind alone, next to two good files
        one = root / f"only_{name[:-4]}"
        for i in range(2):
            _png(one / f"good{i}.png", value=60 * i)
        _special(one / name)
        out_up, out_deg = root / f"o_up_{name[:-4]}", root / f"o_deg_{name[:-4]}"
        why = f"{name}: {REASONS[name]}"
        cases.append(Case(f"{name} in a folder", "upscale", f"exit 1, good files done, {why}",
                          [*up, str(one), "-o", str(out_up)],
                          _expect(1, why, files=(out_up / "good0_x2.png", out_up / "good1_x2.png"))))
        cases.append(Case(f"{name} in a folder", "degrade", f"exit 1, 2 pairs written, {why}",
                          ["degrade", str(one), str(out_deg), "--scale", "2"], _expect(1, "2 pairs written", why)))
    cases.append(Case("special files via a glob", "upscale", "exit 1, each named",
                      [*up, str(hostile / "*.png"), "-o", str(root / "o_glob")],
                      _expect(1, *(f"{n}: {REASONS[n]}" for n in specials), files=(root / "o_glob" / "good0_x2.png",))))
    cases.append(Case("special files in HR folder", "degrade", "exit 1, good pairs written, each named",
                      ["degrade", str(hostile), str(root / "o_deg"), "--scale", "2"],
                      _expect(1, "2 pairs written", *(f"{n}: {REASONS[n]}" for n in specials),
                              files=(root / "o_deg" / "LR_x2" / "good0.png",))))
    for d in ("sr", "gt"):
        _png(root / "pairs" / d / "a.png", value=100 if d == "sr" else 104)
        _specials(root / "pairs" / d)
    cases.append(Case("special files in SR and GT", "evaluate", "exit 1, a scored, specials failed",
                      ["evaluate", str(root / "pairs" / "sr"), str(root / "pairs" / "gt"), "--scale", "2", "-q",
                       "--out", str(root / "ev_pairs.json")],
                      _json_check(root / "ev_pairs.json", ["a"], {"loop.png", "fifo.png", "zero.png"})))
    cases.append(Case("special files in GT (model mode)", "evaluate", "exit 1, a scored, specials failed",
                      ["evaluate", "-m", "bicubic", "--scale", "2", str(root / "pairs" / "gt"), "-q",
                       "--out", str(root / "ev_model.json")],
                      _json_check(root / "ev_model.json", ["a"], {"loop.png", "fifo.png", "zero.png"})))

    cap = root / "cap"
    _png(cap / "good.png")
    with (cap / "huge.png").open("wb") as fh:
        fh.truncate(80 << 20)
    cases.append(Case("80 MiB file, --max-pixels 1000", "upscale", "exit 1, refused before reading",
                      [*up, str(cap), "-o", str(root / "o_cap"), "--max-pixels", "1000"],
                      _expect(1, "huge.png:", "raise --max-pixels", files=(root / "o_cap" / "good_x2.png",))))
    cases.append(Case("80 MiB file, --max-pixels 1000", "degrade", "exit 1, refused before reading",
                      ["degrade", str(cap), str(root / "o_capd"), "--scale", "2", "--max-pixels", "1000"],
                      _expect(1, "huge.png:", "raise --max-pixels", files=(root / "o_capd" / "HR" / "good.png",))))

    icc = root / "icc"
    icc.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 60 + 40 * i, np.uint8)).save(
            icc / f"{i}.jpg", quality=95, icc_profile=_truncated_icc() if i == 1 else None)
    outs = tuple(root / "o_icc" / f"{i}_x2.jpg" for i in range(3))
    cases.append(Case("truncated ICC in a batch of small JPEGs", "upscale", "exit 0, 3 outputs, profile dropped",
                      [*up, str(icc), "-o", str(root / "o_icc")], _expect(0, "ICC profile cannot be used", files=outs)))

    expected = _formats(root / "formats")
    cases.append(Case("PPM/PGM maxval 1000, int32/float/LAB TIFF", "upscale",
                      ", ".join(f"{k} {v:.3f}" for k, v in expected.items()),
                      [*up, str(root / "formats"), "-o", str(root / "o_fmt"), "--format", "png"],
                      _values(root / "o_fmt", expected)))

    oom = root / "oom"
    for name in ("a", "b", "c"):
        _png(oom / "hr" / f"{name}.png", size=(300, 300))
        for d in ("sr", "gt"):
            _png(oom / d / f"{name}.png", value=90 if d == "sr" else 95)
    inject_read = (
        "from sruscale.degradations import _batch as m\n"
        "real = m.read_image\n"
        "def read(path, **kw):\n"
        f"    if str(path).endswith('b.png'): raise RuntimeError({OOM!r})\n"
        "    return real(path, **kw)\n"
        "m.read_image = read\n"
    )
    cases.append(Case("CPU allocator failure on one file", "degrade", "exit 1, 2 pairs, b.png out of memory",
                      ["degrade", str(oom / "hr"), str(root / "o_oom"), "--scale", "2"],
                      _expect(1, "2 pairs written", "b.png: out of memory"), patch=inject_read))
    inject_score = (
        "from sruscale.evaluation import protocol as m\n"
        "real, n = m.score_pair, [0]\n"
        "def score(*a, **kw):\n"
        "    n[0] += 1\n"
        "    if n[0] == 2: raise MemoryError()\n"
        "    return real(*a, **kw)\n"
        "m.score_pair = score\n"
    )
    cases.append(Case("MemoryError on one pair", "evaluate", "exit 1, a and c scored",
                      ["evaluate", str(oom / "sr"), str(oom / "gt"), "--scale", "2", "-q",
                       "--out", str(root / "ev_oom.json")],
                      _json_check(root / "ev_oom.json", ["a", "c"], {"b.png"}), patch=inject_score))
    cases.append(Case("MemoryError on one image (model mode)", "evaluate", "exit 1, a and c scored",
                      ["evaluate", "-m", "bicubic", "--scale", "2", str(oom / "gt"), "-q",
                       "--out", str(root / "ev_oom_m.json")],
                      _json_check(root / "ev_oom_m.json", ["a", "c"], {"b.png"}), patch=inject_score))
    inject_forward = (
        "from sruscale import upscaling as m\n"
        "real, n = m._forward, [0]\n"
        "def forward(*a, **kw):\n"
        "    n[0] += 1\n"
        f"    if n[0] == 2: raise RuntimeError({OOM!r})\n"
        "    return real(*a, **kw)\n"
        "m._forward = forward\n"
    )
    cases.append(Case("CPU allocator failure on one file", "upscale", "exit 1, a and c written",
                      [*up, str(oom / "hr"), "-o", str(root / "o_oomu")],
                      _expect(1, "b.png: out of memory", files=(root / "o_oomu" / "a_x2.png", root / "o_oomu" /
                                                                "c_x2.png")), patch=inject_forward))

    guard = root / "guard"
    for d in ("sr", "gt"):
        _png(guard / d / "a.png", size=(16, 16))
    _png(guard / "sr" / "big.png", size=(16, 16))
    _png(guard / "gt" / "big.png", size=(40, 40))
    cases.append(Case("pair over --max-pixels 1000", "evaluate", "exit 1, big refused by name, a scored",
                      ["evaluate", str(guard / "sr"), str(guard / "gt"), "--scale", "2", "--max-pixels", "1000",
                       "--out", str(root / "ev_guard.json")],
                      _json_check(root / "ev_guard.json", ["a"], {"big.png"})))

    deep = _deep_weights(root / "deep.safetensors")
    cases.append(Case("weights metadata nested 100 000 deep", "upscale", "exit 1, one-line CheckpointError",
                      ["upscale", str(hostile / "good0.png"), "-o", str(root / "o_deep"), "--weights", str(deep)],
                      _expect(1, "nested too deeply")))
    return cases


# --------------------------------------------------------------------------- running


def run(case: Case, timeout: float) -> Run:
    if case.patch:
        boot = case.patch + "import sys\nfrom sruscale.cli import main\nsys.argv[0] = 'sruscale'\nmain()\n"
        cmd = [sys.executable, "-c", boot, *case.argv]
    else:
        cmd = [sys.executable, "-m", "sruscale", *case.argv]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, _ = proc.communicate()
        code = None
    return Run(code, " ".join((out or "").split()), time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the cases here and keep them (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per command before it counts as hung")
    args = ap.parse_args()
    if not hasattr(os, "mkfifo"):
        print("needs POSIX (FIFOs, symbolic links, Unix sockets)")
        return 2
    root = args.keep or Path(tempfile.mkdtemp(prefix="sruscale_hostile_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        cases = build(root)
        rows = []
        for case in cases:
            result = run(case, args.timeout)
            problem = case.check(result)
            case.ok = not problem
            code = "timeout" if result.code is None else f"exit {result.code}"
            case.got = f"{code}, {result.seconds:.1f} s" + (f": {problem}" if problem else ", as expected")
            rows.append((case.name, case.command, case.expected, case.got, "PASS" if case.ok else "FAIL"))
            print(f"{rows[-1][4]}  {case.command:8s} {case.name}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(4)]
    head = ("case", "command", "expected", "got")
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " | result")
    print("-+-".join("-" * w for w in widths) + "-+-------")
    for r in rows:
        print(" | ".join(c[:w].ljust(w) for c, w in zip(r[:4], widths, strict=True)) + f" | {r[4]}")
    passed = sum(c.ok for c in cases)
    print(f"\n{passed} passed, {len(cases) - passed} failed, {len(cases)} cases")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
