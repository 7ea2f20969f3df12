"""Hostile inputs against training, the ONNX Runtime cache and the MOS study server, end to end.

Runs real ``sruscale`` subprocesses, each with a timeout, in a temporary folder:

* ``train``: two runs into one ``--out`` (the second, and a ``--resume`` into a held folder, must
  be refused in one line naming the holder, before writing anything); a killed run's stale lock
  taken over silently; a recipe with ``d = 10**8`` (refused before anything is built); a recipe
  with ``data.workers = 100000`` (clamped to the CPUs with a note; SIGTERM answered promptly; no
  worker alive 2 s after the trainer is killed with SIGKILL); ``--lr inf|nan|-1``, ``--iters 0``,
  ``--batch-size 0``, ``--workers -1`` (usage errors naming the option);
* ``upscale --backend onnxruntime``: a truncated cached graph, another weights' graph and record
  under this model's name, a garbled record: each rebuilt with a one-line note and the output
  identical to the first run's;
* ``evaluate mos-study`` on 127.0.0.1: raw ``http.client`` requests (cross-origin ``text/plain``,
  DNS-rebinding ``Host``, missing or wrong token, ``1e999``, ``Content-Length: -1`` or huge,
  100 000-deep JSON, a blank rater, ...) must each get a JSON 4xx and store nothing; one proper
  answer must be stored; the server must stay up and print no traceback.

Prints one row per case (case, command, expected, got) and the counts; exit code 1 when any case fails.

Usage: ``nice python benchmarks/hostile_services.py [--keep DIR] [--timeout 120]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
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
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "400", "SRUSCALE_PRETRAINED": "0"}
ENV.pop("SRUSCALE_DEBUG", None)
CLI = [sys.executable, "-m", "sruscale"]
LOCK = ".sruscale-lock"


@dataclass
class Row:
    case: str
    command: str
    expected: str
    got: str
    ok: bool


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, case: str, command: str, expected: str, problem: str, got: str = "as expected") -> None:
        row = Row(case, command, expected, problem or got, not problem)
        self.rows.append(row)
        print(f"{'PASS' if row.ok else 'FAIL'}  {command:9s} {case}" + (f": {problem}" if problem else ""), flush=True)


# --------------------------------------------------------------------------- processes


def _flat(text: str) -> str:
    return " ".join(text.split())


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int | None, str, float]:
    """``(exit code or None when killed at the timeout, stdout + stderr, seconds)``."""
    t0 = time.monotonic()
    proc = subprocess.Popen([*CLI, *argv], env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out, time.monotonic() - t0


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    f = log.open("wb")
    return subprocess.Popen([*CLI, *argv], env=ENV, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _checks(code: int | None, text: str, want: int, *needles: str) -> str:
    problems = []
    if code is None:
        return "hung: killed at the timeout"
    if code != want:
        problems.append(f"exit {code}")
    if "Traceback" in text:
        problems.append("traceback")
    problems += [f"no {n!r}" for n in needles if n not in _flat(text)]
    return "; ".join(problems) + (f" [{_flat(text)[-300:]}]" if problems else "")


# --------------------------------------------------------------------------- inputs


def _images(folder: Path, n: int = 3, size: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _recipe(path: Path, hr: Path, *, iterations: int = 100_000, hparams: str = "in_channels = 1, d = 4, s = 2, m = 1",
            workers: int = 0) -> Path:  # fmt: skip
    path.write_text(
        f'iterations = {iterations}\nseed = 1\n[model]\nname = "fsrcnn"\nscale = 2\nhparams = {{{hparams}}}\n'
        f"[data]\ntrain_hr = [{json.dumps(str(hr))}]\npatch_size = 8\nbatch_size = 1\nworkers = {workers}\n"
        '[val]\nhr = ""\n[checkpoint]\nevery = 20\n[log]\nevery = 10\ntensorboard = false\n'
    )
    return path


# --------------------------------------------------------------------------- training


def train_cases(root: Path, table: Table, timeout: float) -> None:
    hr = _images(root / "hr")
    recipe = _recipe(root / "long.toml", hr)
    out = root / "run"

    def holds(proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
        """``proc`` holds ``out`` (its pid in the lock file) and has written its config.json."""

        def check() -> bool:
            try:
                return json.loads((out / LOCK).read_text())["pid"] == proc.pid and (out / "config.json").is_file()
            except (OSError, ValueError, KeyError):
                return False

        return check

    a = _start(["train", str(recipe), "--out", str(out), "--device", "cpu"], root / "a.log")
    try:
        up = _wait(holds(a), timeout)
        t0 = time.monotonic()
        code, text, _ = _run(["train", str(recipe), "--out", str(out), "--device", "cpu", "--lr", "0.5"], timeout)
        problem = "" if up else "the first run did not start"
        problem = problem or _checks(code, text, 1, f"is in use by another sruscale process (pid {a.pid} on")
        if not problem and len(text.strip().splitlines()) != 1:
            problem = f"{len(text.strip().splitlines())} lines"
        cfg = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
        if not problem and cfg.get("optim", {}).get("lr") == 0.5:
            problem = "config.json written by the refused run"
        table.add("second run into a held --out", "train", "exit 1, one line naming pid/host/start, writes nothing",
                  problem, f"refused in {time.monotonic() - t0:.1f} s")  # fmt: skip
        a_stopped = a.poll() is None
        _stop(a, signal.SIGTERM)
        problem = "" if a_stopped and a.returncode == 130 else f"exit {a.returncode} (running: {a_stopped})"
        table.add("first run unaffected, SIGTERM stops it", "train", "exit 130 with a checkpoint", problem)
    finally:
        _stop(a)

    a2 = _start(["train", str(recipe), "--out", str(out), "--device", "cpu", "--resume"], root / "a2.log")
    try:
        up = _wait(holds(a2), timeout)
        code, text, _ = _run(["train", str(recipe), "--out", str(out), "--device", "cpu", "--resume"], timeout)
        problem = ("" if up else "the resumed run did not start") or _checks(
            code, text, 1, f"is in use by another sruscale process (pid {a2.pid} on")
        table.add("--resume of a folder held by a live run", "train", "exit 1, one line naming the holder", problem)
    finally:
        _stop(a2, signal.SIGKILL)  # killed: its lock is stale now
    stale = (out / LOCK).is_file()
    done = len(list((out / "checkpoints").glob("iter_*.pt")))
    code, text, _ = _run(["train", str(recipe), "--out", str(out), "--device", "cpu", "--resume", "--stop-at",
                          str(_last_iter(out) + 5)], timeout)  # fmt: skip
    problem = "" if stale and done else "no stale lock or checkpoint to take over"
    problem = problem or _checks(code, text, 0, "stopped")
    if not problem and ("in use" in text or "lock" in text.lower()):
        problem = f"not silent: {_flat(text)[-200:]}"
    if not problem and (out / LOCK).exists():
        problem = "lock file left behind"
    table.add("stale lock of a killed run", "train", "taken over silently, exit 0", problem)

    big = _recipe(root / "big.toml", hr, hparams="in_channels = 1, d = 100000000, s = 2, m = 1")
    code, text, secs = _run(["train", str(big), "--out", str(root / "big"), "--device", "cpu"], timeout)
    problem = _checks(code, text, 1, "model.hparams.d = 100000000 is out of range (expected 1..2048)")
    if not problem and (root / "big").exists():
        problem = "run folder created"
    table.add("recipe model d = 10^8", "train", "exit 1, one line, nothing built", problem, f"refused in {secs:.1f} s")

    for option, value, needle in [("--lr", "inf", "optim.lr: expected a finite number, got inf"),
                                  ("--lr", "nan", "optim.lr: expected a finite number, got nan"),
                                  ("--lr", "-1", "optim.lr: expected a positive value"),
                                  ("--iters", "0", "iterations: expected a positive value"),
                                  ("--batch-size", "0", "data.batch_size: expected a positive value"),
                                  ("--workers", "-1", "data.workers: expected a value >= 0")]:  # fmt: skip
        dest = root / f"opt{len(table.rows)}"
        code, text, _ = _run(["train", str(recipe), option, value, "--out", str(dest), "--device", "cpu"], timeout)
        problem = _checks(code, text, 2, f"Invalid value for '{option}'", needle)
        if not problem and ("damaged" in text or dest.exists()):
            problem = "blamed the weights or created the run folder"
        table.add(f"{option} {value}", "train", f"usage error (exit 2) naming {option}", problem)

    workers_cases(root, hr, table, timeout)


def _last_iter(out: Path) -> int:
    found = sorted((out / "checkpoints").glob("iter_*.pt"))
    return int(found[-1].stem.split("_")[1]) if found else 0


def workers_cases(root: Path, hr: Path, table: Table, timeout: float) -> None:
    from sruscale._proc import available_cpus

    cpus = available_cpus()
    recipe = _recipe(root / "workers.toml", hr, workers=100_000)
    code, text, secs = _run(["train", str(recipe), "--out", str(root / "w1"), "--device", "cpu", "--stop-at", "3"],
                            timeout)  # fmt: skip
    table.add("data.workers = 100000", "train", f"clamped to {cpus} with a note, exit 0",
              _checks(code, text, 0, f"data.workers = 100000: using {cpus} DataLoader workers"), f"ran in {secs:.1f} s")

    proc = _start(["train", str(recipe), "--out", str(root / "w2"), "--device", "cpu"], root / "w2.log")
    try:
        up = _wait(lambda: len(_children(proc.pid)) >= cpus, timeout)
        most = len(_children(proc.pid))
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        secs = time.monotonic() - t0
        problem = "" if up else f"workers did not start ({_flat((root / 'w2.log').read_text())[-200:]})"
        if not problem and most > cpus + 2:
            problem = f"{most} child processes"
        if not problem and proc.returncode != 130:
            problem = f"exit {proc.returncode} after {secs:.1f} s"
        table.add("SIGTERM with 100000 workers asked", "train", "exit 130 within 20 s", problem,
                  f"stopped in {secs:.1f} s, {most} workers")  # fmt: skip
    finally:
        _stop(proc)

    proc = _start(["train", str(recipe), "--out", str(root / "w3"), "--device", "cpu"], root / "w3.log")
    try:
        up = _wait(lambda: len(_children(proc.pid)) >= cpus, timeout)
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the trainer alone, as the OOM killer would
        proc.wait()
        _wait(lambda: not any(_alive(p) for p in workers), 2.0)
        orphans = [p for p in workers if _alive(p)]
        problem = ("" if up else "workers did not start") or (f"{len(orphans)} orphans" if orphans else "")
        table.add("SIGKILL of the trainer", "train", "no worker alive 2 s later", problem,
                  f"{len(workers)} workers, 0 orphans")  # fmt: skip
        for p in orphans:
            os.kill(p, signal.SIGKILL)
    finally:
        _stop(proc)


# --------------------------------------------------------------------------- ONNX Runtime cache


def onnx_cases(root: Path, table: Table, timeout: float) -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        table.add("onnxruntime backend", "upscale", "runs", "onnx/onnxruntime not installed")
        return
    import torch

    import sruscale

    torch.manual_seed(0)
    mine = sruscale.save_model(sruscale.create_model("fsrcnn", scale=2, in_channels=3, d=4, s=2, m=1),
                               root / "mine.safetensors")  # fmt: skip
    torch.manual_seed(1)
    other = sruscale.save_model(sruscale.create_model("fsrcnn", scale=2, in_channels=3, d=4, s=2, m=1),
                                root / "other.safetensors")  # fmt: skip
    src = _images(root / "src", n=1, size=20)
    cache = root / "cache"
    env = {**ENV, "SRUSCALE_CACHE_DIR": str(cache)}

    def upscale(weights: Path, dest: str) -> tuple[int | None, str]:
        code, text, _ = _run(["upscale", str(src), "-o", str(root / dest), "-w", str(weights), "--backend",
                              "onnxruntime", "--overwrite"], timeout, env)  # fmt: skip
        return code, text

    code, text = upscale(other, "o_other")
    code, text = upscale(mine, "o_ref")
    ref = (root / "o_ref" / "0_x2.png").read_bytes() if (root / "o_ref" / "0_x2.png").is_file() else b""
    graphs = {json.loads(Path(f"{p}.json").read_text())["key"]["weights_sha256"][:8]: p
              for p in (cache / "onnx").glob("*.onnx")}  # fmt: skip
    table.add("first export", "upscale", "exit 0, graph + checksum record cached",
              _checks(code, text, 0) or ("" if len(graphs) == 2 and ref else f"{len(graphs)} graphs cached"))
    from sruscale.upscaling import model_digest
    from sruscale.weights import load_model

    mine_graph = graphs.get(model_digest(load_model(weights=mine))[:8])
    other_graph = next((p for k, p in graphs.items() if p != mine_graph), None)
    if mine_graph is None or other_graph is None:
        return
    record = Path(f"{mine_graph}.json")
    saved = (mine_graph.read_bytes(), record.read_bytes())

    def damaged(case: str, damage: Callable[[], None], note: str) -> None:
        mine_graph.write_bytes(saved[0])
        record.write_bytes(saved[1])
        damage()
        code, text = upscale(mine, "o_case")
        out = root / "o_case" / "0_x2.png"
        problem = _checks(code, text, 0, note, "exporting it again")
        if not problem and (not out.is_file() or out.read_bytes() != ref):
            problem = "output differs from the first run's"
        table.add(case, "upscale", "rebuilt with a one-line note, same output", problem)

    damaged("truncated cached graph", lambda: mine_graph.write_bytes(saved[0][: len(saved[0]) // 3]), "is damaged")
    damaged("another weights' graph under this name", lambda: shutil.copyfile(other_graph, mine_graph),
            "is damaged (checksum mismatch)")  # fmt: skip
    damaged("another weights' graph and record", lambda: (shutil.copyfile(other_graph, mine_graph),
            shutil.copyfile(f"{other_graph}.json", record)), "was made for other weights_sha256")  # fmt: skip
    damaged("garbled checksum record", lambda: record.write_text("{"), "has a damaged checksum record")
    code, text = upscale(mine, "o_again")
    table.add("valid cache after the rebuilds", "upscale", "used silently",
              _checks(code, text, 0) or ("not silent" if "ONNX cache" in text else ""))


# --------------------------------------------------------------------------- MOS study server


def mos_cases(root: Path, table: Table, timeout: float) -> None:
    gt, methods = _images(root / "gt", n=2), [_images(root / "bicubic", n=2), _images(root / "fsrcnn", n=2)]
    db = root / "study.sqlite"
    log = root / "mos.log"
    proc = _start(["evaluate", "mos-study", *map(str, methods), "--gt", str(gt), "--db", str(db), "--port", "0"], log)
    try:
        found: list[int] = []

        def port() -> bool:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text(errors="replace"))
            if m:
                found.append(int(m.group(1)))
            return bool(m)

        if not _wait(port, timeout):
            table.add("server starts", "mos-study", "prints its URL", f"no URL: {_flat(log.read_text())[-200:]}")
            return
        mos_requests(found[0], db, table)
        up = proc.poll() is None and _request(found[0], "GET", "/", [("Host", f"127.0.0.1:{found[0]}")])[0] == 200
        table.add("server still up", "mos-study", "answers GET /", "" if up else "down")
    finally:
        _stop(proc, signal.SIGINT)
    text = log.read_text(errors="replace")
    table.add("server console", "mos-study", "no traceback", "traceback printed" if "Traceback" in text else "")


def _request(port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> tuple[int, bytes]:
    """One request with exactly these headers; ``(status, body)``, status 0 when the connection dropped."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        con.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers:
            con.putheader(k, v)
        con.endheaders(body or None)
        r = con.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        con.close()


