"""``sruscale upscale``: batch super-resolution of files, folders and globs.

A thin adapter over :mod:`sruscale.upscaling`: parse options, plan the work, load the
model once, show progress and a summary. Under ``torchrun`` each rank takes every
``WORLD_SIZE``-th file of the sorted work list; rank 0 gathers and prints the summary.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from . import app
from ._interrupt import interrupts_as_keyboard_interrupt
from ._options import (
    AlphaMode,
    DeviceOpt,
    ImageFormat,
    MaxPixelsOpt,
    ModelOpt,
    OutputDirOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    ScaleOpt,
    SelfEnsembleOpt,
    TileOpt,
    WeightsOpt,
    usage_errors,
)

if TYPE_CHECKING:  # the library (and torch) is imported only when the command runs, so --help is fast
    from .. import distributed
    from ..models import SRModel
    from ..upscaling import BatchSummary, FileResult, Job, ModelSource, TargetSize, UpscaleSettings

#: failures listed in the summary table (all of them are also reported as they happen)
_MAX_FAILURE_ROWS = 50
#: JSON progress lines inside one image are at most this often (seconds)
_JSON_EVERY = 0.5


class ProgressMode(StrEnum):
    bar = "bar"
    json = "json"
    none = "none"


class Backend(StrEnum):
    torch = "torch"
    onnxruntime = "onnxruntime"


def _check_outscale(value: float | None) -> float | None:
    if value is not None and not (0 < value <= 64):
        raise typer.BadParameter(f"expected a number in (0, 64], got {value}")
    return value


def _check_suffix(value: str | None) -> str | None:
    if value is not None and ("/" in value or "\\" in value):
        raise typer.BadParameter(f"must not contain path separators, got {value!r}")
    return value


class _MegapixelsPerSecond(ProgressColumn):
    """Input megapixels processed per second of wall time (tiles of the current image included)."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        return Text("-- MP/s" if not rate else f"{rate:.3g} MP/s", style="progress.data.speed")


class _Eta(ProgressColumn):
    """Time left at the measured megapixels per second."""

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            return Text("eta --:--", style="progress.remaining")
        m, sec = divmod(int(eta + 0.5), 60)
        h, m = divmod(m, 60)
        return Text(f"eta {h}:{m:02d}:{sec:02d}" if h else f"eta {m:02d}:{sec:02d}", style="progress.remaining")


@dataclass
class _Tracker:
    """ETA by megapixels: input megapixels of every job, done so far, and the rate since the first file."""

    total_mp: float
    done_mp: float = 0.0
    files_done: int = 0
    start: float = field(default_factory=time.perf_counter)
    busy_mp: float = 0.0  # megapixels actually processed (skips excluded), for the rate

    def rate(self) -> float | None:
        elapsed = time.perf_counter() - self.start
        return self.busy_mp / elapsed if self.busy_mp > 0 and elapsed > 0 else None

    def eta(self) -> float | None:
        r = self.rate()
        return max(0.0, (self.total_mp - self.done_mp) / r) if r else None


def _input_megapixels(path: Path) -> float:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[0] * im.size[1] / 1e6
    except Exception:  # noqa: BLE001 - an unreadable file counts as 0 MP; it fails later with a reason
        return 0.0


def _print_dry_run(jobs: list[Job], info: distributed.DistInfo, existing: str, out: Console) -> tuple[int, int, int]:
    write = skip = check = 0
    for i, job in enumerate(jobs):
        exists = job.output.exists()
        note = ""
        if exists:
            note = {"overwrite": " (exists, overwrite)", "skip": " (exists, skip)"}.get(
                existing, " (exists, skipped if made with the same settings)"
            )
        rank = f"[rank {i % info.world_size}] " if info.is_distributed else ""
        out.print(f"{rank}{job.source} -> {job.output}{note}", markup=False, highlight=False, soft_wrap=True)
        skip += exists and existing == "skip"
        check += exists and existing == "compare"
        write += not exists or existing == "overwrite"
    return write, skip, check


