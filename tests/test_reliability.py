"""Hostile folders and interrupted runs for `degrade` and `upscale`: leftovers, orphans, collisions, claims."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sruscale._fs import atomic_write, remove_stale_temps
from sruscale.cli import app
from sruscale.degradations import Pipeline, plan_degrade
from sruscale.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _images(folder: Path, names: list[str], size: int = 24) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(
            folder / name, format="PNG"
        )


def _one_line(output: str) -> str:
    return " ".join(output.split())


# --------------------------------------------------------------------------- temporary files


def test_stale_temps_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / f".a.png.{dead_pid}.0123abcd.tmp", tmp_path / "sub" / f".b.png.{dead_pid}.deadbeef.tmp",
             tmp_path / ".c.png.89abcdef.tmp"]  # the last: a name from before the pid was in it
    live = tmp_path / f".d.png.{os.getpid()}.01234567.tmp"
    mine = [tmp_path / "a.png", tmp_path / ".hidden", tmp_path / "x.tmp", tmp_path / ".e.png.1.tmp"]
    for p in [*stale, live, *mine]:
        p.write_bytes(b"x")
    assert remove_stale_temps(tmp_path, name="b.png") == 0  # not in this folder without recursive
    assert remove_stale_temps(tmp_path, recursive=True) == 3
    assert not any(p.exists() for p in stale) and live.exists() and all(p.exists() for p in mine)


def test_atomic_write_temp_names_carry_the_pid(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "out.png") as tmp:
        assert tmp.name.startswith(f".out.png.{os.getpid()}.") and tmp.name.endswith(".tmp")
        assert remove_stale_temps(tmp_path) == 0  # a running writer's file is kept
        tmp.write_bytes(b"png")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_degrade_rerun_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    _images(tmp_path / "hr", ["a.png", "b.png"])
    out = tmp_path / "out"
    left = [out / "LR_x2" / ".a.png.999999999.0123abcd.tmp", out / "HR" / ".b.png.0123abcd.tmp"]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0" * 1000)
    res = runner.invoke(app, ["degrade", str(tmp_path / "hr"), str(out), "--scale", "2"])
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in left)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "HR/a.png", "HR/b.png", "LR_x2/a.png", "LR_x2/b.png", "degrade.json", "manifest.jsonl"]


# --------------------------------------------------------------------------- degrade inputs


def test_degrade_reports_a_dangling_symlink_like_upscale(tmp_path: Path) -> None:
    _images(tmp_path / "hr", ["a.png"])
    (tmp_path / "hr" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    res = runner.invoke(app, ["degrade", str(tmp_path / "hr"), str(tmp_path / "out"), "--scale", "2"])
    assert res.exit_code == 1
    text = _one_line(res.output)
    assert "failed: gone.png:" in text and "gone.png: file not found" in text and "1 pairs written" in text


def test_degrade_input_inside_output_folder_says_so(tmp_path: Path) -> None:
    _images(tmp_path / "ds" / "HR", ["a.png"])
    res = runner.invoke(app, ["degrade", str(tmp_path / "ds" / "HR"), str(tmp_path / "ds"), "--scale", "2"],
                        env={"COLUMNS": "300"})
    assert res.exit_code != 0
    text = _one_line(str(res.exception) if isinstance(res.exception, ConfigError) else res.output)
    assert "is the output folder" in text and "inside it" in text and "no images in" not in text


@pytest.mark.parametrize(("names", "clash"), [(["a.png", "A.png"], "a.png"), (["a.PNG", "A.bmp"], "a.png")])
def test_degrade_case_insensitive_output_collision(tmp_path: Path, names: list[str], clash: str) -> None:
    _images(tmp_path / "hr", names)
    if len({p.name for p in (tmp_path / "hr").iterdir()}) < 2:
        pytest.skip("case-insensitive file system: the two names are one file")
    with pytest.raises(ConfigError, match=r"would both be written as") as exc:
        plan_degrade(tmp_path / "hr", tmp_path / "out", pipeline=Pipeline.preset("bi", 2))
    assert all(n in str(exc.value) for n in names)


# --------------------------------------------------------------------------- upscale collisions


@pytest.mark.parametrize(("names", "fmt"), [(["a.png", "a.PNG"], "same"), (["b.jpg", "B.png"], "png")])
def test_upscale_case_insensitive_output_collision(tmp_path: Path, names: list[str], fmt: str) -> None:
    from sruscale.upscaling import plan_jobs

    _images(tmp_path / "in", names)
    if len(list((tmp_path / "in").iterdir())) < 2:
        pytest.skip("case-insensitive file system: the two names are one file")
    with pytest.raises(ConfigError, match="would both be written to") as exc:
        plan_jobs([tmp_path / "in"], tmp_path / "out", suffix="_x2", fmt=fmt)
    assert all(n in str(exc.value) for n in names)


# --------------------------------------------------------------------------- orphaned workers


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_degrade_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    _images(tmp_path / "hr", [f"{i:02d}.png" for i in range(48)], size=256)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sruscale", "degrade", str(tmp_path / "hr"), str(tmp_path / "out"),
         "--workers", "2", "--preset", "realistic"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            time.sleep(0.2)
            workers = _descendants(proc.pid)
        if len(workers) < 2:
            pytest.skip("degrade finished before its workers could be observed (machine too fast)")
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        survivors = [w for w in workers if _alive(w)]
        assert not survivors, f"workers {survivors} outlived their parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group (start_new_session): leftovers of a failure
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- claims (concurrent upscale runs)

_HOLD = """
import sys, time
from sruscale._claims import claim
with claim(sys.argv[1]) as mine:
    print("held" if mine else "busy", flush=True)
    time.sleep(600)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.skipif(sys.platform == "win32", reason="claims need fcntl")