def mos_requests(port: int, db: Path, table: Table) -> None:
    host = f"127.0.0.1:{port}"
    status, page = _request(port, "GET", "/", [("Host", host)])
    m = re.search(rb'name="sruscale-token" content="([0-9a-f]+)"', page)
    token = m.group(1).decode() if m else ""
    table.add("token delivered in the page", "mos-study", "GET / 200 with the token", "" if token else f"{status}")
    status, state = _request(port, "GET", "/api/state?rater=alice", [("Host", host)])
    trial = json.loads(state)["trial"]["id"] if status == 200 else 1
    good = json.dumps({"rater": "alice", "trial": trial, "score": 4}).encode()

    def post(body: bytes, *, ctype: str = "application/json", tok: str | None = None, h: str | None = None,
             origin: str | None = None, length: str | None = "auto") -> list[tuple[str, str]]:  # fmt: skip
        headers = [("Host", h or host), ("Content-Type", ctype)]
        if tok is not None:
            headers.append(("X-Sruscale-Token", tok))
        if origin is not None:
            headers.append(("Origin", origin))
        if length is not None:
            headers.append(("Content-Length", str(len(body)) if length == "auto" else length))
        return headers

    deep = b"[" * 100_000 + b"]" * 100_000
    cases: list[tuple[str, str, list[tuple[str, str]], bytes, int]] = [
        ("cross-site text/plain POST", "POST", post(good, ctype="text/plain", origin="http://evil.example"), good, 403),
        ("no token", "POST", post(good), good, 403),
        ("wrong token", "POST", post(good, tok="0" * 32), good, 403),
        ("other Origin", "POST", post(good, tok=token, origin="http://evil.example"), good, 403),
        ("DNS rebinding Host (POST)", "POST", post(good, tok=token, h=f"evil.example:{port}"), good, 403),
        ("DNS rebinding Host (GET state)", "GET", [("Host", f"evil.example:{port}")], b"", 403),
        ("text/plain with the token", "POST", post(good, ctype="text/plain", tok=token), good, 415),
        ("score 1e999", "POST", post(b := good.replace(b'"score": 4', b'"score": 1e999'), tok=token), b, 400),
        ("trial 1e999", "POST", post(b := json.dumps({"rater": "alice", "trial": 0, "score": 4}).encode()
                                     .replace(b'"trial": 0', b'"trial": 1e999'), tok=token), b, 400),  # fmt: skip
        ("score NaN", "POST", post(b := good.replace(b'"score": 4', b'"score": NaN'), tok=token), b, 400),
        ("Content-Length -1", "POST", post(good, tok=token, length="-1"), good, 400),
        ("Content-Length missing", "POST", post(b"", tok=token, length=None), b"", 400),
        ("Content-Length 10^12", "POST", post(b"", tok=token, length=str(10**12)), b"", 413),
        ("body over 64 KiB", "POST", post(b := b'{"pad": "' + b"x" * 100_000 + b'"}', tok=token), b, 413),
        ("JSON 100000 levels deep", "POST", post(deep[:32000] + deep[-32000:], tok=token), deep[:32000] + deep[-32000:],
         400),  # fmt: skip
        ("blank rater", "POST", post(b := good.replace(b'"alice"', b'"   "'), tok=token), b, 400),
        ("score 9", "POST", post(b := good.replace(b'"score": 4', b'"score": 9'), tok=token), b, 400),
        ("unknown key", "POST", post(b := good.replace(b'"score": 4', b'"score": 4, "x": 1'), tok=token), b, 400),
        ("not JSON", "POST", post(b"{{{", tok=token), b"{{{", 400),
    ]
    for name, method, headers, body, want in cases:
        path = "/api/answer" if method == "POST" else "/api/state?rater=alice"
        status, reply = _request(port, method, path, headers, body)
        try:
            is_json = "error" in json.loads(reply)
        except ValueError:
            is_json = False
        problem = "" if status == want and is_json else f"{status or 'dropped connection'} {reply[:80]!r}"
        table.add(name, "mos-study", f"{want} with a JSON error", problem)
    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    table.add("hostile requests stored nothing", "mos-study", "0 answers", "" if stored == 0 else f"{stored} stored")
    status, _ = _request(port, "POST", "/api/answer", post(good, tok=token, origin=f"http://{host}"), good)
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT rater, score FROM answers").fetchall()
    table.add("the page's own answer", "mos-study", "200, stored once",
              "" if status == 200 and rows == [("alice", 4)] else f"{status} {rows}")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="build the cases here and keep them (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per command before it counts as hung")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    root = args.keep or Path(tempfile.mkdtemp(prefix="sruscale_hostile_services_"))
    root.mkdir(parents=True, exist_ok=True)
    table = Table()
    try:
        for name, cases in (("train", train_cases), ("onnx", onnx_cases), ("mos", mos_cases)):
            (root / name).mkdir()
            cases(root / name, table, args.timeout)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    rows = [(r.case, r.command, r.expected, r.got, "PASS" if r.ok else "FAIL") for r in table.rows]
    widths = [min(max(len(r[i]) for r in rows), 60) for i in range(4)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(("case", "command", "expected", "got"), widths, strict=True))
          + " | result")  # fmt: skip
    print("-+-".join("-" * w for w in widths) + "-+-------")
    for r in rows:
        print(" | ".join(c[:w].ljust(w) for c, w in zip(r[:4], widths, strict=True)) + f" | {r[4]}")
    passed = sum(r.ok for r in table.rows)
    print(f"\n{passed} passed, {len(rows) - passed} failed, {len(rows)} cases")
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
