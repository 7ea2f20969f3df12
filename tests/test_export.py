"""ONNX export: dynamic height/width, same output as PyTorch (needs the optional onnx extra)."""

from __future__ import annotations

import pytest
import torch
from _model_zoo import small_model
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.models import list_models
from sruscale.models.export import export_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, x: torch.Tensor):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


@pytest.mark.parametrize("name", list_models())
def test_export_matches_pytorch_at_other_sizes(name: str, tmp_path) -> None:
    model = small_model(name, 2).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", channels=3, example_size=8)
    onnx.checker.check_model(str(path))
    for h, w in [(5, 9), (12, 7)]:  # neither is the tracing size: the graph must be dynamic
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            ref = model(x)
        out = _run(path, x)
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, atol=1e-4), f"{name}: max diff {(out - ref).abs().max():.2e}"


def test_export_gray_channel_graph(tmp_path) -> None:
    model = small_model("lapsrn", 4).eval()
    path = export_onnx(model, tmp_path / "lapsrn.onnx", channels=1, example_size=8)
    x = torch.rand(1, 1, 6, 11)
    with torch.no_grad():
        assert torch.allclose(_run(path, x), model(x), atol=1e-4)


def test_cli_export_writes_a_working_graph(tmp_path) -> None:
    out = tmp_path / "espcn.onnx"
    args = ["export", "--model", "espcn", "--scale", "3", "--untrained", "--format", "onnx", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 7, 10)
    assert _run(out, x).shape == (1, 3, 21, 30)


def test_cli_export_uses_the_model_upscale_uses(tmp_path) -> None:
    """``export --model fsrcnn`` exports the bundled weights, like ``upscale --model fsrcnn`` runs them."""
    from sruscale.weights import load_model

    out = tmp_path / "fsrcnn.onnx"
    result = CliRunner().invoke(app, ["export", "--model", "fsrcnn", "--scale", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 9, 8)
    with torch.no_grad():
        assert torch.allclose(_run(out, x), load_model("fsrcnn", scale=2)(x), atol=1e-4)


def test_cli_export_with_weights_file(tmp_path) -> None:
    from sruscale.weights import save_model

    model = small_model("edsr-baseline", 2).eval()
    weights = save_model(model, tmp_path / "m.safetensors")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(app, ["export", "-w", str(weights), "-o", str(out)])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert torch.allclose(_run(out, x), model(x), atol=1e-4)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "edsr", "--scale", "5"], "supports scales"),
        (["--model", "espcn", "--channels", "2"], "1 or 3"),
    ],
)
def test_cli_export_user_errors(args: list[str], needle: str, tmp_path) -> None:
    result = CliRunner().invoke(app, ["export", *args, "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2
    assert needle in " ".join(result.output.split()).replace("│", "").replace("  ", " ") or needle in result.output