def _summary_table(s: BatchSummary, wall: float, title: str) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("processed", str(s.processed))
    for reason, n in sorted(s.redo_reasons.items()):
        t.add_row(f"  replaced ({escape(reason)})", str(n))
    if not s.skip_reasons:
        t.add_row("skipped", "0")
    for reason, n in sorted(s.skip_reasons.items()):
        t.add_row(f"skipped ({escape(reason)})", str(n))
    t.add_row("failed", f"[bold red]{s.failed}[/]" if s.failed else "0")
    if s.interrupted:
        t.add_row("[yellow]interrupted[/]", "[yellow]yes: rerun to continue[/]")
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


def _summary_json(s: BatchSummary, wall: float) -> dict[str, Any]:
    return {
        "event": "summary",
        "processed": s.processed,
        "skipped": s.skipped,
        "skip_reasons": dict(s.skip_reasons),
        "replaced": dict(s.redo_reasons),
        "failed": s.failed,
        "failures": [[str(p), r] for p, r in s.failures],
        "interrupted": s.interrupted,
        "out_megapixels": round(s.out_megapixels, 4),
        "wall_s": round(wall, 3),
    }


def _emit_json(stream: TextIO, record: dict[str, Any]) -> None:
    stream.write(json.dumps(record) + "\n")
    stream.flush()


