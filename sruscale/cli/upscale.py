"""``sruscale upscale``: batch super-resolution of files, folders and globs.

A thin adapter over :mod:`sruscale.upscaling`: parse options, plan the work, load the
model once, show progress and a summary. Under ``torchrun`` each rank takes every
``WORLD_SIZE``-th file of the sorted work list; rank 0 gathers and prints the summary.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .. import distributed
from ..api import load_model, model_scale
from ..device import resolve_device, resolve_precision
from ..image import DEFAULT_MAX_PIXELS
from ..models import SRModel
from ..upscaling import (
    BatchSummary,
    FileResult,
    Job,
    UpscaleSettings,
    default_suffix,
    plan_jobs,
    run_jobs,
)
from . import app
from ._options import (
    AlphaMode,
    DeviceOpt,
    ImageFormat,
    MaxPixelsOpt,
    ModelOpt,
    OutputDirOpt,
    OverlapOpt,
    Precision,
    PrecisionOpt,
    QuietOpt,
    ScaleOpt,
    SelfEnsembleOpt,
    TileOpt,
    WeightsOpt,
    usage_errors,
)

#: failures listed in the summary table (all of them are also reported as they happen)
_MAX_FAILURE_ROWS = 50


def _check_outscale(value: float | None) -> float | None:
    if value is not None and not (0 < value <= 64):
        raise typer.BadParameter(f"expected a number in (0, 64], got {value}")
    return value


def _check_suffix(value: str | None) -> str | None:
    if value is not None and ("/" in value or "\\" in value):
        raise typer.BadParameter(f"must not contain path separators, got {value!r}")
    return value


class _MegapixelsPerSecond(ProgressColumn):
    """Output megapixels written per second of wall time."""

    def render(self, task: Task) -> Text:
        mp = float(task.fields.get("mp", 0.0))
        elapsed = task.elapsed or 0.0
        if mp <= 0 or elapsed <= 0:
            return Text("-- MP/s", style="progress.data.speed")
        return Text(f"{mp / elapsed:.3g} MP/s", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        _MegapixelsPerSecond(),
        console=console,
        transient=False,
    )


def _print_dry_run(jobs: list[Job], info: distributed.DistInfo, overwrite: bool, out: Console) -> tuple[int, int]:
    write = skip = 0
    for i, job in enumerate(jobs):
        exists = job.output.exists()
        note = (" (exists, overwrite)" if overwrite else " (exists, skip)") if exists else ""
        rank = f"[rank {i % info.world_size}] " if info.is_distributed else ""
        out.print(f"{rank}{job.source} -> {job.output}{note}", markup=False, highlight=False, soft_wrap=True)
        skip += exists and not overwrite
        write += not (exists and not overwrite)
    return write, skip


def _summary_table(s: BatchSummary, wall: float, title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("processed", str(s.processed))
    t.add_row("skipped (output exists)", str(s.skipped))
    t.add_row("failed", f"[bold red]{s.failed}[/]" if s.failed else "0")
    t.add_row("output megapixels", f"{s.out_megapixels:.3g}" if s.out_megapixels < 100 else f"{s.out_megapixels:.0f}")
    t.add_row("wall time", f"{wall:.1f} s")
    if s.processed and wall > 0:
        t.add_row("output MP/s", f"{s.out_megapixels / wall:.3g}")
    return t


def _failure_table(s: BatchSummary) -> Table:
    t = Table(title="failed files", title_justify="left")
    t.add_column("file", overflow="fold")
    t.add_column("reason", overflow="fold")
    for path, reason in s.failures[:_MAX_FAILURE_ROWS]:
        t.add_row(escape(str(path)), escape(reason))
    if len(s.failures) > _MAX_FAILURE_ROWS:
        t.add_row(f"... and {len(s.failures) - _MAX_FAILURE_ROWS} more", "(reported above)")
    return t


@app.command("upscale")
def upscale(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT...",
            help="Image files, folders, or globs such as 'photos/**/*.jpg' (quoted; expanded by sruscale).",
            show_default=False,
        ),
    ],
    output: OutputDirOpt,
    scale: ScaleOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    tile: TileOpt = None,
    overlap: OverlapOpt = None,
    precision: PrecisionOpt = Precision.auto,
    device: DeviceOpt = "auto",
    outscale: Annotated[
        float | None,
        typer.Option(
            "--outscale",
            callback=_check_outscale,
            help="Final size factor, e.g. 2.5: model scale, then MATLAB bicubic to round(H*F) x round(W*F).",
            show_default=False,
        ),
    ] = None,
    self_ensemble: SelfEnsembleOpt = False,
    alpha: Annotated[
        AlphaMode,
        typer.Option("--alpha", help="How to upscale an alpha channel: with the model (as gray) or bicubic."),
    ] = AlphaMode.model,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into subfolders of folder inputs (kept in the output).")
    ] = False,
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix",
            callback=_check_suffix,
            help="Appended to each output stem. Default: _x{scale}, or _x{outscale}.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        ImageFormat,
        typer.Option("--format", "-f", help="Output format; same = the input's (PNG when it cannot be written)."),
    ] = ImageFormat.same,
    quality: Annotated[
        int | None,
        typer.Option("--quality", min=1, max=100, help="JPEG/WebP quality 1-100. Default: 95.", show_default=False),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing outputs (default: skip them, so reruns resume).")
    ] = False,
    max_pixels: MaxPixelsOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List input -> output pairs (and skips); load no model.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Upscale images with a super-resolution model.

    Writes OUT_DIR/{stem}{suffix}.{ext}. Existing outputs are skipped unless --overwrite.

    Writes are atomic, so an interrupted run leaves no partial file: rerun to resume.

    A bad file is reported and the batch goes on; exit code 1 if any file failed, 2 for usage errors.

    Multi-GPU / multi-node: torchrun --nproc_per_node N -m sruscale upscale ... (rank r takes every N-th file).
    """
    start = time.perf_counter()
    info = distributed.dist_info()
    err = Console(stderr=True)
    out = Console()
    with usage_errors(ctx):
        effective_scale = model_scale(model, scale=scale, weights=weights)
        jobs = plan_jobs(
            inputs,
            output,
            suffix=suffix if suffix is not None else default_suffix(effective_scale, outscale),
            fmt=fmt.value,
            recursive=recursive,
        )
    mine = distributed.shard(jobs, info.rank, info.world_size, key=lambda j: (str(j.source), str(j.output)))

    if dry_run:
        if info.is_main:
            write, skip = _print_dry_run(jobs, info, overwrite, out)
            if not quiet:
                err.print(f"dry run: {len(jobs)} files, {write} to write, {skip} to skip", highlight=False)
        return

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {output}: {exc.strerror or exc}"
        raise typer.BadParameter(msg, ctx=ctx, param_hint="'--output'") from None

    with usage_errors(ctx):
        dev = resolve_device(device, local_rank=info.local_rank if info.is_distributed else None)
        net = load_model(model, scale=scale, weights=weights, device=dev)
    with usage_errors(ctx, "'--precision'"):
        resolve_precision(precision.value, dev, half_safe=net.half_safe)

    settings = UpscaleSettings(
        device=dev,
        tile=tile,
        overlap=overlap,
        precision=precision.value,
        self_ensemble=self_ensemble,
        alpha=alpha.value,
        outscale=outscale,
        quality=quality,
        max_pixels=max_pixels if max_pixels is not None else DEFAULT_MAX_PIXELS,
        overwrite=overwrite,
    )
    grouped = distributed.init_process_group(info, backend="gloo")
    try:
        with usage_errors(ctx):  # an option value that only fails on a real image (every file would fail)
            summary = _run(mine, net, settings, info, quiet=quiet, err=err)
        parts = distributed.gather_to_rank0(summary) if grouped else [summary]
    finally:
        distributed.cleanup()

    if parts is not None:  # rank 0, or every rank when there is no process group
        total = BatchSummary.merge(parts)
        if not quiet:
            if info.is_distributed and grouped:
                title = f"sruscale upscale: {info.world_size} ranks"
            elif info.is_distributed:
                title = f"sruscale upscale: rank {info.rank} of {info.world_size}"
            else:
                title = "sruscale upscale"
            title += f" ({net.name} x{net.scale}" + (f", {weights.name})" if weights is not None else ")")
            out.print(_summary_table(total, time.perf_counter() - start, title))
            if total.failures:
                out.print(_failure_table(total))
            for note, n in sorted(total.notes.items()):
                out.print(f"note: {escape(note)} ({n} file{'s' if n != 1 else ''})", highlight=False)
        if not total.ok:
            raise typer.Exit(1)
    elif not summary.ok:
        raise typer.Exit(1)


def _run(
    jobs: list[Job],
    net: SRModel,
    settings: UpscaleSettings,
    info: distributed.DistInfo,
    *,
    quiet: bool,
    err: Console,
) -> BatchSummary:
    summary = BatchSummary()
    prefix = f"[rank {info.rank}] " if info.is_distributed else ""

    def report(r: FileResult, console: Console) -> None:
        summary.add(r)
        if r.status == "failed":
            console.print(
                f"[red]{escape(prefix)}failed:[/] {escape(str(r.source))}: {escape(r.reason)}",
                highlight=False,
                soft_wrap=True,
            )

    if quiet or not info.is_main:
        for r in run_jobs(jobs, net, settings):
            report(r, err)
        return summary
    with _progress(err) as progress:
        label = escape(f"{prefix}upscaling")
        task = progress.add_task(label, total=len(jobs), mp=0.0)
        for r in run_jobs(jobs, net, settings):
            report(r, progress.console)
            progress.update(task, advance=1, mp=summary.out_megapixels)
    return summary


__all__ = ["upscale"]
