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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO, cast

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
from ._interrupt import interrupts_as_keyboard_interrupt, interrupts_deferred
from ._options import (
    AlphaMode,
    DenoiseOpt,
    DeviceOpt,
    ImageFormat,
    MaxPixelsOpt,
    ModelOpt,
    OutputDirOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    RecursiveOpt,
    ScaleOpt,
    SelfEnsembleOpt,
    TileOpt,
    WeightsOpt,
    usage_errors,
)

if TYPE_CHECKING:  # the library (and torch) is imported only when the command runs, so --help is fast
    from .. import distributed
    from ..batch import BatchPlan, Event, PreparedModels, UpscaleRequest
    from ..upscaling import BatchSummary, Existing, FileResult, Job, Verdict

#: failures listed in the summary table (all of them are also reported as they happen)
_MAX_FAILURE_ROWS = 50
#: JSON progress lines inside one image are at most this often (seconds)
_JSON_EVERY = 0.5
#: no rate or ETA before this many seconds have been measured after the first tile or file
_WARMUP_S = 2.0
#: ... or before one file has been finished and this many seconds measured
_MIN_MEASURED_S = 0.5
#: the rate forgets older work with this time constant (seconds)
_RATE_TAU_S = 30.0


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
    """Output megapixels per second of wall time (smoothed; tiles of the current image included)."""

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
class _Rate:
    """Output megapixels per second of wall time, smoothed; None until it means something.

    The first observation (the end of the first tile or file, which carries the warm-up: kernel
    selection, allocations, caches) only starts the clock, so it is never extrapolated. After it,
    work and time are summed with weights decaying as ``exp(-dt / _RATE_TAU_S)``: the rate follows a
    machine that slows down or speeds up within about half a minute. It is reported once
    ``_WARMUP_S`` seconds, or one finished file and ``_MIN_MEASURED_S`` seconds, have been measured.
    """

    last_t: float | None = None
    last_mp: float = 0.0
    work: float = 0.0  # decayed sums
    seconds: float = 0.0
    measured: float = 0.0  # seconds since the clock started (working time only)
    files: int = 0

    def observe(self, processed_mp: float, *, file_done: bool = False, now: float | None = None) -> None:
        """``processed_mp`` output megapixels are done in all (a running total) at time ``now``."""
        now = time.perf_counter() if now is None else now
        if self.last_t is not None:
            dt = now - self.last_t
            decay = math.exp(-dt / _RATE_TAU_S)
            self.work = self.work * decay + (processed_mp - self.last_mp)
            self.seconds = self.seconds * decay + dt
            self.measured += dt
            self.files += file_done
        self.last_t, self.last_mp = now, processed_mp

    def pause(self, now: float | None = None) -> None:
        """Leave the time since the last observation out (a skipped or failed file did no work)."""
        if self.last_t is not None:
            self.last_t = time.perf_counter() if now is None else now

    @property
    def value(self) -> float | None:
        ready = self.measured >= _WARMUP_S or (self.files > 0 and self.measured >= _MIN_MEASURED_S)
        return self.work / self.seconds if ready and self.work > 0 else None


@dataclass
class _Tracker:
    """ETA by output megapixels: expected for every job, done so far (skips leave the total), and the rate."""

    total_mp: float
    done_mp: float = 0.0
    files_done: int = 0
    busy_mp: float = 0.0  # output megapixels of the files processed (skips excluded), for the rate
    rate: _Rate = field(default_factory=_Rate)

    def eta(self) -> float | None:
        left = self.total_mp - self.done_mp
        if left <= 1e-9:
            return 0.0
        rate = self.rate.value
        return left / rate if rate else None


def _input_size(path: Path) -> tuple[int, int] | None:
    from ..errors import ImageError
    from ..image import image_size

    try:
        return image_size(path)  # header only; a FIFO, device or link loop is refused without being opened
    except ImageError:  # counts as 0 MP; it fails later with its reason
        return None


def _tally(verdicts: Sequence[tuple[Verdict, str]]) -> str:
    """``"1 to write, 2 to redo (model changed: 1, no settings record: 1)"``: each verdict, by reason."""
    by: dict[str, Counter[str]] = {}
    for verdict, why in verdicts:
        by.setdefault(verdict, Counter())[why] += 1
    parts = []
    for verdict in ("write", "skip", "redo", "check"):
        reasons = by.get(verdict, Counter())
        if reasons:
            why = ", ".join(r if len(reasons) == 1 else f"{r}: {n}" for r, n in reasons.most_common() if r)
            parts.append(f"{reasons.total()} to {verdict}" + (f" ({why})" if why else ""))
    return ", ".join(parts)