@app.command("upscale")
def upscale(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Image files, folders, or globs such as 'photos/**/*.jpg' (quoted; expanded by sruscale).",
            show_default=False,
        ),
    ],
    output: OutputDirOpt,
    scale: ScaleOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    denoise: Annotated[
        float | None,
        typer.Option(
            "--denoise",
            min=0.0,
            max=1.0,
            help="Denoise strength of --model realworld, 0..1: 0 keeps fine grain and texture (light model), "
            "1 removes strong noise and JPEG artefacts (strong model); values between interpolate the two "
            "networks' weights. Default 0.75.",
            show_default=False,
        ),
    ] = None,
    outscale: Annotated[
        float | None,
        typer.Option(
            "--outscale",
            callback=_check_outscale,
            help="Final size factor, e.g. 2.5. Without --model: the bundled model of that scale, or the next "
            "one up, then a MATLAB bicubic (antialiased) resize to round(H*F) x round(W*F).",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", min=1, help="Output width in pixels (aspect ratio kept).", show_default=False),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option("--height", min=1, help="Output height in pixels (aspect ratio kept).", show_default=False),
    ] = None,
    long_side: Annotated[
        int | None,
        typer.Option(
            "--long-side", min=1, help="Output size of the longer side (aspect ratio kept).", show_default=False
        ),
    ] = None,
    tile: TileOpt = None,
    overlap: OverlapOpt = None,
    wrap: Annotated[
        bool,
        typer.Option(
            "--wrap", help="Tileable textures: pad around the edges circularly so the output tiles seamlessly."
        ),
    ] = False,
    precision: PrecisionOpt = "auto",
    device: DeviceOpt = "auto",
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="torch, or onnxruntime (CPU only, needs the onnx extra; the model is exported once and cached).",
            case_sensitive=False,
        ),
    ] = Backend.torch,
    self_ensemble: SelfEnsembleOpt = False,
    alpha: Annotated[
        AlphaMode,
        typer.Option("--alpha", help="How to upscale an alpha channel: with the model (as gray) or bicubic."),
    ] = "model",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Descend into subfolders of folder inputs (kept in the output).")
    ] = False,
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix",
            callback=_check_suffix,
            help="Appended to each output stem. Default: _x{scale}, _x{outscale}, or _w{width} / _h{height} / "
            "_l{long side}.",
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
        bool, typer.Option("--overwrite", help="Replace existing outputs, whatever settings made them.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Keep every existing output, whatever settings made it. Default: keep only outputs made with "
            "the same model, weights, sizes and options; redo the others.",
        ),
    ] = False,
    max_pixels: MaxPixelsOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="List input -> output pairs (and skips); load no model.")
    ] = False,
    progress_mode: Annotated[
        ProgressMode,
        typer.Option(
            "--progress",
            help="bar (on stderr), json (one JSON object per line on stdout: file, tiles, MP/s, ETA; "
            "the summary last), or none.",
            case_sensitive=False,
        ),
    ] = ProgressMode.bar,
    quiet: QuietOpt = False,
) -> None:
    """Upscale images with a super-resolution model.

    Writes OUT_DIR/{stem}{suffix}.{ext}. An existing output is kept when the same settings made it
    (recorded in OUT_DIR/.sruscale/) and redone otherwise; see --overwrite and --skip-existing.

    Writes are atomic: Ctrl-C or SIGTERM leaves no partial file, prints the summary and exits 130. Rerun to resume.

    A bad file is reported and the batch goes on; exit code 1 if any file failed, 2 for usage errors.

    Multi-GPU / multi-node: torchrun --nproc_per_node N -m sruscale upscale ... (rank r takes every N-th file).
    """
    from .. import distributed
    from ..upscaling import TargetSize, default_suffix, plan_jobs, subfolder_hint

    start = time.perf_counter()
    info = distributed.dist_info()
    err = Console(stderr=True)
    out = Console()
    if overwrite and skip_existing:
        raise typer.BadParameter("choose one of --overwrite and --skip-existing", ctx=ctx, param_hint="'--overwrite'")
    target = None
    if width is not None or height is not None or long_side is not None:
        if outscale is not None:
            raise typer.BadParameter("--outscale and --width/--height/--long-side exclude each other", ctx=ctx)
        target = TargetSize(width=width, height=height, long_side=long_side)
    existing = "overwrite" if overwrite else "skip" if skip_existing else "compare"
    with usage_errors(ctx):
        if suffix is None:
            suffix = (
                _target_suffix(target)
                if target is not None
                else default_suffix(*_naming_scale(model, scale, weights, outscale))
            )
        jobs = plan_jobs(inputs, output, suffix=suffix, fmt=fmt.value, recursive=recursive)
    hint = "" if recursive else subfolder_hint(inputs)
    if hint and not quiet and info.is_main:
        err.print(f"[yellow]hint:[/] {escape(hint)}", highlight=False, soft_wrap=True)

    if dry_run:
        if info.is_main:
            write, skip, check = _print_dry_run(jobs, info, existing, out)
            if not quiet:
                extra = f", {check} to check" if check else ""
                err.print(f"dry run: {len(jobs)} files, {write} to write, {skip} to skip{extra}", highlight=False)
        return

    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {output}: {exc.strerror or exc}"
        raise typer.BadParameter(msg, ctx=ctx, param_hint="'--output'") from None

    from ..device import resolve_device, resolve_precision
    from ..upscaling import UpscaleSettings

    with usage_errors(ctx):
        dev = resolve_device(device, local_rank=info.local_rank if info.is_distributed else None)
        models, first, notes = _model_source(model, scale, weights, outscale, target, dev, backend.value, denoise)
    with usage_errors(ctx, "'--precision'"):
        resolve_precision(precision, dev, half_safe=first.half_safe)
    from ..tiling import overlap_warning
    from ..weights._community import describe

    about = describe(first)  # what spandrel detected in a community model file
    if about and not quiet and info.is_main:
        err.print(f"model: {escape(about)}", highlight=False, soft_wrap=True)
    warning = overlap_warning(first, tile=tile, overlap=overlap)
    for line in [*notes, *([warning] if warning else [])]:
        if not quiet and info.is_main:
            err.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)

    settings = UpscaleSettings(
        device=dev,
        tile=tile,
        overlap=overlap,
        precision=precision,
        self_ensemble=self_ensemble,
        alpha=alpha,
        outscale=outscale
        if (outscale is not None or target is not None)
        else _implied_outscale(first, scale, model, weights),
        target=target,
        quality=quality,
        max_pixels=max_pixels if max_pixels is not None else _default_max_pixels(),
        existing=existing,  # type: ignore[arg-type]
        wrap=wrap,
    )
    mode = ProgressMode.none if quiet else progress_mode
    with usage_errors(ctx):  # an option value that only fails on a real image (every file would fail)
        summary, parts, grouped = distributed.map_shards(
            jobs,
            lambda mine: _run(mine, models, settings, info, mode=mode, err=err),
            info=info,
            key=lambda j: (str(j.source), str(j.output)),
        )

    from ..upscaling import BatchSummary

    if parts is not None:  # rank 0, or every rank when there is no process group
        total = BatchSummary.merge(parts)
        wall = time.perf_counter() - start
        if mode == ProgressMode.json:
            _emit_json(sys.stdout, _summary_json(total, wall))
        elif not quiet:
            if info.is_distributed and grouped:
                title = f"sruscale upscale: {info.world_size} ranks"
            elif info.is_distributed:
                title = f"sruscale upscale: rank {info.rank} of {info.world_size}"
            else:
                title = "sruscale upscale"
            if target is not None and models is not first:
                title += " (bundled models chosen per image size)"
            else:
                shown = f"{model}: {first.name}" if model is not None and model != first.name else first.name
                title += f" ({shown} x{first.scale}" + (f", {weights.name}" if weights is not None else "")
                title += f", denoise {denoise:g})" if denoise is not None else ")"
            out.print(_summary_table(total, wall, title))
            if total.failures:
                out.print(_failure_table(total))
            for note, n in sorted(total.notes.items()):
                out.print(f"note: {escape(note)} ({n} file{'s' if n != 1 else ''})", highlight=False)
        if total.interrupted:
            raise typer.Exit(130)
        if not total.ok:
            raise typer.Exit(1)
    elif summary.interrupted:
        raise typer.Exit(130)
    elif not summary.ok:
        raise typer.Exit(1)


