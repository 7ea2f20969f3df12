"""`sruscale export`: write a model as an ONNX graph with dynamic height and width."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import ConfigError, UnknownModelError
from ..models import REGISTRY, SRModel, create_model
from ..models.convert import load_pretrained
from ..models.export import export_onnx
from ..weights import find_weights, verify
from . import app
from ._options import usage_errors


class ExportFormat(StrEnum):
    onnx = "onnx"


def _resolve(model: str | None, scale: int | None, weights: Path | None) -> SRModel:
    if weights is not None:
        return load_pretrained(weights, arch=model, scale=scale)
    if model is None:
        raise UnknownModelError("give --model NAME (an architecture or a bundled weights name) or --weights FILE")
    if model in REGISTRY:
        cls = REGISTRY[model]
        scale = scale or (4 if 4 in cls.scales else max(cls.scales))
        if scale not in cls.scales:
            raise ConfigError(f"{model} supports scales {', '.join(map(str, cls.scales))}, got {scale}")
        return create_model(model, scale=scale).eval()
    try:
        entry = find_weights(model, scale)
    except UnknownModelError as exc:
        raise UnknownModelError(
            f"unknown model {model!r}; architectures: {', '.join(sorted(REGISTRY))}; {exc}"
        ) from None
    return load_pretrained(verify(entry), arch=entry.arch, scale=entry.scale)


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file, e.g. model.onnx.", dir_okay=False)],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Architecture or bundled weights name.", show_default=False),
    ] = None,
    scale: Annotated[
        int | None, typer.Option("--scale", "-s", min=1, max=16, help="Scale. Default: 4 or the weights' scale.")
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            "-w",
            exists=True,
            dir_okay=False,
            help="Weights: a sruscale .safetensors, or an EDSR-PyTorch / RCAN .pt with --model edsr/rcan.",
        ),
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Export format.")] = ExportFormat.onnx,
    channels: Annotated[
        int, typer.Option("--channels", min=1, max=3, help="Input/output channels: 3 RGB, 1 gray.")
    ] = 3,
    opset: Annotated[int, typer.Option("--opset", min=11, help="ONNX opset version.")] = 17,
) -> None:
    """Export a model (untrained, or with --weights) to ONNX with dynamic batch, height and width."""
    with usage_errors(ctx, "--model/--scale/--channels"):
        if channels not in (1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {channels}")
        net = _resolve(model, scale, weights)
    path = export_onnx(net, output, channels=channels, opset=opset)
    Console(stderr=True).print(f"wrote {path} ({net.name} x{net.scale}, {fmt.value}, {channels} channels)")
