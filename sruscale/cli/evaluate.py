"""``sruscale evaluate``: PSNR/SSIM/... the way SR papers compute them, and no-reference scores of photos.

A thin adapter over :func:`sruscale.evaluation.plan_evaluation` and
:func:`~sruscale.evaluation.run_evaluation`. Four modes (:data:`sruscale.evaluation.Mode`):

* ``sruscale evaluate SR_DIR GT_DIR``: score existing SR images against ground truth, paired by name.
* ``sruscale evaluate --model NAME --scale S GT_DIR...``: the full benchmark protocol, one row per folder.
* ``sruscale evaluate DIR``: score one folder without ground truth (no-reference metrics).
* ``sruscale evaluate --compare DIR DIR... [--gt GT_DIR]``: rank output folders of the same inputs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..evaluation import (
    DEFAULT_STRIP,
    METRICS,
    EvaluationPlan,
    EvaluationRun,
    dataset_table,
    default_metrics,
    describe_metrics,
    image_table,
    plan_evaluation,
    run_evaluation,
)
from ._evaluate_group import DEFAULT_COMMAND, DefaultCommand, evaluate_app
from ._interrupt import stop_on_interrupt
from ._options import DenoiseOpt, DeviceOpt, MaxPixelsOpt, QuietOpt, TileOpt, WeightsOpt, usage_errors
from .evaluate_perceptual import (
    BrisqueModelOpt,
    BrisqueRangeOpt,
    LpipsBackboneOpt,
    LpipsHeadsOpt,
    LpipsNetOpt,
    MaScorerOpt,
    MaScoresOpt,
    NiqeModelOpt,
    PlotOpt,
    perceptual_setup,
)


class ProtocolName(StrEnum):
    paper = "paper"
    rgb = "rgb"


def _metrics(value: str | None) -> str | None:
    if value is None:
        return None
    names = [m.strip().lower() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)}"
        )
    return ",".join(dict.fromkeys(names))


_EPILOG = (
    "Tools: sruscale evaluate fit-niqe | plot | mos-study | mos-report | task (each has --help). "
    f"Metrics (↓ lower is better, ↑ higher is better): {describe_metrics()}."
)


@evaluate_app.command(DEFAULT_COMMAND, cls=DefaultCommand, epilog=_EPILOG)
def evaluate(
    ctx: typer.Context,
    folders: Annotated[
        list[Path],
        typer.Argument(
            metavar="FOLDERS",
            help="Two folders: the SR images, then their ground truth. One folder: images scored without "
            "ground truth (no-reference metrics). With --compare: two or more output folders to rank. "
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
            "for the baseline): modcrop, MATLAB bicubic LR, upscale, score. Without it, the folders hold "
            "existing images (see FOLDERS).",
            show_default=False,
        ),
    ] = None,
    weights: WeightsOpt = None,
    denoise: DenoiseOpt = None,
    scale: Annotated[
        int | None,
        typer.Option(
            "--scale",
            "-s",
            min=1,
            max=16,
            help="SR factor: the model's scale, and the default --crop-border. Scoring against ground truth "
            "needs it (or --crop-border) for the paper protocol.",
            show_default=False,
        ),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics", callback=_metrics, show_default=False,
            help=f"Comma-separated, from: {', '.join(METRICS)} (directions, needed files: below). Table order "
            "follows. Default: psnr,ssim; niqe,piqe without ground truth, where only no-reference metrics apply.",
        ),
    ] = None,
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
            "--crop-border", min=0, show_default=False,
            help="Pixels shaved off each side. Default: the scale (0 without ground truth and --scale).",
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Rank the folders, outputs of the same inputs (say one per model), side by side: one row per "
            "folder, best first by the first metric. Images are matched by name (the --strip rule); files "
            "missing from a folder are named. No-reference metrics, or any with --gt.",
        ),
    ] = False,
    gt: Annotated[
        Path | None,
        typer.Option(
            "--gt", exists=True, file_okay=False, show_default=False,
            help="With --compare: the ground truth of the compared folders (full-reference metrics then allowed).",
        ),
    ] = None,
    lr: Annotated[
        Path | None,
        typer.Option(
            "--lr", exists=True, file_okay=False, show_default=False,
            help="With --grid and SR_DIR GT_DIR: the LR images the SR images were made from (paired by name); the "
            "first panel is then their bicubic upscale. Without it that panel is the ground truth downscaled by "
            "the scale, labelled so: not the input of an SR image of a degraded photo.",
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
            help="Write a PNG of crops (bicubic | SR | HR, labelled PSNR/SSIM) for the worst and best images "
            "(SR_DIR GT_DIR or --model; see --lr).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    tile: TileOpt = None,
    device: DeviceOpt = "auto",
    max_pixels: MaxPixelsOpt = None,
    quiet: QuietOpt = False,
    niqe_model: NiqeModelOpt = None,
    brisque_model: BrisqueModelOpt = None,
    brisque_range: BrisqueRangeOpt = None,
    lpips_net: LpipsNetOpt = "alex",
    lpips_backbone: LpipsBackboneOpt = None,
    lpips_heads: LpipsHeadsOpt = None,
    ma_scores: MaScoresOpt = None,
    ma_scorer: MaScorerOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Score SR images with or without ground truth, rank output folders, or run a model through the SR
    benchmark protocol.

    [bold]Pairing mode[/]: sruscale evaluate results/Set5_x4 data/Set5 --scale 4
    (files pair by name after stripping suffixes such as _x4 and _SR; never by sort order).

    [bold]Model mode[/]: sruscale evaluate --model bicubic --scale 4 data/Set5 data/Set14

    [bold]No ground truth[/] (your upscaled photos): sruscale evaluate out/ --metrics niqe,piqe

    [bold]Compare folders[/]: sruscale evaluate --compare out/fsrcnn out/realworld --metrics niqe,piqe
    """
    with usage_errors(ctx):
        names = metrics.split(",") if metrics else list(
            default_metrics(folders, model=model, weights=weights, compare=compare, gt=gt)
        )
        setup = perceptual_setup(
            names, niqe_model=niqe_model, brisque_model=brisque_model, brisque_range=brisque_range,
            lpips_net=lpips_net, lpips_backbone=lpips_backbone, lpips_heads=lpips_heads, ma_scores=ma_scores,
            ma_scorer=ma_scorer,
        )  # fmt: skip
        plan = plan_evaluation(
            folders, model=model, weights=weights, scale=scale, metrics=names, protocol=protocol.value,
            crop_border=crop_border, compare=compare, gt=gt, lr=lr, denoise=denoise, strip=strip, modcrop=modcrop,
            out=out, grid=grid, plot=plot, tile=tile, device=device, options=setup.options,
            ma_scores=setup.ma_scores, ma_scorer=setup.ma_scorer,
            **({} if max_pixels is None else {"max_pixels": max_pixels}),
        )  # fmt: skip
    console, err = Console(quiet=quiet), Console(stderr=True, quiet=quiet)
    run = _run(plan, err)
    for line in run.warnings:
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    console.print(dataset_table(run.result.datasets, plan.protocol, escape(plan.title), row=plan.row,
                                best=plan.mode == "compare"))  # fmt: skip
    if per_image:
        for d in run.result.datasets:
            console.print(image_table(d, plan.protocol))
    for path in run.written:
        console.print(f"wrote {escape(str(path))}", highlight=False)
    run.raise_failures()


def _run(plan: EvaluationPlan, err: Console) -> EvaluationRun:
    """:func:`~sruscale.evaluation.run_evaluation` under a progress bar on ``err``; Ctrl-C says how far it got."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
    )  # fmt: skip
    done = [0]

    def on_image(task: TaskID) -> None:
        done[0] += 1
        bar.advance(task)

    with stop_on_interrupt(lambda: f"{done[0]} images scored, no results written"), bar:
        task = bar.add_task(escape(plan.title if plan.model is not None else "scoring"), total=None)
        return run_evaluation(
            plan, on_total=lambda n: bar.update(task, total=n), on_image=lambda name: on_image(task)
        )
