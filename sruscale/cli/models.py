"""`sruscale models`: what ``--model`` accepts (bundled weights, pretrained networks of registry
packages, families), one model's card, and with ``--wide`` every architecture's measured cost."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UnknownModelError
from ..weights._manifest import WeightsEntry, default_model_name, list_weights, measured_speed, resolve_alias
from ..weights._pretrained import INSTALL_HINT, package_licence, package_version, pretrained_rows
from . import app
from ._options import usage_errors

#: benchmark sets whose Y-PSNR an entry may carry (``set5_psnr``, ``set14_psnr``, ...)
_SETS = ("Set5", "Set14", "BSD100", "Urban100")


def _params(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= 1e5:
        return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
    return f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n))


def _number(x: float | None, digits: int) -> str:
    """``x`` with ``digits`` decimals below 100 (3 significant below 0.1), none above; "-" when unknown."""
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.{digits}f}" if x >= 0.1 else f"{x:.3f}"


@app.command("models")
def models_command(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="Show one model's card: a name from the list, or an architecture.", show_default=False),
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", help="Also every architecture: framework, channels, cost (measured: a few seconds)."),
    ] = False,
    scale: Annotated[
        int, typer.Option("--scale", "-s", min=2, max=8, help="With --wide: the scale to measure the cost at.")
    ] = 4,
) -> None:
    """List the models --model accepts: bundled weights, installed pretrained networks and families.

    Set5 is the Y-PSNR (dB) of the benchmark protocol; params and GFLOPs per output megapixel
    (2 x the convolutions' multiply-adds) are of the network as it runs; MP/s is the measured
    speed (output megapixels per second, benchmarks/model_speed.py, machine named below the table).
    `sruscale models NAME` shows one model's card; --wide adds the architectures table (for
    --model ARCH --weights FILE).
    """
    console = Console()
    if name is not None:
        with usage_errors(ctx):
            card = _card(name)
        console.print(card, highlight=False)
        return
    console.print(_weights_table(list_weights()))
    hidden = _not_installed()
    if hidden:
        console.print(escape(hidden), highlight=False)
    if wide:
        Console(width=max(console.width, 120)).print(_arch_table(scale))


def _weights_table(entries: list[WeightsEntry]) -> Table:
    """One row per model name: scale, Set5 score, cost and role (or the package it comes from)."""
    table = Table(title="models (--model NAME)", box=box.SIMPLE_HEAD, padding=(0, 1), title_justify="left",
                  pad_edge=False, collapse_padding=True)
    stamp, speed = measured_speed()
    longest = max((len(e.name) for e in entries), default=4)
    for col, justify in [("name", "left"), ("scale", "right"), ("Set5", "right"), ("params", "right"),
                         ("GF/MP", "right"), ("MP/s", "right"), ("role / from", "left")]:  # fmt: skip
        role = col == "role / from"
        table.add_column(col, justify=justify, no_wrap=True, overflow="ellipsis",  # type: ignore[arg-type]
                         min_width=None if role else longest if col == "name" else max(len(col), 5))
    for e in sorted(entries, key=lambda e: (bool(e.family), e.family, e.scale, e.name)):
        gflops, mp_s = e.number("gflops_per_mp"), speed.get(e.name)
        table.add_row(
            e.name,
            f"x{e.scale}",
            f"{e.set5_psnr:.2f}" if e.set5_psnr is not None else "-",
            _params(e.number("params")),
            _number(gflops, 1),
            _number(mp_s, 2),
            _role(e),
        )
    if stamp:
        table.caption = f"MP/s: output megapixels per second, whole image, measured {stamp}"
        table.caption_justify = "left"
    return table


def _role(e: WeightsEntry) -> str:
    if e.source:  # a pretrained network: the package says where it comes from (the card says more)
        return e.source
    parts = []
    if e.family:
        d = e.number("denoise")
        parts.append(e.family + (f" d={d:g}" if d is not None else ""))
    else:
        parts += ["default, best"] if default_model_name(e.scale) == e.name else []
        try:
            fast = resolve_alias("fast", e.scale)
        except UnknownModelError:
            fast = None
        parts += ["fast"] if fast is not None and fast.name == e.name else []
    return ", ".join(parts)


def _not_installed() -> str:
    """One line naming the pretrained networks whose registry package is not installed ("" if none)."""
    installed = {e.name for e in list_weights() if e.source}
    missing: dict[str, list[str]] = {}
    for row in pretrained_rows():
        if row.name not in installed:
            missing.setdefault(row.package, []).append(row.name)
    if not missing:
        return ""
    names = "; ".join(f"{', '.join(v)} ({k})" for k, v in missing.items())
    return f"not installed: {names}. " + INSTALL_HINT.format(package=" ".join(missing))


def _card(name: str) -> str:
    """Key: value lines about one model name (bundled or pretrained) or architecture.

    Raises:
        UnknownModelError: a name that is neither.
    """
    entries = [e for e in list_weights() if name in (e.name, e.family)]
    if not entries:
        from ..weights import describe_models

        rows = {r.name: r for r in describe_models()}
        if name not in rows:
            from ..weights._pretrained import missing_package

            raise missing_package(name) or UnknownModelError(f"unknown model {name!r}; `sruscale models` lists them")
        r = rows[name]
        return "\n".join([
            f"architecture: {r.name} ({r.framework}-upsampling), scales {', '.join(map(str, r.scales))}",
            f"channels: {'Y' if r.in_channels == 1 else 'RGB'}; at x{r.scale}: {_params(r.parameters)} parameters, "
            f"{r.gflops_per_mp:,.1f} GFLOPs per output megapixel",
            "bundled: " + (", ".join(r.weights) or "none (use --weights FILE)"),
        ])  # fmt: skip
    return "\n\n".join(_entry_card(e) for e in entries)


def _entry_card(e: WeightsEntry) -> str:
    scores = [f"{s} {e.number(f'{s.lower()}_psnr'):.2f}" for s in _SETS if e.number(f"{s.lower()}_psnr") is not None]
    if not scores and e.set5_psnr is not None:
        scores = [f"Set5 {e.set5_psnr:.2f}"]
    lines = [
        f"name: {e.name} (x{e.scale}, {e.arch})",
        f"file: {e.file}",
        f"Y-PSNR (dB, benchmark protocol): {', '.join(scores) or '-'}",
        f"cost: {_params(e.number('params'))} parameters, {e.number('gflops_per_mp') or 0:,.1f} GFLOPs per output MP",
    ]
    if e.family:
        lines.append(
            f"family: --model {e.family}" + (" (--denoise blends its ends)" if e.number("denoise") is not None else "")
        )
    if e.source:
        about = next((r.about for r in pretrained_rows() if r.name == e.name), "")
        lines += [f"from: {e.source} {package_version(e.source) or '?'} (licence {package_licence(e.source)})"]
        lines += [f"about: {about}"] if about else []
    elif e.recipe:
        lines.append(f"recipe: {e.recipe}")
    role = _role(e)
    return "\n".join(lines + ([f"role: {role}"] if role else []))


def _arch_table(scale: int) -> Table:
    """One row per architecture: framework, scales, channels, cost at ``scale``, bundled scales."""
    table = Table(title=f"architectures (cost at x{scale} or the largest supported scale)", box=box.SIMPLE_HEAD)
    for col, justify in [("name", "left"), ("framework", "left"), ("scales", "left"), ("in ch", "right"),
                         ("params", "right"), ("GFLOPs/MP", "right"), ("fp16", "center"),
                         ("bundled at", "left")]:  # fmt: skip
        table.add_column(col, justify=justify, no_wrap=col == "name")  # type: ignore[arg-type]  # literal values
    from ..weights import describe_models

    bundled = list_weights()
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
            ", ".join(sorted({f"x{e.scale}" for e in bundled if e.name in row.weights})) or "-",
        )
    return table