def test_claim_is_exclusive_and_freed_by_kill_9(tmp_path: Path) -> None:
    from sruscale._claims import claim, claim_path

    out = tmp_path / "a_x2.png"
    proc = _holder(out)
    try:
        assert claim_path(out).is_file()
        with claim(out) as mine:
            assert not mine
        assert claim_path(out).is_file()  # the holder's file is left alone
        temp = tmp_path / f".a_x2.png.{proc.pid}.0123abcd.tmp"  # what the holder was writing
        temp.write_bytes(b"partial")
    finally:
        proc.kill()
        proc.wait()
    with claim(out) as mine:
        assert mine and not temp.exists()
    assert not claim_path(out).exists()
    with claim(out) as mine, claim(out) as again:  # one process, two claims: the second is refused too
        assert mine and not again


@pytest.mark.skipif(sys.platform == "win32", reason="claims need fcntl")
def test_upscale_skips_an_output_another_run_is_writing(tmp_path: Path) -> None:
    import torch

    import sruscale
    from sruscale._claims import claim_path
    from sruscale.upscaling import UpscaleSettings, plan_jobs, run_jobs

    _images(tmp_path / "in", ["a.png", "b.png", "c.png"], size=12)
    jobs = plan_jobs([tmp_path / "in"], tmp_path / "out", suffix="_x2", fmt="png")
    model = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1)
    (tmp_path / "out").mkdir()
    proc = _holder(jobs[1].output)
    try:
        with torch.no_grad():
            results = list(run_jobs(jobs, model, UpscaleSettings()))
    finally:
        proc.kill()
        proc.wait()
    assert [r.status for r in results] == ["done", "skipped", "done"]
    assert results[1].reason == "another process is writing it" and not jobs[1].output.exists()
    rerun = list(run_jobs(jobs, model, UpscaleSettings()))  # the holder died: its file is done now
    assert [r.status for r in rerun] == ["skipped", "done", "skipped"]
    left = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".sruscale")  # settings records
    assert left == ["a_x2.png", "b_x2.png", "c_x2.png"]  # no claim or temp file left
    assert not claim_path(jobs[1].output).exists()