def _default_max_pixels() -> int:
    from .._defaults import DEFAULT_MAX_PIXELS

    return DEFAULT_MAX_PIXELS


def _target_suffix(target: TargetSize) -> str:
    parts = [f"w{target.width}" if target.width else "", f"h{target.height}" if target.height else ""]
    parts.append(f"l{target.long_side}" if target.long_side else "")
    return "_" + "_".join(p for p in parts if p)


def _naming_scale(
    model: str | None, scale: int | None, weights: Path | None, outscale: float | None
) -> tuple[int, float | None]:
    """(scale, outscale) that name the outputs: the requested factor, not the model that serves it."""
    from ..api import model_scale

    return model_scale(model, scale=scale, weights=weights), outscale


def _implied_outscale(net: SRModel, scale: int | None, model: str | None, weights: Path | None) -> float | None:
    """``--scale S`` served by a larger default model: the final factor is still S."""
    if model in (None, "best") and weights is None and scale is not None and net.scale != scale:
        return float(scale)
    return None


def _model_source(
    model: str | None,
    scale: int | None,
    weights: Path | None,
    outscale: float | None,
    target: TargetSize | None,
    dev: Any,
    backend: str,
    denoise: float | None = None,
) -> tuple[ModelSource, SRModel, list[str]]:
    """The model (or per-factor chooser), the first model loaded, and notes for the user.

    Explicit ``--weights`` or a bundled ``--model NAME`` fix the model. Otherwise the
    scale-choice rule (:func:`~sruscale.weights._resolve.choose_model`) picks the bundled model for
    the requested factor: ``--scale``, else ``--outscale``, else each image's target size,
    else 4.
    """
    from ..models import REGISTRY
    from ..weights import DEFAULT_SCALE, choose_model, load_model

    def load(name: str | None, s: int | None) -> SRModel:
        net = load_model(name, scale=s, weights=weights, device=dev, denoise=denoise)
        if backend == "onnxruntime":
            from ..weights._onnx import OnnxRuntimeModel

            return OnnxRuntimeModel.from_model(net)
        return net

    notes: list[str] = []
    by_arch = model in REGISTRY and model != "bicubic"
    chooses = weights is None and (model in (None, "best") or (by_arch and scale is None))
    if not chooses:
        net = load(model, scale)
        factor = outscale
        if factor is not None and factor > net.scale:
            notes.append(
                f"{net.name} is x{net.scale}: its output is enlarged to x{factor:g} with MATLAB bicubic interpolation"
            )
        if target is not None:
            notes.append(f"{net.name} is x{net.scale}; each image is then resized to the target size (MATLAB bicubic)")
        return net, net, notes
    if by_arch and not _bundled(str(model)):
        net = load(model, scale)  # raises: no bundled weights for this architecture, pass --weights FILE
        return net, net, notes
    cache: dict[str, SRModel] = {}
    said: set[str] = set()

    def for_factor(factor: float | None) -> SRModel:
        choice = choose_model(factor if factor is not None else float(scale or DEFAULT_SCALE), name=model)
        if choice.name not in cache:
            cache[choice.name] = load(choice.name, None)
        line = choice.describe()
        if line and line not in said and target is not None:  # per-image choices: say each once
            said.add(line)
            Console(stderr=True).print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)
        return cache[choice.name]

    requested = float(scale) if scale is not None else outscale if outscale is not None else float(DEFAULT_SCALE)
    if target is not None:
        # the first model is loaded for the smallest bundled scale only to validate options early
        first = for_factor(1.0)
        return for_factor, first, notes
    choice = choose_model(requested, name=model)
    net = load(choice.name, None)
    if choice.describe():
        notes.append(choice.describe())
    if scale is not None and outscale is not None and outscale > net.scale:
        notes.append(f"{net.name} is x{net.scale}: its output is enlarged to x{outscale:g} with MATLAB bicubic")
    return net, net, notes


