"""The ONNX Runtime backend's graph cache: keyed by weights and exporter, verified on every read."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

import sruscale
from sruscale.models import SRModel

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sruscale.weights import _onnx  # noqa: E402
from sruscale.weights._onnx import OnnxRuntimeModel, cache_key  # noqa: E402


def _model(seed: int) -> SRModel:
    torch.manual_seed(seed)
    return sruscale.create_model("fsrcnn", scale=2, in_channels=3, d=4, s=2, m=1).eval()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding the graphs of the models with seeds 0 and 1 (exported once for the module)."""
    folder = tmp_path_factory.mktemp("onnx")
    x = torch.rand(1, 3, 8, 8)
    for seed in (0, 1):
        OnnxRuntimeModel.from_model(_model(seed), folder=folder)(x)
    return folder


@pytest.fixture()
def cache(pristine: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "onnx"
    shutil.copytree(pristine, folder)
    return folder


def _graph(folder: Path, model: SRModel) -> Path:
    key = cache_key(model, 3)
    (path,) = [p for p in folder.glob("*.onnx") if json.loads(Path(f"{p}.json").read_text())["key"] == key]
    return path


def _run(model: SRModel, folder: Path) -> torch.Tensor:
    x = torch.rand(1, 3, 10, 12, generator=torch.Generator().manual_seed(5))
    y = OnnxRuntimeModel.from_model(model, folder=folder)(x)
    assert (y - model(x)).abs().max() < 1e-4  # these weights' outputs, whatever the cache held
    return y


def _no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported although the cache holds a valid graph")

    monkeypatch.setattr(_onnx, "export_onnx", fail)


def test_key_holds_weights_digest_and_exporter_versions() -> None:
    import onnx

    from sruscale.upscaling import model_digest

    key = cache_key(_model(0), 3)
    assert key["weights_sha256"] == model_digest(_model(0)) != model_digest(_model(1))
    assert (key["torch"], key["onnx"], key["sruscale"]) == (torch.__version__, onnx.__version__, sruscale.__version__)
    assert key["channels"] == 3 and key["arch"] == "fsrcnn" and key["scale"] == 2


def test_a_valid_cached_graph_is_used_without_export(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _no_export(monkeypatch)
    with caplog.at_level(logging.WARNING):
        _run(_model(0), cache)
    assert not caplog.text


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        ("truncate", "is damaged (7 bytes, expected"),
        ("flip a byte", "is damaged (checksum mismatch)"),
        ("empty", "is damaged (0 bytes, expected"),
        ("drop the record", "has no checksum record"),
        ("garble the record", "has a damaged checksum record"),
        ("other weights' graph under this name", "is damaged (checksum mismatch)"),
        ("other weights' graph and record under this name", "was made for other weights_sha256"),
        ("older exporter's record", "was made for other onnx, sruscale, torch"),
    ],
)
def test_damaged_or_mismatched_graphs_are_rebuilt_with_a_note(
    cache: Path, caplog: pytest.LogCaptureFixture, damage: str, note: str
) -> None:
    mine, other = _graph(cache, _model(0)), _graph(cache, _model(1))
    record = Path(f"{mine}.json")
    if damage == "truncate":
        mine.write_bytes(mine.read_bytes()[:7])
    elif damage == "flip a byte":
        data = bytearray(mine.read_bytes())
        data[len(data) // 2] ^= 0xFF
        mine.write_bytes(bytes(data))
    elif damage == "empty":
        mine.write_bytes(b"")
    elif damage == "drop the record":
        record.unlink()
    elif damage == "garble the record":
        record.write_text("{not json")
    elif damage == "other weights' graph under this name":
        shutil.copyfile(other, mine)
    elif damage == "other weights' graph and record under this name":
        shutil.copyfile(other, mine)
        shutil.copyfile(f"{other}.json", record)
    else:
        meta = json.loads(record.read_text())
        meta["key"].update(torch="1.0", onnx="1.0", sruscale="0.0.1")
        record.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        _run(_model(0), cache)
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notes) == 1 and note in notes[0] and "exporting it again" in notes[0] and "\n" not in notes[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _run(_model(0), cache)  # rebuilt: valid from now on
    assert not caplog.text


def test_a_new_exporter_version_gets_its_own_graph(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(cache.glob("*.onnx"))
    monkeypatch.setattr(_onnx, "__version__", "99.0")
    _run(_model(0), cache)
    assert len(set(cache.glob("*.onnx")) - before) == 1


def _vouch_for_junk(cache: Path, model: SRModel) -> None:
    """Replace the cached graph by junk and forge its record to match (checksums cannot catch it)."""
    import hashlib

    mine = _graph(cache, model)
    record = Path(f"{mine}.json")
    junk = b"not a protobuf at all"
    meta = json.loads(record.read_text())
    meta.update(sha256=hashlib.sha256(junk).hexdigest(), size=len(junk))
    mine.write_bytes(junk)
    record.write_text(json.dumps(meta))


def test_a_vouched_for_graph_that_does_not_load_is_rebuilt(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    _vouch_for_junk(cache, _model(0))
    with caplog.at_level(logging.WARNING):
        _run(_model(0), cache)
    assert "does not load (InvalidProtobuf); exporting it again" in caplog.text


def test_an_export_that_does_not_load_is_one_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.errors import CheckpointError

    def broken_export(model: SRModel, path: Path, *, channels: int) -> Path:
        path.write_bytes(b"not a protobuf at all")
        return path

    _vouch_for_junk(cache, _model(0))
    monkeypatch.setattr(_onnx, "export_onnx", broken_export)
    with pytest.raises(CheckpointError, match=r"the graph exported from fsrcnn x2 does not load \(") as info:
        OnnxRuntimeModel.from_model(_model(0), folder=cache)(torch.rand(1, 3, 8, 8))
    assert "\n" not in str(info.value)


def test_cache_key_follows_the_model_source(tmp_path: Path) -> None:
    """A forward changed between two releases of the same version string exports anew: the key holds
    a digest of the model's source files (its classes and the shared blocks)."""
    from sruscale.models.plainsr import PlainSR
    from sruscale.weights._onnx import _code_digest, _source_files, cache_key

    names = {Path(f).name for f in _source_files(PlainSR)}
    assert {"plainsr.py", "_base.py", "blocks.py"} <= names
    key = cache_key(PlainSR(scale=2, channels=4, blocks=1), 3)
    assert key["code"] == _code_digest(_source_files(PlainSR))
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("x = 2\n")
    assert _code_digest((str(a),)) != _code_digest((str(b),))
