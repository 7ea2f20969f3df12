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
from collections.abc import Callable
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
    from ..upscaling import BatchSummary, Existing, FileResult, Job

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
    recursive: RecursiveOpt = False,
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
    from ..batch import plan_batch, run_sharded

    start, info = time.perf_counter(), distributed.dist_info()
    err, out = Console(stderr=True), Console()
    request = _request(
        ctx, inputs, output, scale=scale, model=model, weights=weights, denoise=denoise, outscale=outscale,
        size=(width, height, long_side), suffix=suffix, fmt=fmt.value, recursive=recursive, tile=tile,
        overlap=overlap, wrap=wrap, precision=precision, device=device, backend=backend.value,
        self_ensemble=self_ensemble, alpha=alpha, quality=quality, max_pixels=max_pixels,
        existing=(overwrite, skip_existing),
    )  # fmt: skip
    with usage_errors(ctx):
        plan = plan_batch(request)
    say = _sayer(err, quiet=quiet or not info.is_main)
    if plan.hint:
        say(plan.hint, "hint")
    if dry_run:
        return _dry_run(plan, info, out, err, quiet=quiet)
    prepared = _prepare(ctx, request, info, say)
    mode = ProgressMode.none if quiet else progress_mode
    with usage_errors(ctx):  # an option value that only fails on a real image (every file would fail)
        mine, total, grouped = run_sharded(
            plan.jobs, lambda jobs: _run(jobs, prepared, info, mode=mode, err=err), info=info
        )
    if total is not None and not quiet:
        wall = time.perf_counter() - start
        _print_summary(total, wall, _title(request, prepared, info, grouped), mode=mode, out=out)
    raise typer.Exit(_exit_code(total if total is not None else mine))


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
    if not info.is_main:
        return
    write, skip, check = _print_dry_run(plan.jobs, info, plan.request.existing, out)
    if not quiet:
        extra = f", {check} to check" if check else ""
        err.print(f"dry run: {len(plan.jobs)} files, {write} to write, {skip} to skip{extra}", highlight=False)


def _prepare(
    ctx: typer.Context, request: UpscaleRequest, info: distributed.DistInfo, say: Callable[..., None]
) -> PreparedModels:
    """The output folder, device and model(s); every problem here is a usage error (exit 2)."""
    from ..batch import prepare_models
    from ..tiling import overlap_warning
    from ..weights._community import describe

    try:
        request.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create {request.output}: {exc.strerror or exc}"
        raise typer.BadParameter(msg, ctx=ctx, param_hint="'--output'") from None
    with usage_errors(ctx):
        prepared = prepare_models(request, local_rank=info.local_rank if info.is_distributed else None, say=say)
    about = describe(prepared.first)  # what spandrel detected in a community model file
    if about:
        say(about, "model")
    warning = overlap_warning(prepared.first, tile=request.tile, overlap=request.overlap)
    for line in [*prepared.notes, *([warning] if warning else [])]:
        say(line)
    return prepared


def _title(request: UpscaleRequest, prepared: PreparedModels, info: distributed.DistInfo, grouped: bool) -> str:
    if info.is_distributed and grouped:
        title = f"sruscale upscale: {info.world_size} ranks"
    elif info.is_distributed:
        title = f"sruscale upscale: rank {info.rank} of {info.world_size}"
    else:
        title = "sruscale upscale"
    if prepared.per_image:
        return title + " (bundled models chosen per image size)"
    first, model, weights = prepared.first, request.model, request.weights
    shown = f"{model}: {first.name}" if model is not None and model != first.name else first.name
    title += f" ({shown} x{first.scale}" + (f", {weights.name}" if weights is not None else "")
    return title + (f", denoise {request.denoise:g})" if request.denoise is not None else ")")


def _print_summary(total: BatchSummary, wall: float, title: str, *, mode: ProgressMode, out: Console) -> None:
    if mode == ProgressMode.json:
        _emit_json(sys.stdout, _summary_json(total, wall))
        return
    out.print(_summary_table(total, wall, title))
    if total.failures:
        out.print(_failure_table(total))
    for note, n in sorted(total.notes.items()):
        out.print(f"note: {escape(note)} ({n} file{'s' if n != 1 else ''})", highlight=False)


