"""`sruscale export`: write a model as an ONNX graph with dynamic height and width."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..errors import ConfigError, UnknownModelError
from ..models.export import export_onnx
from ..weights import DEFAULT_SCALE, choose_model, load_model
from . import app
from ._options import ModelOpt, ScaleOpt, WeightsOpt, usage_errors


class ExportFormat(StrEnum):
    onnx = "onnx"


@app.command("export")
def export_command(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file, e.g. model.onnx.", dir_okay=False)],
    model: ModelOpt = None,
    scale: ScaleOpt = None,
    weights: WeightsOpt = None,
    untrained: Annotated[
        bool, typer.Option("--untrained", help="Export --model ARCH with freshly initialised weights.")
    ] = False,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Export format.")] = ExportFormat.onnx,
    channels: Annotated[
        int, typer.Option("--channels", min=1, max=3, help="Input/output channels: 3 RGB, 1 gray.")
    ] = 3,
    opset: Annotated[int, typer.Option("--opset", min=11, help="ONNX opset version.")] = 17,
) -> None:
    """Export a model (the one upscale would use, or --untrained) to ONNX with dynamic batch, height and width."""
    with usage_errors(ctx, "--model/--scale/--channels"):
        if channels not in (1, 3):
            raise ConfigError(f"--channels must be 1 or 3, got {channels}")
        if untrained and (model is None or weights is not None):
            raise UnknownModelError("--untrained needs --model ARCH and no --weights")
        note = ""
        if model is None and weights is None:  # the scale-choice rule of upscale: exact, else the next one up
            choice = choose_model(float(scale or DEFAULT_SCALE))
            model, scale, note = choice.name, None, choice.describe()
        net = load_model(model, scale=scale, weights=weights, untrained=untrained)
    if note:
        Console(stderr=True).print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    path = export_onnx(net, output, channels=channels, opset=opset)
    Console(stderr=True).print(f"wrote {path} ({net.name} x{net.scale}, {fmt.value}, {channels} channels)")