def _bundled(arch: str) -> bool:
    from ..weights._manifest import bundled_models

    return bool(bundled_models(arch))


def _run(
    jobs: list[Job],
    models: ModelSource,
    settings: UpscaleSettings,
    info: distributed.DistInfo,
    *,
    mode: ProgressMode,
    err: Console,
) -> BatchSummary:
    from ..upscaling import BatchSummary, process_batch, process_job

    summary = BatchSummary()
    prefix = f"[rank {info.rank}] " if info.is_distributed else ""
    show = info.is_main and mode != ProgressMode.none
    tracker = _Tracker(sum(_input_megapixels(j.source) for j in jobs) if show else 0.0)

    def report(r: FileResult, console: Console) -> None:
        summary.add(r)
        if r.status == "failed" and mode != ProgressMode.json:
            console.print(
                f"[red]{escape(prefix)}failed:[/] {escape(str(r.source))}: {escape(r.reason)}",
                highlight=False,
                soft_wrap=True,
            )

    with interrupts_as_keyboard_interrupt():
        try:
            if not show:
                mps = [_input_megapixels(j.source) for j in jobs]
                for chunk in _chunks(jobs, mps, settings):
                    part = [jobs[i] for i in chunk]
                    batch = process_batch(part, models, settings) if len(part) > 1 else None
                    for r in batch or [process_job(part[0], models, settings)]:
                        report(r, err)
            elif mode == ProgressMode.json:
                _run_json(jobs, models, settings, tracker, report, err)
            else:
                _run_bar(jobs, models, settings, tracker, report, err, prefix)
        except KeyboardInterrupt:
            summary.interrupted = True
            if mode != ProgressMode.json:
                err.print("[yellow]interrupted: no partial file was written; rerun to continue[/]")
    return summary


def _run_bar(
    jobs: list[Job],
    models: ModelSource,
    settings: UpscaleSettings,
    tracker: _Tracker,
    report: Any,
    err: Console,
    prefix: str,
) -> None:
    from ..upscaling import process_batch, process_job

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[files]}"),
        TextColumn("{task.fields[tiles]}"),
        TimeElapsedColumn(),
        _Eta(),
        _MegapixelsPerSecond(),
        console=err,
        transient=False,
    )
    with progress:
        task = progress.add_task(
            escape(f"{prefix}upscaling"),
            total=max(tracker.total_mp, 1e-9),
            files=f"0/{len(jobs)}",
            tiles="",
            rate=None,
            eta=None,
        )
        mps = [_input_megapixels(j.source) for j in jobs]

        def finish(job: Job, r: FileResult, mp: float, base: float) -> None:
            tracker.done_mp = base + mp
            tracker.files_done += 1
            if r.status == "done":
                tracker.busy_mp += mp
            elif r.status == "skipped":
                tracker.total_mp -= mp
                tracker.done_mp -= mp
            report(r, progress.console)
            progress.update(
                task,
                completed=tracker.done_mp,
                total=max(tracker.total_mp, 1e-9),
                files=f"{tracker.files_done}/{len(jobs)}",
                tiles="",
                rate=tracker.rate(),
                eta=tracker.eta(),
            )

        for chunk in _chunks(jobs, mps, settings):
            if len(chunk) > 1:  # small images: one forward for the lot
                part = [jobs[i] for i in chunk]
                progress.update(task, description=escape(f"{prefix}{len(part)} small images"), tiles="")
                for i, r in zip(chunk, process_batch(part, models, settings), strict=True):
                    finish(jobs[i], r, mps[i], tracker.done_mp)
                continue
            job, mp, base = jobs[chunk[0]], mps[chunk[0]], tracker.done_mp
            name = job.source.name if len(job.source.name) <= 28 else "…" + job.source.name[-27:]

            def on_tile(done: int, total: int, base: float = base, mp: float = mp, name: str = name) -> None:
                frac = done / total if total else 1.0
                tracker.done_mp = base + mp * frac
                tiles = f"tile {done}/{total}" if total > 1 else ""
                progress.update(
                    task,
                    completed=tracker.done_mp,
                    description=escape(f"{prefix}{name}"),
                    tiles=tiles,
                    rate=_live_rate(tracker, base, mp, frac),
                    eta=_live_eta(tracker, base, mp, frac),
                )

            progress.update(task, description=escape(f"{prefix}{name}"), tiles="")
            finish(job, process_job(job, models, settings, progress=on_tile), mp, base)
        progress.update(task, description=escape(f"{prefix}upscaling"))


