"""`train --out` never touches files it did not write; resume survives torn logs, broken checkpoints, full disks."""

from __future__ import annotations

import copy
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sruscale.errors import CheckpointError, ConfigError, WriteError
from sruscale.training import fit, parse_config
from sruscale.training.checkpoints import RUN_MARKER


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _cfg(hr: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "iterations": 4,
        "seed": 1,
        "model": {"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 1, "d": 4, "s": 2, "m": 1}},
        "data": {"train_hr": [str(hr)], "patch_size": 8, "batch_size": 1},
        "val": {"hr": ""},
        "checkpoint": {"every": 2, "keep": 3},
        "log": {"every": 1, "tensorboard": False},
    }
    cfg.update(over)
    return cfg


def _fit(hr: Path, out: Path, **kw: Any):
    return fit(parse_config(copy.deepcopy(_cfg(hr))), out_dir=out, device="cpu", **kw)


def _toml(hr: Path, path: Path) -> Path:
    path.write_text(
        f'iterations = 4\nseed = 1\n[model]\nname = "fsrcnn"\nscale = 2\n'
        f'hparams = {{in_channels = 1, d = 4, s = 2, m = 1}}\n'
        f'[data]\ntrain_hr = [{json.dumps(str(hr))}]\npatch_size = 8\nbatch_size = 1\n'
        f'[val]\nhr = ""\n[checkpoint]\nevery = 2\n[log]\nevery = 1\ntensorboard = false\n'
    )
    return path


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from sruscale.cli import main

    monkeypatch.setattr(sys, "argv", ["sruscale", *argv])
    monkeypatch.delenv("SRUSCALE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    code = exc.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


# --------------------------------------------------------------------------- --out safety


@pytest.mark.parametrize("name", ["train.csv", "val.csv", "log.jsonl", "config.json", "notes.txt"])
def test_foreign_folder_is_refused_and_left_untouched(hr: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text("iter,loss\n5,0.1\n7,0.2\n")
    with pytest.raises(ConfigError, match=r"mine is not empty and not a sruscale run folder"):
        _fit(hr, out)
    assert (out / name).read_text() == "iter,loss\n5,0.1\n7,0.2\n"
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_foreign_csv_with_text_column_is_one_line_error(
    hr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.csv").write_text("name,score\nalice,3\n")
    code, err = _main(["train", str(_toml(hr, tmp_path / "r.toml")), "--out", str(out), "--device", "cpu"],
                      monkeypatch, capsys)
    assert code == 1
    assert "Traceback" not in err and "mine is not empty and not a sruscale run folder" in err
    assert len(err.strip().splitlines()) == 1
    assert (out / "train.csv").read_text() == "name,score\nalice,3\n"


def test_new_and_empty_folders_are_marked_runs(hr: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        r = _fit(hr, out, stop_at=2)
        assert r.iteration == 2 and (out / RUN_MARKER).is_file()
        assert _fit(hr, out, resume=True).iteration == 4  # its own files: resumed, logs kept


def test_run_folder_without_marker_from_older_sruscale_resumes(hr: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    _fit(hr, out, stop_at=2)
    (out / RUN_MARKER).unlink()
    assert _fit(hr, out, resume=True).iteration == 4
    assert (out / RUN_MARKER).is_file()


def test_failed_run_leaves_no_folder(hr: Path, tmp_path: Path) -> None:
    cfg = _cfg(hr)
    cfg["data"] = {**cfg["data"], "train_hr": [str(tmp_path / "missing")]}
    with pytest.raises(ConfigError):
        fit(parse_config(cfg), out_dir=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file(hr: Path, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        _fit(hr, tmp_path / "f")


@pytest.mark.parametrize("value", ["0", "-2"])
def test_stop_at_must_be_positive(hr: Path, tmp_path: Path, value: str) -> None:
    from typer.testing import CliRunner

    from sruscale.cli import app

    res = CliRunner().invoke(app, ["train", str(_toml(hr, tmp_path / "r.toml")), "--stop-at", value,
                                   "--out", str(tmp_path / "run"), "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "Invalid value for '--stop-at'" in res.output and "greater than or equal to 1" in res.output
    with pytest.raises(ConfigError, match="stop_at must be >= 1"):
        _fit(hr, tmp_path / "run2", stop_at=int(value))
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()


# --------------------------------------------------------------------------- torn logs, broken checkpoints


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_torn_jsonl_line_is_dropped_on_resume(hr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    with (out / "log.jsonl").open("a") as f:
        f.write('{"event": "train", "iter": 3, "lo')  # power loss mid-line
    with caplog.at_level(logging.WARNING):
        assert _fit(hr, out, resume=True).iteration == 4
    assert "log.jsonl: dropped 1 malformed line" in caplog.text
    records = [json.loads(line) for line in _rows(out / "log.jsonl")]  # every line parses
    assert [r["iter"] for r in records if r["event"] == "train"] == [1, 2, 3, 4]


def test_torn_csv_row_is_not_glued_to_the_next(hr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    with (out / "train.csv").open("a") as f:
        f.write("3,0.00")  # a partial row, no newline
    with caplog.at_level(logging.WARNING):
        _fit(hr, out, resume=True)
    rows = _rows(out / "train.csv")
    header = rows[0].split(",")
    iters = [int(r.split(",")[header.index("iter")]) for r in rows[1:]]
    assert iters == [1, 2, 3, 4]
    assert all(len(r.split(",")) == len(header) for r in rows)
    assert "train.csv: dropped 1 malformed line" in caplog.text


def test_append_starts_on_a_new_line(tmp_path: Path) -> None:
    from sruscale.training.checkpoints import _RunLog

    log = _RunLog(tmp_path, start=0, tensorboard=False)
    (tmp_path / "log.jsonl").write_text('{"event": "x", "iter": 0')  # torn after the log was opened
    log.write("checkpoint", {"iter": 1, "path": "p"})
    lines = _rows(tmp_path / "log.jsonl")
    assert len(lines) == 2 and json.loads(lines[1])["iter"] == 1


def test_empty_newest_checkpoint_falls_back(hr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=3)  # checkpoints at 2 and 3
    newest = out / "checkpoints" / "iter_00000003.pt"
    newest.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        r = _fit(hr, out, resume=True)
    assert r.iteration == 4
    assert "skipping checkpoint iter_00000003.pt" in caplog.text and "resuming from iter_00000002.pt" in caplog.text
    # the broken one was rewritten by the resumed run (iteration 3 is not a checkpoint step: still broken)
    assert (out / "checkpoints" / "iter_00000004.pt").stat().st_size > 0


def test_resumed_run_matches_uninterrupted_after_fallback(hr: Path, tmp_path: Path) -> None:
    ref = _fit(hr, tmp_path / "ref")
    out = tmp_path / "run"
    _fit(hr, out, stop_at=3)
    (out / "checkpoints" / "iter_00000003.pt").write_bytes(b"PK\x03\x04truncated")
    _fit(hr, out, resume=True)
    a = torch.load(ref.checkpoint, weights_only=True)["model"]
    b = torch.load(out / "checkpoints" / "iter_00000004.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_loadable_checkpoint_is_one_error(hr: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    (out / "checkpoints" / "iter_00000002.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint in .* loads"):
        _fit(hr, out, resume=True)


class _RunsCode:
    def __reduce__(self):  # would call os.getcwd when unpickled without weights_only
        return (os.getcwd, ())


def test_pickled_objects_in_a_checkpoint_are_refused_without_torchs_advice(hr: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    torch.save({"format": "sruscale-train", "x": _RunsCode()}, out / "checkpoints" / "iter_00000002.pt")
    with pytest.raises(CheckpointError, match="no checkpoint in .* loads") as info:
        _fit(hr, out, resume=True)
    message = str(info.value)
    assert "refused" in message and "getcwd" in message
    assert "weights_only" not in message and "\n" not in message


# --------------------------------------------------------------------------- full disk


def _enospc(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _torch_writer_failed(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file data/0")


@pytest.mark.parametrize("failure", [_enospc, _torch_writer_failed])
def test_full_disk_at_checkpoint_is_one_line(
    hr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failure: Any
) -> None:
    monkeypatch.setattr(torch, "save", failure)
    out = tmp_path / "run"
    code, err = _main(["train", str(_toml(hr, tmp_path / "r.toml")), "--out", str(out), "--device", "cpu"],
                      monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    assert "error: cannot write" in err and "iter_00000002.pt" in err
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_full_disk_in_safetensors_and_logs(hr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    import sruscale.weights._checkpoint

    def failing_save_file(*args: Any, **kwargs: Any) -> None:
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    monkeypatch.setattr(sruscale.weights._checkpoint, "save_file", failing_save_file)
    with pytest.raises(WriteError, match=r"last.safetensors: No space left on device"):
        _fit(hr, tmp_path / "a")
    monkeypatch.setattr(sruscale.weights._checkpoint, "save_file", safetensors.torch.save_file)

    real_open = Path.open

    def full_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any):
        if "a" in mode and self.name == "train.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full_open)
    with pytest.raises(WriteError, match=r"train.csv: No space left on device"):
        _fit(hr, tmp_path / "b")


def test_atomic_write_maps_write_errors(tmp_path: Path) -> None:
    from sruscale._fs import atomic_write

    with pytest.raises(WriteError, match="cannot write .*x.bin: No space left"), atomic_write(tmp_path / "x.bin"):
        _enospc()
    with pytest.raises(KeyError), atomic_write(tmp_path / "y.bin"):  # not a write error: unchanged
        raise KeyError("bug")
    assert not list(tmp_path.iterdir())


def test_atomic_write_read_only_folder(tmp_path: Path) -> None:
    from sruscale._fs import atomic_write

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(WriteError, match="Permission denied"), atomic_write(ro / "z.bin") as tmp:
            tmp.write_bytes(b"z")
    finally:
        ro.chmod(0o700)


def test_resume_removes_temp_files_of_a_killed_run(hr: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    left = [out / "checkpoints" / ".iter_00000004.pt.999999999.0123abcd.tmp",
            out / ".last.safetensors.999999999.89abcdef.tmp"]
    for p in left:
        p.write_bytes(b"\0" * 100)
    _fit(hr, out, resume=True)
    assert not any(p.exists() for p in left)
    assert not [p for p in out.rglob("*.tmp")]


class _Killed(BaseException):
    """Stands for SIGKILL: nothing catches it."""


def test_kill_between_checkpoint_and_weights_export_resumes_to_the_same_weights(
    hr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    import sruscale.training.loop as loop

    _fit(hr, tmp_path / "ref")
    real_save_model = loop.save_model

    def save_model(model: Any, path: Path, *, extra: dict[str, Any]) -> Path:
        if path.name == "last.safetensors" and extra["iterations"] == 4:
            raise _Killed
        return real_save_model(model, path, extra=extra)

    monkeypatch.setattr(loop, "save_model", save_model)
    with pytest.raises(_Killed):
        _fit(hr, tmp_path / "run")
    monkeypatch.setattr(loop, "save_model", real_save_model)
    assert _fit(hr, tmp_path / "run", resume=True).iteration == 4
    a, b = load_file(tmp_path / "ref" / "last.safetensors"), load_file(tmp_path / "run" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_an_older_schema_resumes() -> None:
    """Renamed values (val.metric psnr_y -> psnr) and options added since (at their defaults) are no change."""
    import copy

    from sruscale.training.checkpoints import _upgrade_config, resume_changes
    from sruscale.training.config import config_to_dict, parse_config

    recipe = {"iterations": 10, "model": {"name": "fsrcnn", "scale": 2}, "data": {"train_hr": ["hr"]},
              "val": {"hr": "val", "metric": "psnr"}}  # fmt: skip
    now = config_to_dict(parse_config(recipe))
    saved = copy.deepcopy(now)
    saved["val"]["metric"] = "psnr_y"
    del saved["model"]["init_partial"]
    saved["loss"] = [{"type": "l1"}]  # recorded as written before [[loss]] tables were typed
    assert resume_changes(saved, now)[1]  # compared as saved: refused
    assert resume_changes(_upgrade_config(saved), now) == ([], [])
    saved["optim"]["lr"] = 0.5  # a real change is still refused
    assert any("optim.lr" in line for line in resume_changes(_upgrade_config(saved), now)[1])


# --------------------------------------------------------------------------- one run per folder

_HOLD = """
import sys, time
from sruscale._claims import lock_folder
with lock_folder(sys.argv[1], name=".sruscale-lock", what="x"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(out: Path):  # noqa: ANN202
    """Another process holding ``out`` like a live run does."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_a_folder_held_by_a_live_run_is_refused_before_anything_is_written(
    hr: Path, tmp_path: Path, resume: bool
) -> None:
    from sruscale.errors import BusyError

    out = tmp_path / "run"
    _fit(hr, out, stop_at=2)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = _holder(out)
    try:
        with pytest.raises(BusyError, match=rf"--out .*run is in use by another sruscale process \(pid {proc.pid} on "
                                            r".+, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); wait for it"):
            _fit(hr, out, resume=resume)
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".sruscale-lock"}
        assert after == before  # config.json, logs, weights: untouched
    finally:
        proc.kill()
        proc.wait()
    # the holder was killed (kill -9): its lock is stale and is taken over silently
    assert (out / ".sruscale-lock").is_file()
    assert _fit(hr, out, resume=True).iteration == 4
    assert not (out / ".sruscale-lock").exists()


def test_two_runs_into_one_new_folder_in_process(hr: Path, tmp_path: Path) -> None:
    """The lock is taken before the folder exists; a run that fails (here: the second) leaves no folder."""
    from sruscale._claims import lock_folder
    from sruscale.errors import BusyError

    out = tmp_path / "new" / "run"
    with lock_folder(out, name=".sruscale-lock", what="first"):
        assert [p.name for p in out.iterdir()] == [".sruscale-lock"]
        with pytest.raises(BusyError, match=rf"pid {os.getpid()} on "):
            _fit(hr, out)
        assert [p.name for p in out.iterdir()] == [".sruscale-lock"]
    assert not (tmp_path / "new").exists()  # made only for the lock: removed with it
    assert _fit(hr, out).iteration == 4
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [RUN_MARKER]


def test_cli_second_run_is_one_line_naming_the_holder(
    hr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        code, err = _main(["train", str(_toml(hr, tmp_path / "r.toml")), "--out", str(out), "--device", "cpu"],
                          monkeypatch, capsys)
    finally:
        proc.kill()
        proc.wait()
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"is in use by another sruscale process (pid {proc.pid} on" in err
    assert sorted(p.name for p in out.iterdir()) == [".sruscale-lock"]  # the holder's, nothing of the refused run


def test_a_stale_lock_alone_is_not_a_foreign_folder(hr: Path, tmp_path: Path) -> None:
    """kill -9 before the first write leaves a folder holding only the lock file: a new run takes it."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".sruscale-lock").write_text('{"pid": 999999999, "host": "gone", "started": "2020-01-01T00:00:00Z"}\n')
    assert _fit(hr, out).iteration == 4


# --------------------------------------------------------------------------- recipe values: one validator, one table


def _recipe_with_model(tmp_path: Path, hparams: str, *, name: str = "fsrcnn", scale: int = 2) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(f'iterations = 4\n[model]\nname = "{name}"\nscale = {scale}\nhparams = {{{hparams}}}\n'
                    '[data]\ntrain_hr = ["nowhere"]\n')
    return path


@pytest.mark.parametrize(
    ("hparams", "needle"),
    [
        ("d = 100000000", r"model\.hparams\.d = 100000000 is out of range \(expected 1\.\.2048\)"),
        ("m = -1", r"model\.hparams\.m = -1 is out of range \(expected 0\.\.1024\)"),
        ("in_channels = 7", r"model\.hparams\.in_channels = 7 is out of range \(expected 1\.\.3\)"),
        ("d = 1e9", r"model\.hparams\.d: expected an integer, got 1000000000\.0"),
        ("d = 99999999999999999999999999999999999999999999", r"model\.hparams\.d = a 147-bit integer is out of range"),
        ("residual = 1", r"model\.hparams\.residual: expected true/false"),
        ("depth = 3", r"model\.hparams: fsrcnn has no hyperparameter 'depth'"),
    ],
)
def test_recipe_model_hparams_are_bounded_before_anything_is_built(tmp_path: Path, hparams: str, needle: str) -> None:
    from sruscale.training import load_recipe

    with pytest.raises(ConfigError, match=rf"r\.toml: {needle}"):
        load_recipe(_recipe_with_model(tmp_path, hparams))


def test_recipe_model_name_scale_and_float_hparams(tmp_path: Path) -> None:
    from sruscale.training import load_recipe

    with pytest.raises(ConfigError, match=r"model\.name: unknown model 'fsrcn'.*did you mean 'fsrcnn'"):
        load_recipe(_recipe_with_model(tmp_path, "", name="fsrcn"))
    with pytest.raises(ConfigError, match=r"model\.scale: fsrcnn supports scales [0-9, ]+; got x1000"):
        load_recipe(_recipe_with_model(tmp_path, "", scale=1000))
    floats = [k for k, v in __import__("inspect").signature(__import__("sruscale").models.REGISTRY["edsr"]).parameters
              .items() if isinstance(v.default, float)]  # fmt: skip
    assert floats, "edsr has a float hyperparameter (res_scale)"
    with pytest.raises(ConfigError, match=rf"model\.hparams\.{floats[0]} = inf is not a finite number"):
        load_recipe(_recipe_with_model(tmp_path, f"{floats[0]} = inf", name="edsr", scale=2))


def test_weights_metadata_and_recipes_share_one_bounds_table(tmp_path: Path) -> None:
    """The same value gets the same verdict from a weights file and from a recipe."""
    import sruscale.weights._checkpoint as ckpt
    from sruscale.errors import CheckpointError
    from sruscale.models import _hparams
    from sruscale.training import load_recipe

    assert not hasattr(ckpt, "_INT_BOUNDS")  # one table, in sruscale.models._hparams
    with pytest.raises(CheckpointError) as file_error:
        ckpt.check_hparams("fsrcnn", {"d": 10**8}, source="w.safetensors")
    with pytest.raises(ConfigError) as recipe_error:
        load_recipe(_recipe_with_model(tmp_path, "d = 100000000"))
    tail = "hparams.d = 100000000 is out of range (expected 1..2048)"
    assert str(file_error.value).endswith(tail) and str(recipe_error.value).endswith(tail)
    assert _hparams.INT_BOUNDS["d"] == (1, 2048)


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--lr", "inf", "optim.lr: expected a finite number, got inf"),
        ("--lr", "nan", "optim.lr: expected a finite number, got nan"),
        ("--lr", "-1", "optim.lr: expected a positive value, got -1.0"),
        ("--lr", "0", "optim.lr: expected a positive value, got 0.0"),
        ("--iters", "0", "iterations: expected a positive value, got 0"),
        ("--batch-size", "0", "data.batch_size: expected a positive value, got 0"),
        ("--workers", "-1", "data.workers: expected a value >= 0, got -1"),
    ],
)
def test_cli_overrides_go_through_the_recipe_validator(
    hr: Path, tmp_path: Path, option: str, value: str, needle: str
) -> None:
    from typer.testing import CliRunner

    from sruscale.cli import app

    res = CliRunner().invoke(app, ["train", str(_toml(hr, tmp_path / "r.toml")), option, value,
                                   "--out", str(tmp_path / "run"), "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert f"Invalid value for '{option}': {needle}" in res.output and "Traceback" not in res.output
    assert "damaged" not in res.output and not (tmp_path / "run").exists()


def test_overrides_are_validated_once_with_the_recipe(hr: Path, tmp_path: Path) -> None:
    from sruscale.training import OverrideError, load_recipe, with_overrides

    recipe = _toml(hr, tmp_path / "r.toml")
    c = load_recipe(recipe, overrides={"optim.lr": 0.5, "data.workers": 1, "iterations": None})
    assert (c.optim.lr, c.data.workers, c.iterations) == (0.5, 1, 4)
    for bad in (float("inf"), float("nan"), -1.0):
        with pytest.raises(OverrideError, match=r"^optim\.lr: expected") as info:
            load_recipe(recipe, overrides={"optim.lr": bad})
        assert info.value.key == "optim.lr" and "r.toml" not in str(info.value)  # not the file's fault
        with pytest.raises(OverrideError, match=r"^optim\.lr: expected"):
            with_overrides(c, lr=bad)
    recipe.write_text(recipe.read_text().replace("batch_size = 1", "batch_size = 0"))
    with pytest.raises(ConfigError, match=r"r\.toml: data\.batch_size") as info:  # the file's own error
        load_recipe(recipe, overrides={"optim.lr": 0.5})
    assert not isinstance(info.value, OverrideError)
    assert load_recipe(recipe, overrides={"data.batch_size": 2}).data.batch_size == 2  # fixed on the command line


# --------------------------------------------------------------------------- DataLoader workers


def test_workers_are_clamped_to_the_cpus_with_a_note(
    hr: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sruscale._proc import available_cpus
    from sruscale.training.loop import _worker_count

    cpus = available_cpus()
    with caplog.at_level(logging.WARNING):
        assert _worker_count(100000) == cpus
    assert f"data.workers = 100000: using {cpus} DataLoader workers" in caplog.text
    caplog.clear()
    assert _worker_count(cpus) == cpus and _worker_count(0) == 0 and not caplog.text
    cfg = _cfg(hr, iterations=2)
    cfg["data"] = {**cfg["data"], "workers": 100000}
    with caplog.at_level(logging.WARNING):
        assert fit(parse_config(cfg), out_dir=tmp_path / "run", device="cpu").iteration == 2
    assert "data.workers = 100000" in caplog.text


_WORKERS = """
import functools, os, sys, time
import torch
from sruscale.training.loop import _init_worker

class Pids(torch.utils.data.Dataset):
    def __len__(self): return 1000
    def __getitem__(self, i): return os.getpid()

loader = torch.utils.data.DataLoader(Pids(), batch_size=None, num_workers=2, prefetch_factor=1,
                                     worker_init_fn=functools.partial(_init_worker, os.getpid()))
it = iter(loader)
print(sorted({int(next(it)) for _ in range(8)}), flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie is dead: only its exit status is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux")
def test_dataloader_workers_die_with_the_training_process() -> None:
    import signal
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, "-c", _WORKERS], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert proc.stdout is not None
        workers = json.loads(proc.stdout.readline())
        assert len(workers) == 2 and proc.pid not in workers and all(_running(p) for p in workers)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 2.0  # torch's own watchdog would take 5 s or more
    while any(_running(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(p) for p in workers), "DataLoader workers outlived their parent"
