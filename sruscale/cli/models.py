"""`sruscale models`: the registered architectures with their cost and bundled weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..weights import describe_models
from . import app


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


@app.command("models")
def models_command(
    scale: Annotated[
        int, typer.Option("--scale", "-s", min=2, max=8, help="Scale to measure parameters and GFLOPs at.")
    ] = 4,
) -> None:
    """List architectures: framework, scales, channels, parameters, GFLOPs per output megapixel, bundled weights.

    Parameters and GFLOPs are at the paper's default hyperparameters, at --scale (or the
    model's largest scale when it does not support it). GFLOPs = 2 x conv multiply-adds.
    """
    table = Table(title=f"sruscale models (cost at x{scale} or the largest supported scale)")
    for col, justify in [
        ("name", "left"),
        ("framework", "left"),
        ("scales", "left"),
        ("in ch", "right"),
        ("params", "right"),
        ("GFLOPs/MP", "right"),
        ("fp16", "center"),
        ("bundled weights", "left"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]  # literal justify values from the list above
    for row in describe_models(scale=scale):
        at = "" if row.scale == scale else f" (x{row.scale})"
        table.add_row(
            row.name,
            row.framework,
            ",".join(str(s) for s in row.scales),
            "Y" if row.in_channels == 1 else "RGB",
            _params(row.parameters) + at,
            f"{row.gflops_per_mp:,.1f}",
            "yes" if row.half_safe else "no",
            ", ".join(row.weights) or "-",
        )
    Console(width=160).print(table)