def _run(
    jobs: list[Job], prepared: PreparedModels, info: distributed.DistInfo, *, mode: ProgressMode, err: Console
) -> BatchSummary:
    """This rank's jobs through :func:`sruscale.batch.run_batch`, its events rendered for ``mode``."""
    from ..batch import run_batch

    prefix = f"[rank {info.rank}] " if info.is_distributed else ""
    mps = [_input_megapixels(j.source) for j in jobs]
    show = mode if info.is_main else ProgressMode.none
    render = _Render(jobs, mps, show, err, prefix)
    with interrupts_as_keyboard_interrupt(), render:
        summary = run_batch(jobs, prepared, megapixels=mps, batch_small=show != ProgressMode.json, on_event=render)
    if summary.interrupted and mode != ProgressMode.json:
        err.print("[yellow]interrupted: no partial file was written; rerun to continue[/]")
    return summary


class _Render:
    """Renders :mod:`sruscale.batch` events: a rich bar on stderr, JSON lines on stdout, or failures only."""

    def __init__(self, jobs: list[Job], mps: list[float], mode: ProgressMode, err: Console, prefix: str) -> None:
        self.jobs, self.mps, self.mode, self.err, self.prefix = jobs, mps, mode, err, prefix
        self.tracker = _Tracker(sum(mps))
        self.base = 0.0  # megapixels done before the current file
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
        self.base = self.tracker.done_mp
        if self.progress is not None:
            name = self.jobs[i].source.name
            name = name if len(name) <= 28 else "…" + name[-27:]
            what = f"{batch} small images" if batch > 1 else name
            self.progress.update(self.task, description=escape(f"{self.prefix}{what}"), tiles="")

    def _tile(self, i: int, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        mp, t = self.mps[i], self.tracker
        t.done_mp = self.base + mp * frac
        rate, eta = _live_rate(t, self.base, mp, frac), _live_eta(t, self.base, mp, frac)
        if self.progress is not None:
            tiles = f"tile {done}/{total}" if total > 1 else ""
            self.progress.update(self.task, completed=t.done_mp, tiles=tiles, rate=rate, eta=eta)
        elif self.mode == ProgressMode.json:
            now = time.perf_counter()
            if done < total and now - self.last_json < _JSON_EVERY:
                return
            self.last_json = now
            record = {"event": "tile", "file": str(self.jobs[i].source), "tiles_done": done, "tiles_total": total}
            _emit_json(sys.stdout, {**record, "mp_per_s": _num(rate), "eta_s": _num(eta)})

    def _end(self, i: int, r: FileResult) -> None:
        t, mp = self.tracker, self.mps[i]
        t.done_mp = self.base + mp
        t.files_done += 1
        if r.status == "done":
            t.busy_mp += mp
        elif r.status == "skipped":
            t.total_mp -= mp
            t.done_mp -= mp
        self.base = t.done_mp  # the next image of a shared forward starts here
        if r.status == "failed" and self.mode != ProgressMode.json:
            console = self.progress.console if self.progress is not None else self.err
            line = f"[red]{escape(self.prefix)}failed:[/] {escape(str(r.source))}: {escape(r.reason)}"
            console.print(line, highlight=False, soft_wrap=True)
        if self.progress is not None:
            self.progress.update(
                self.task, completed=t.done_mp, total=max(t.total_mp, 1e-9), files=f"{t.files_done}/{len(self.jobs)}",
                tiles="", rate=t.rate(), eta=t.eta(),
            )  # fmt: skip
        elif self.mode == ProgressMode.json:
            record: dict[str, Any] = {"event": "file", "file": str(r.source), "output": str(r.output)}
            record |= {"status": r.status, "reason": r.reason, "files_done": t.files_done}
            record |= {"files_total": len(self.jobs), "seconds": round(r.seconds, 3)}
            _emit_json(sys.stdout, {**record, "mp_per_s": _num(t.rate()), "eta_s": _num(t.eta())})


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, 3)


def _live_rate(tracker: _Tracker, base: float, mp: float, frac: float) -> float | None:
    elapsed = time.perf_counter() - tracker.start
    busy = tracker.busy_mp + mp * frac
    return busy / elapsed if busy > 0 and elapsed > 0 else None


def _live_eta(tracker: _Tracker, base: float, mp: float, frac: float) -> float | None:
    rate = _live_rate(tracker, base, mp, frac)
    return max(0.0, (tracker.total_mp - (base + mp * frac)) / rate) if rate else None


__all__ = ["upscale"]