def _chunks(jobs: list[Job], mps: list[float], settings: UpscaleSettings) -> list[list[int]]:
    """Job indices in order: runs of small images (batched into one forward) and single larger ones."""
    from ..upscaling import BATCH_MAX_PIXELS, BATCH_SIZE

    chunks: list[list[int]] = []
    for i, mp in enumerate(mps):
        small = settings.target is None and 0 < mp * 1e6 <= BATCH_MAX_PIXELS
        prev_small = bool(chunks) and len(chunks[-1]) < BATCH_SIZE and chunks[-1][-1] == i - 1 and chunks[-1][0] < 0
        if small and prev_small:
            chunks[-1].append(i)
        elif small:
            chunks.append([-1, i])  # -1 marks a batch chunk
        else:
            chunks.append([i])
    return [c[1:] if c[0] < 0 else c for c in chunks]


def _live_rate(tracker: _Tracker, base: float, mp: float, frac: float) -> float | None:
    elapsed = time.perf_counter() - tracker.start
    busy = tracker.busy_mp + mp * frac
    return busy / elapsed if busy > 0 and elapsed > 0 else None


def _live_eta(tracker: _Tracker, base: float, mp: float, frac: float) -> float | None:
    rate = _live_rate(tracker, base, mp, frac)
    return max(0.0, (tracker.total_mp - (base + mp * frac)) / rate) if rate else None


def _run_json(
    jobs: list[Job],
    models: ModelSource,
    settings: UpscaleSettings,
    tracker: _Tracker,
    report: Any,
    err: Console,
) -> None:
    """JSON lines on stdout: ``{"event": "tile"|"file", "file", "tiles_done", "mp_per_s", "eta_s", ...}``."""
    from ..upscaling import process_job

    def num(v: float | None) -> float | None:
        return None if v is None or not math.isfinite(v) else round(v, 3)

    for i, job in enumerate(jobs):
        mp = _input_megapixels(job.source)
        base = tracker.done_mp
        last = [0.0]

        def on_tile(
            done: int, total: int, job: Job = job, base: float = base, mp: float = mp, last: list[float] = last
        ) -> None:
            now = time.perf_counter()
            if done < total and now - last[0] < _JSON_EVERY:
                return
            last[0] = now
            frac = done / total if total else 1.0
            _emit_json(
                sys.stdout,
                {
                    "event": "tile",
                    "file": str(job.source),
                    "tiles_done": done,
                    "tiles_total": total,
                    "mp_per_s": num(_live_rate(tracker, base, mp, frac)),
                    "eta_s": num(_live_eta(tracker, base, mp, frac)),
                },
            )

        r = process_job(job, models, settings, progress=on_tile)
        tracker.done_mp = base + mp
        if r.status == "done":
            tracker.busy_mp += mp
        elif r.status == "skipped":
            tracker.total_mp -= mp
            tracker.done_mp -= mp
        report(r, err)
        _emit_json(
            sys.stdout,
            {
                "event": "file",
                "file": str(job.source),
                "output": str(r.output),
                "status": r.status,
                "reason": r.reason,
                "files_done": i + 1,
                "files_total": len(jobs),
                "seconds": round(r.seconds, 3),
                "mp_per_s": num(tracker.rate()),
                "eta_s": num(tracker.eta()),
            },
        )


__all__ = ["upscale"]
