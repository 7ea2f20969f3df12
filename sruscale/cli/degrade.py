"""``sruscale degrade``: HR folder -> modcropped HR + LR pairs, a thin adapter over :mod:`sruscale.degradations`."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..degradations import DegradePlan, DegradeResult, DegradeSummary, Pipeline, plan_degrade, run_degrade
from . import app
from ._interrupt import stop_on_interrupt
from ._options import MaxPixelsOpt, RecursiveOpt, usage_errors

__all__ = ["degrade"]

_MAX_LISTED = 20


class Preset(StrEnum):
    bi = "bi"
    bd = "bd"
    dn = "dn"
    realistic = "realistic"


@app.command("degrade")
def degrade(
    ctx: typer.Context,
    hr_dir: Annotated[
        Path,
        typer.Argument(help="Folder of HR images.", exists=True, file_okay=False, dir_okay=True, show_default=False),
    ],
    out_dir: Annotated[
        Path,
        typer.Argument(help="Output folder: HR/, LR_xS/, manifest.jsonl.", file_okay=False, show_default=False),
    ],
    scale: Annotated[int, typer.Option("--scale", "-s", min=1, max=16, help="Downscaling factor.")] = 4,
    preset: Annotated[
        Preset | None,
        typer.Option(
            "--preset",
            help="bi: MATLAB bicubic; bd: Gaussian blur 1.6 + decimation (RDN); dn: bicubic + noise 30 (RDN); "
            "realistic: Real-ESRGAN second-order. Default: bi.",
            show_default=False,
        ),
    ] = None,
    pipeline_file: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            help="A pipeline TOML file (same schema as the trainer's degradation) instead of --preset.",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Global seed; each image is seeded by (seed, name).")] = 0,
    workers: Annotated[
        int, typer.Option("--workers", "-j", min=1, help="Processes; outputs are identical for any value.")
    ] = 1,
    strict: Annotated[
        bool, typer.Option("--strict", help="Lossy HR inputs (JPEG, lossy WebP, AVIF) are an error, not a warning.")
    ] = False,
    recursive: RecursiveOpt = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo every pair (default: skip complete pairs, so reruns resume).")
    ] = False,
    max_pixels: MaxPixelsOpt = None,
) -> None:
    """Make LR/HR pairs: OUT_DIR/HR/NAME.png (modcropped) and OUT_DIR/LR_xS/NAME.png, plus manifest.jsonl.

    manifest.jsonl records, per image, the source, the sizes and every operation with its drawn parameters.

    The same --seed gives byte-identical outputs for any --workers and any file order.

    Writes are atomic and complete pairs are skipped, so an interrupted run resumes.

    Unreadable inputs are reported and skipped; the exit code is then 1.
    """
    err = Console(stderr=True)
    pipeline = _pipeline(ctx, preset, pipeline_file, scale)
    plan = plan_degrade(
        hr_dir, out_dir, pipeline=pipeline, seed=seed, recursive=recursive, overwrite=overwrite, strict=strict,
        max_pixels=max_pixels,
    )  # fmt: skip
    _warn_lossy(plan, err)
    start = time.perf_counter()
    summary = _run(plan, scale=scale, workers=workers, err=err)
    _print_summary(summary, time.perf_counter() - start, out_dir, err)
    if not summary.ok:
        raise typer.Exit(1)


def _pipeline(ctx: typer.Context, preset: Preset | None, pipeline_file: Path | None, scale: int) -> Pipeline:
    if preset is not None and pipeline_file is not None:
        raise typer.BadParameter("give --preset or --pipeline, not both", ctx=ctx, param_hint="'--preset'")
    with usage_errors(ctx, "'--pipeline' / '--scale'"):
        if pipeline_file is not None:
            return Pipeline.from_toml(pipeline_file, scale=scale)
        return Pipeline.preset((preset or Preset.bi).value, scale)


def _warn_lossy(plan: DegradePlan, err: Console) -> None:
    if not plan.lossy:
        return
    names = ", ".join(f"{n} ({kind})" for n, kind in plan.lossy[:_MAX_LISTED])
    more = f" and {len(plan.lossy) - _MAX_LISTED} more" if len(plan.lossy) > _MAX_LISTED else ""
    err.print(
        f"[yellow]warning:[/] {len(plan.lossy)} lossy HR input(s): {escape(names)}{more}. "
        "Compression artifacts end up in the HR targets; store HR images losslessly (--strict to refuse).",
        highlight=False,
        soft_wrap=True,
    )


def _run(plan: DegradePlan, *, scale: int, workers: int, err: Console) -> DegradeSummary:
    """The pairs with a progress bar; Ctrl-C/SIGTERM stop after the pair in hand with a one-line account."""
    counts = {"written": 0, "failed": 0}

    def interrupted() -> str:
        return (
            f"{counts['written']} pairs written, {counts['failed']} failed, "
            f"{len(plan.todo) - counts['written'] - counts['failed']} not done; no partial file; rerun to continue"
        )

    with stop_on_interrupt(interrupted, err), Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(f"degrading x{scale}", total=len(plan.todo))

        def on_result(r: DegradeResult) -> None:
            counts["written" if r.ok else "failed"] += 1
            if not r.ok:
                progress.console.print(f"[red]failed:[/] {escape(r.name)}: {escape(r.error or '')}", highlight=False)
            progress.update(task, advance=1)

        return run_degrade(plan, workers=workers, on_result=on_result)


def _print_summary(summary: DegradeSummary, wall: float, out_dir: Path, err: Console) -> None:
    err.print(
        f"{summary.processed} pairs written, {summary.skipped} already complete, {summary.failed} failed "
        f"in {wall:.1f} s -> {escape(str(out_dir))} (manifest: {escape(str(summary.manifest))})",
        highlight=False,
    )
    for name, reason in summary.failures[:_MAX_LISTED]:
        err.print(f"  [red]failed:[/] {escape(name)}: {escape(reason)}", highlight=False)
    if summary.failed > _MAX_LISTED:
        err.print(f"  ... and {summary.failed - _MAX_LISTED} more", highlight=False)
