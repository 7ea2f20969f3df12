"""``sruscale evaluate``: PSNR/SSIM/... the way SR papers compute them.

A thin adapter over :mod:`sruscale.evaluation`. Two modes, chosen by ``--model``:

* ``sruscale evaluate SR_DIR GT_DIR``: score existing SR images against ground truth, paired by name.
* ``sruscale evaluate --model NAME --scale S GT_DIR...``: the full benchmark protocol, one row per folder.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..api import load_model, model_scale
from ..evaluation import (
    BENCHMARK_DEGRADATION,
    DEFAULT_STRIP,
    DatasetResult,
    EvaluationResult,
    Protocol,
    count_images,
    evaluate_model,
    evaluate_pairs,
    extremes,
    grid_rows_model,
    grid_rows_pairs,
    pair_files,
    write_grid,
)
from ..metrics import METRICS
from . import app
from ._interrupt import stop_on_interrupt
from ._options import DeviceOpt, MaxPixelsOpt, QuietOpt, TileOpt, WeightsOpt, usage_errors

_DIGITS = {"psnr": 2}  # decimals in the table; the others get 4


class ProtocolName(StrEnum):
    paper = "paper"
    rgb = "rgb"


def _metrics(value: str) -> str:
    names = [m.strip().lower() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)}"
        )
    return ",".join(dict.fromkeys(names))


def _fmt(metric: str, value: float) -> str:
    return f"{value:.{_DIGITS.get(metric, 4)}f}"


def _table(results: list[DatasetResult], protocol: Protocol, title: str) -> Table:
    t = Table(title=title, caption=protocol.describe(), title_justify="left", caption_justify="left")
    t.add_column("dataset")
    t.add_column("images", justify="right")
    for m in protocol.metrics:
        t.add_column(m.upper() if m != "psnr" else "PSNR (dB)", justify="right")
    for d in results:
        t.add_row(escape(d.name), str(len(d.images)), *(_fmt(m, d.mean(m)) for m in protocol.metrics))
    return t


def _image_table(d: DatasetResult, protocol: Protocol) -> Table:
    t = Table(title=f"{d.name or 'images'}: per image", title_justify="left")
    t.add_column("image")
    for m in protocol.metrics:
        t.add_column(m.upper(), justify="right")
    for r in d.images:
        t.add_row(escape(r.image), *(_fmt(m, r.values[m]) for m in protocol.metrics))
    return t


@app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    folders: Annotated[
        list[Path],
        typer.Argument(
            metavar="SR_DIR GT_DIR | GT_DIR...",
            help="Without --model: exactly two folders, the SR images then their ground truth. "
            "With --model: one or more folders of HR ground-truth images (one table row each).",
            exists=True,
            file_okay=False,
            show_default=False,
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Run the benchmark protocol with this model (architecture, bundled weights name, or bicubic "
            "for the baseline): modcrop, MATLAB bicubic LR, upscale, score. Without it, pairs SR_DIR with GT_DIR.",
            show_default=False,
        ),
    ] = None,
    weights: WeightsOpt = None,
    scale: Annotated[
        int | None,
        typer.Option(
            "--scale",
            "-s",
            min=1,
            max=16,
            help="SR factor: the model's scale, and the default --crop-border. Pairing mode needs it (or "
            "--crop-border) for the paper protocol.",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics", callback=_metrics, help=f"Comma-separated, from: {', '.join(METRICS)}. Table order follows."
        ),
    ] = "psnr,ssim",
    protocol: Annotated[
        ProtocolName,
        typer.Option(
            "--protocol",
            help="paper: Y channel (BT.601 as MATLAB rgb2ycbcr, integer Y for 8-bit images), crop = scale. "
            "rgb: all channels, crop = scale. Gray images are scored on their one channel either way.",
            case_sensitive=False,
        ),
    ] = ProtocolName.paper,
    crop_border: Annotated[
        int | None,
        typer.Option(
            "--crop-border", min=0, help="Pixels shaved off each side. Default: the scale.", show_default=False
        ),
    ] = None,
    strip: Annotated[
        list[str] | None,
        typer.Option(
            "--strip",
            help=f"Suffix removed from file stems before pairing (repeatable; <N> = any number). "
            f"Default: {' '.join(DEFAULT_STRIP)}.",
            show_default=False,
        ),
    ] = None,
    modcrop: Annotated[
        bool,
        typer.Option(
            "--modcrop", help="Pairing: crop ground truth that is up to 15 px larger to the SR size (top-left)."
        ),
    ] = False,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also print every image's values.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write every per-image value and the protocol to .csv or .json.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    grid: Annotated[
        Path | None,
        typer.Option(
            "--grid",
            help="Write a PNG of crops (bicubic | SR | HR, labelled PSNR/SSIM) for the worst and best images.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    tile: TileOpt = None,
    device: DeviceOpt = "auto",
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score SR images against ground truth, or run a model through the SR benchmark protocol.

    [bold]Pairing mode[/]: sruscale evaluate results/Set5_x4 data/Set5 --scale 4
    (files pair by name after stripping suffixes such as _x4 and _SR; never by sort order).

    [bold]Model mode[/]: sruscale evaluate --model bicubic --scale 4 data/Set5 data/Set14
    """
    names = metrics.split(",")
    console = Console(quiet=quiet)
    model_mode = model is not None or weights is not None
    if not model_mode and len(folders) != 2:
        raise typer.BadParameter(
            f"without --model give exactly two folders, SR_DIR then GT_DIR (got {len(folders)}); "
            "to run the benchmark protocol on ground-truth folders, add --model NAME --scale S",
            ctx=ctx,
            param_hint="SR_DIR GT_DIR",
        )
    if model_mode and (strip or modcrop):
        raise typer.BadParameter("--strip and --modcrop apply to pairing mode (without --model)", ctx=ctx)
    with usage_errors(ctx):
        if model_mode:
            scale = model_scale(model, scale=scale, weights=weights)
        proto = Protocol.make(protocol.value, scale=scale, crop_border=crop_border, metrics=names)
    read_kw = {} if max_pixels is None else {"max_pixels": max_pixels}

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, quiet=quiet),
        transient=True,
    )
    done = [0]

    def interrupted() -> str:
        return f"{done[0]} images scored, no results written"

    def advance(task: object) -> None:
        done[0] += 1
        progress.advance(task)  # type: ignore[arg-type]

    if model_mode:
        with usage_errors(ctx):
            net = load_model(model, scale=scale, weights=str(weights) if weights else None, device=device)
        label = model or (weights.name if weights else "model")
        total = count_images(folders)
        with stop_on_interrupt(interrupted), progress:
            task = progress.add_task(f"{label} x{net.scale}", total=total)
            results = evaluate_model(
                net, folders, proto, tile=tile, device=device,
                progress=lambda name: advance(task), **read_kw,
            )  # fmt: skip
        sources = {"datasets": ", ".join(map(str, folders)), "degradation": BENCHMARK_DEGRADATION}
        if weights is not None:
            sources["weights"] = str(weights)
        run = EvaluationResult(proto, results, model=label, sources=sources)
        title = f"{label} x{net.scale}"
    else:
        sr_dir, gt_dir = folders
        pairs = pair_files(sr_dir, gt_dir, strip=tuple(strip) if strip else DEFAULT_STRIP)
        with stop_on_interrupt(interrupted), progress:
            task = progress.add_task("scoring", total=len(pairs))
            result = evaluate_pairs(
                pairs, proto, dataset=gt_dir.name, modcrop_gt=modcrop,
                progress=lambda name: advance(task), **read_kw,
            )  # fmt: skip
        run = EvaluationResult(proto, [result], sources={"sr_dir": str(sr_dir), "gt_dir": str(gt_dir)})
        title = f"{sr_dir} vs {gt_dir}"

    console.print(_table(run.datasets, proto, escape(title)))
    if per_image:
        for d in run.datasets:
            console.print(_image_table(d, proto))
    if out is not None:
        console.print(f"wrote {escape(str(run.write(out)))}", highlight=False)
    if grid is not None:
        key = "psnr" if "psnr" in proto.metrics else proto.metrics[0]
        picks = extremes(run.datasets, key)
        if model_mode:
            rows = grid_rows_model(net, picks, proto, model_name=label, tile=tile, device=device, **read_kw)
        else:
            rows = grid_rows_pairs(picks, proto, modcrop_gt=modcrop, **read_kw)
        console.print(f"wrote {escape(str(write_grid(rows, grid)))}", highlight=False)