def _summary_table(s: BatchSummary, wall: float, title: str, recipe: list[tuple[str, str]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("what", no_wrap=True)
    t.add_column("value", justify="right", overflow="fold")
    for what, value in recipe:
        t.add_row(what, Text(value, justify="left"))
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


def _summary_json(s: BatchSummary, wall: float, model: dict[str, object] | None) -> dict[str, Any]:
    return {
        "event": "summary",
        "model": model,
        "processed": s.processed,
        "skipped": s.skipped,
        "skip_reasons": dict(s.skip_reasons),
        "replaced": dict(s.redo_reasons),
        "failed": s.failed,
        "failures": [[str(p), r] for p, r in s.failures],
        "interrupted": s.interrupted,
        "out_megapixels": round(s.out_megapixels, 4),
        "out_mp_per_s": _num(s.out_megapixels / wall) if s.processed and wall > 0 else None,
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
    denoise: DenoiseOpt = None,
    auto: Annotated[
        bool,
        typer.Option(
            "--auto/--no-auto",
            help="Without --model/--weights: choose per file. A JPEG saved below quality 65, or a noisy image, "
            "goes to --model realworld with --denoise from its JPEG quality (read from its quantisation tables) "
            "or noise level; other inputs go to the clean default. One line says how many went where.",
        ),
    ] = True,
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
    recursive: RecursiveOpt = False,
    suffix: Annotated[
        str | None,
        typer.Option(
            "--suffix",
            callback=_check_suffix,
            help="Appended to each output stem; may hold the fields {model} (--model, the --weights file's stem, "
            "or default), {scale}, {outscale}, {denoise}, {width}, {height}, {long_side}, e.g. _{model}_x{scale} "
            "so several models share a folder; a field without a value in this run (denoise without a model "
            "family) is left empty. Default: _x{scale}, _x{outscale}, or _w{width} / _h{height} / _l{long side}: "
            "another model's run replaces those outputs.",
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
        bool,
        typer.Option(
            "--dry-run",
            "-n",
            help="List input -> output pairs and what a run would do with each, from the settings records: "
            "write, skip, redo (and why: model, denoise, size or option changed), or check when only the weights "
            "can tell (a --weights file, a record of another sruscale version). Loads no model.",
        ),
    ] = False,
    progress_mode: Annotated[
        ProgressMode,
        typer.Option(
            "--progress",
            help="bar (on stderr), json (one JSON object per line on stdout: file, tiles, out_mp_per_s, eta_s; "
            "the summary last), or none. Throughput is in output megapixels per second; the ETA waits for a few "
            "seconds of work after the first tile (warm-up) and then follows a smoothed rate.",
            case_sensitive=False,
        ),
    ] = ProgressMode.bar,
    quiet: QuietOpt = False,
) -> None:
    """Upscale images with a super-resolution model.

    Writes OUT_DIR/{stem}{suffix}.{ext}. OUT_DIR/.sruscale/ records what made each output (model as
    requested and as resolved, family, denoise, weights digest, sizes, options); an existing output
    is kept when its weights, sizes and options match, and redone otherwise; see --overwrite,
    --skip-existing and --dry-run.

    Writes are atomic: Ctrl-C or SIGTERM (even while the model loads) leaves no partial file, prints the
    summary and exits 130. Rerun to resume.

    A bad file is reported and the batch goes on; exit code 1 if any file failed, 2 for usage errors.

    Multi-GPU / multi-node: torchrun --nproc_per_node N -m sruscale upscale ... (rank r takes every N-th file).
    """
    start, err, out = time.perf_counter(), Console(stderr=True), Console()
    mode = ProgressMode.none if quiet else progress_mode
    prepared: PreparedModels | None = None
    grouped = False
    try:
        with interrupts_deferred():  # the imports (torch): cut short, they could not print the summary
            from .. import distributed
            from ..batch import plan_batch, run_sharded

            info = distributed.dist_info()
            request = _request(
                ctx, inputs, output, scale=scale, model=model, weights=weights, denoise=denoise, auto=auto,
                outscale=outscale, size=(width, height, long_side), suffix=suffix, fmt=fmt.value,
                recursive=recursive, tile=tile, overlap=overlap, wrap=wrap, precision=precision, device=device,
                backend=backend.value, self_ensemble=self_ensemble, alpha=alpha, quality=quality, max_pixels=max_pixels,
                existing=(overwrite, skip_existing),
            )  # fmt: skip
        with usage_errors(ctx):
            plan = plan_batch(request)
        if dry_run:
            return _dry_run(plan, info, out, err, quiet=quiet)
        prepared = _prepare(ctx, plan, info, _sayer(err, quiet=quiet or not info.is_main))
        with usage_errors(ctx):  # an option value that only fails on a real image (every file would fail)
            mine, total, grouped = run_sharded(
                plan.jobs, lambda jobs: _run(jobs, prepared, info, mode=mode, err=err), info=info
            )
    except KeyboardInterrupt:  # before the first file (finding inputs, loading the model)
        mine = total = _interrupted_early(err, mode)
    if total is not None and not quiet:
        _print_summary(total, time.perf_counter() - start, _title(grouped), prepared, mode=mode, out=out)
    raise typer.Exit(_exit_code(total if total is not None else mine))


def _interrupted_early(err: Console, mode: ProgressMode) -> BatchSummary:
    """The summary of a run stopped before its first file (every rank prints its own)."""
    from ..upscaling import BatchSummary

    if mode != ProgressMode.json:
        err.print("[yellow]interrupted before the first file: nothing was written[/]")
    return BatchSummary(interrupted=True)


def _exit_code(summary: BatchSummary) -> int:
    """130 after an interrupt, 1 when a file failed, else 0."""
    return 130 if summary.interrupted else 0 if summary.ok else 1


def _request(
    ctx: typer.Context,
    inputs: list[str],
    output: Path,
    *,
    size: tuple[int | None, int | None, int | None],
    existing: tuple[bool, bool],
    **options: Any,
) -> UpscaleRequest:
    """The command's options as one request; the option combinations that exclude each other are usage errors."""
    from ..batch import UpscaleRequest
    from ..upscaling import TargetSize

    overwrite, skip_existing = existing
    if overwrite and skip_existing:
        raise typer.BadParameter("choose one of --overwrite and --skip-existing", ctx=ctx, param_hint="'--overwrite'")
    target = None
    if any(v is not None for v in size):
        if options["outscale"] is not None:
            raise typer.BadParameter("--outscale and --width/--height/--long-side exclude each other", ctx=ctx)
        target = TargetSize(width=size[0], height=size[1], long_side=size[2])
    mode: Existing = "overwrite" if overwrite else "skip" if skip_existing else "compare"
    return UpscaleRequest(tuple(inputs), output, target=target, existing=mode, **options)


def _sayer(err: Console, *, quiet: bool) -> Callable[..., None]:
    """``say(line, kind="note")``: one yellow line on stderr unless quiet."""

    def say(line: str, kind: str = "note") -> None:
        if not quiet:
            err.print(f"[yellow]{kind}:[/] {escape(line)}", highlight=False, soft_wrap=True)

    return say


def _dry_run(plan: BatchPlan, info: distributed.DistInfo, out: Console, err: Console, *, quiet: bool) -> None:
    """Each job with what a run would do with it (:func:`sruscale.batch.predict`), then one line of totals."""
    from ..batch import predict

    if not info.is_main:
        return
    if plan.hint and not quiet:
        err.print(f"[yellow]hint:[/] {escape(plan.hint)}", highlight=False, soft_wrap=True)
    verdicts = predict(plan)
    for i, (job, (verdict, why)) in enumerate(zip(plan.jobs, verdicts, strict=True)):
        rank = f"[rank {i % info.world_size}] " if info.is_distributed else ""
        note = "" if verdict == "write" else f" ({verdict}: {why})"
        out.print(f"{rank}{job.source} -> {job.output}{note}", markup=False, highlight=False, soft_wrap=True)
    if not quiet:
        err.print(f"dry run: {len(plan.jobs)} files: {_tally(verdicts)}", highlight=False, soft_wrap=True)


def _prepare(
    ctx: typer.Context, plan: BatchPlan, info: distributed.DistInfo, say: Callable[..., None]
) -> PreparedModels:
    """The output folder, device and model(s); every problem here is a usage error (exit 2)."""
    from ..batch import prepare_models
    from ..tiling import overlap_warning
    from ..weights._community import describe

    request = plan.request
    if plan.hint:
        say(plan.hint, "hint")
    try:
        request.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {request.output}: {exc.strerror or exc}"
        raise typer.BadParameter(msg, ctx=ctx, param_hint="'--output'") from None
    with usage_errors(ctx):
        prepared = prepare_models(plan, local_rank=info.local_rank if info.is_distributed else None, say=say)
    about = describe(prepared.first)  # what spandrel detected in a community model file
    if prepared.auto:
        say(f"chosen per file: {prepared.first.origin} (x{prepared.first.scale}) for clean inputs, realworld for "
            "compressed or noisy photos (--no-auto: always the clean default)", "model")  # fmt: skip
    elif about or not prepared.per_image:
        say(about or f"{prepared.first.origin}, x{prepared.first.scale}", "model")
    warning = overlap_warning(prepared.first, tile=request.tile, overlap=request.overlap)
    for line in [*prepared.notes, *([warning] if warning else [])]:
        say(line)
    return prepared


def _title(grouped: bool) -> str:
    """A short title (the recipe is in the table's first rows, so the title fits any terminal)."""
    from .. import distributed

    info = distributed.dist_info()
    if info.is_distributed and grouped:
        return f"sruscale upscale: {info.world_size} ranks"
    if info.is_distributed:
        return f"sruscale upscale: rank {info.rank} of {info.world_size}"
    return "sruscale upscale"


def _recipe(prepared: PreparedModels | None) -> dict[str, object] | None:
    """The model part of the settings records (:func:`sruscale.upscaling.model_recipe`); None when chosen per image."""
    from ..upscaling import model_recipe

    if prepared is None or prepared.per_image:
        return None
    return model_recipe(prepared.first, prepared.settings.request)


def _recipe_rows(prepared: PreparedModels | None) -> list[tuple[str, str]]:
    """The summary's first rows: the model as requested -> as resolved, its family and denoise, its weights digest."""
    recipe = _recipe(prepared)
    if recipe is None:
        what = "per file: clean default or realworld" if prepared is not None and prepared.auto else "bundled"
        return [("model", f"{what}, chosen per image" if what == "bundled" else what)] if prepared is not None else []
    request = cast(dict[str, Any], recipe["request"])
    asked = request["model"] or (Path(request["weights"]).name if request["weights"] else "default")
    resolved = str(recipe["model"])
    rows = [("model", (resolved if asked in resolved else f"{asked}: {resolved}") + f", x{recipe['scale']}")]
    if recipe["family"]:
        denoise = recipe["denoise"]
        rows.append(("family", f"{recipe['family']}" + (f", denoise {denoise:g}" if denoise is not None else "")))
    if recipe["weights_sha256"] != "none":
        rows.append(("weights sha256", f"{str(recipe['weights_sha256'])[:16]}…"))
    return rows


def _print_summary(
    total: BatchSummary, wall: float, title: str, prepared: PreparedModels | None, *, mode: ProgressMode, out: Console
) -> None:
    if mode == ProgressMode.json:
        chosen = prepared.routes if prepared is not None and prepared.auto else None
        _emit_json(sys.stdout, {**_summary_json(total, wall, _recipe(prepared)), "routes": chosen})
        return
    out.print(_summary_table(total, wall, title, _recipe_rows(prepared)))
    routes = prepared.describe_routes() if prepared is not None else ""
    if routes:
        out.print(escape(routes), highlight=False)
    if total.failures:
        out.print(_failure_table(total))
    for note, n in sorted(total.notes.items()):
        out.print(f"note: {escape(note)} ({n} file{'s' if n != 1 else ''})", highlight=False)


def _run(
    jobs: list[Job], prepared: PreparedModels, info: distributed.DistInfo, *, mode: ProgressMode, err: Console
) -> BatchSummary:
    """This rank's jobs through :func:`sruscale.batch.run_batch`, its events rendered for ``mode``."""
    from ..batch import output_megapixels, run_batch

    prefix = f"[rank {info.rank}] " if info.is_distributed else ""
    sizes = [_input_size(j.source) for j in jobs]
    mps = [h * w / 1e6 for h, w in (s or (0, 0) for s in sizes)]
    show = mode if info.is_main else ProgressMode.none
    render = _Render(jobs, [output_megapixels(s, prepared) for s in sizes], show, err, prefix)
    with interrupts_as_keyboard_interrupt(), render:
        summary = run_batch(jobs, prepared, megapixels=mps, batch_small=show != ProgressMode.json, on_event=render)
    if summary.interrupted and mode != ProgressMode.json:
        err.print("[yellow]interrupted: no partial file was written; rerun to continue[/]")
    return summary


class _Render:
    """Renders :mod:`sruscale.batch` events: a rich bar on stderr, JSON lines on stdout, or failures only.

    ``mps``: the expected output megapixels of each job, the one unit of progress, rate and ETA.
    """

    def __init__(self, jobs: list[Job], mps: list[float], mode: ProgressMode, err: Console, prefix: str) -> None:
        self.jobs, self.mps, self.mode, self.err, self.prefix = jobs, mps, mode, err, prefix
        self.tracker = _Tracker(sum(mps))
        self.finished = 0.0  # output megapixels of the files ended (skips excluded)
        self.partial: dict[int, float] = {}  # files started, not ended (the batch pipelines them): megapixels done
        self.last_json = 0.0
        self.progress: Progress | None = None
        if mode == ProgressMode.bar:
            self.progress = Progress(
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
            self.task = self.progress.add_task(
                escape(f"{prefix}upscaling"), total=max(self.tracker.total_mp, 1e-9), files=f"0/{len(jobs)}",
                tiles="", rate=None, eta=None,
            )  # fmt: skip

    def __enter__(self) -> _Render:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=escape(f"{self.prefix}upscaling"))
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        from ..batch import FileEnd, FileStart

        if isinstance(event, FileStart):
            self._start(event.index, event.batch)
        elif isinstance(event, FileEnd):
            self._end(event.index, event.result)
        else:
            self._tile(event.index, event.done, event.total)

    def _start(self, i: int, batch: int) -> None:
        self.partial[i] = 0.0
        if self.progress is not None:
            name = self.jobs[i].source.name
            name = name if len(name) <= 28 else "…" + name[-27:]
            what = f"{batch} small images" if batch > 1 else name
            self.progress.update(self.task, description=escape(f"{self.prefix}{what}"), tiles="")

    def _tile(self, i: int, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        t = self.tracker
        self.partial[i] = self.mps[i] * frac
        t.done_mp = self.finished + sum(self.partial.values())
        t.rate.observe(t.busy_mp + sum(self.partial.values()))
        rate, eta = t.rate.value, t.eta()
        if self.progress is not None:
            tiles = f"tile {done}/{total}" if total > 1 else ""
            self.progress.update(self.task, completed=t.done_mp, tiles=tiles, rate=rate, eta=eta)
        elif self.mode == ProgressMode.json:
            now = time.perf_counter()
            if done < total and now - self.last_json < _JSON_EVERY:
                return
            self.last_json = now
            record = {"event": "tile", "file": str(self.jobs[i].source), "tiles_done": done, "tiles_total": total}
            _emit_json(sys.stdout, {**record, "out_mp_per_s": _num(rate), "eta_s": _num(eta)})

    def _end(self, i: int, r: FileResult) -> None:
        t, mp = self.tracker, self.mps[i]
        self.partial.pop(i, None)
        t.files_done += 1
        if r.status == "skipped":
            t.total_mp -= mp
        else:
            self.finished += mp
        if r.status == "done":
            t.busy_mp += mp
            t.rate.observe(t.busy_mp + sum(self.partial.values()), file_done=True)
        else:
            t.rate.pause()
        t.done_mp = self.finished + sum(self.partial.values())
        if r.status == "failed" and self.mode != ProgressMode.json:
            console = self.progress.console if self.progress is not None else self.err
            line = f"[red]{escape(self.prefix)}failed:[/] {escape(str(r.source))}: {escape(r.reason)}"
            console.print(line, highlight=False, soft_wrap=True)
        if self.progress is not None:
            self.progress.update(
                self.task, completed=t.done_mp, total=max(t.total_mp, 1e-9), files=f"{t.files_done}/{len(self.jobs)}",
                tiles="", rate=t.rate.value, eta=t.eta(),
            )  # fmt: skip
        elif self.mode == ProgressMode.json:
            record: dict[str, Any] = {"event": "file", "file": str(r.source), "output": str(r.output)}
            record |= {"status": r.status, "reason": r.reason, "model": r.model, "files_done": t.files_done}
            record |= {"files_total": len(self.jobs), "seconds": round(r.seconds, 3)}
            _emit_json(sys.stdout, {**record, "out_mp_per_s": _num(t.rate.value), "eta_s": _num(t.eta())})


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, 3)


__all__ = ["upscale"]
