"""`sruscale models`: the registered architectures with their cost and bundled weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import UnknownModelError
from ..weights import WeightsEntry, describe_models, list_weights
from ..weights._manifest import default_model_name, resolve_alias
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
    console = Console(width=160)
    console.print(_arch_table(scale))
    entries = list_weights()
    if entries:
        console.print(_weights_table(entries))


def _arch_table(scale: int) -> Table:
    """One row per architecture: framework, scales, channels, cost at ``scale``, bundled scales."""
    table = Table(title=f"sruscale models (cost at x{scale} or the largest supported scale)")
    for col, justify in [
        ("name", "left"),
        ("framework", "left"),
        ("scales", "left"),
        ("in ch", "right"),
        ("params", "right"),
        ("GFLOPs/MP", "right"),
        ("fp16", "center"),
        ("bundled at", "left"),
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
            ", ".join(sorted({f"x{e.scale}" for e in list_weights() if e.name in row.weights})) or "-",
        )
    return table


def _weights_table(entries: list[WeightsEntry]) -> Table:
    """One row per bundled file: what ``--model NAME`` loads, its Set5 score, cost and role."""
    table = Table(title="bundled weights (--model NAME; Set5 Y-PSNR by the benchmark protocol)")
    for col, justify in [("name", "left"), ("arch", "left"), ("scale", "right"), ("Set5 dB", "right"),
                         ("params", "right"), ("GFLOPs/MP", "right"), ("role", "left")]:  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]  # literal justify values from the list above
    for e in sorted(entries, key=lambda e: (e.family, e.scale, e.name)):
        params, gflops = e.number("params"), e.number("gflops_per_mp")
        table.add_row(
            e.name,
            e.arch,
            f"x{e.scale}",
            f"{e.set5_psnr:.2f}" if e.set5_psnr is not None else "-",
            _params(int(params)) if params is not None else "-",
            f"{gflops:,.1f}" if gflops is not None else "-",
            _role(e),
        )
    return table


def _role(e: WeightsEntry) -> str:
    if e.family:
        d = e.number("denoise")
        return f"--model {e.family}" + (f" (--denoise {d:g} end)" if d is not None else "")
    roles = ["default, best"] if default_model_name(e.scale) == e.name else []
    try:
        fast = resolve_alias("fast", e.scale)
    except UnknownModelError:
        fast = None
    if fast is not None and fast.name == e.name:
        roles.append("fast")
    return ", ".join(roles)
