"""One ``upscale`` batch as library calls: a request -> planned jobs -> models -> results, as events.

The ``upscale`` command parses its options into an :class:`UpscaleRequest` and calls, in order,
:func:`plan_batch` (file names and the model request, from names, the manifest and file
metadata only), then either :func:`predict` (``--dry-run``: what each output's settings record
says a run would do) or :func:`prepare_models` (device, the model or the per-factor chooser,
the per-file settings) and :func:`run_batch` (the files, in chunks: runs of small images share
one forward). Progress reaches the caller as events
(:class:`FileStart`, :class:`TileDone`, :class:`FileEnd`); rendering them (bars, JSON lines) is
the caller's business. Under ``torchrun`` each rank runs every ``WORLD_SIZE``-th job
(:func:`sruscale.distributed.map_shards`) and rank 0 gathers the summaries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from . import distributed, upscaling
from ._defaults import DEFAULT_MAX_PIXELS, AlphaMode, Precision
from .device import resolve_device, resolve_precision
from .image import read_image
from .input_quality import input_quality, route
from .models import REGISTRY, SRModel
from .upscaling import (
    BatchSummary,
    Existing,
    FileResult,
    Job,
    ModelRequest,
    ModelSource,
    TargetSize,
    UpscaleSettings,
    Verdict,
    default_suffix,
    expected_record,
    plan_jobs,
    predict_action,
    render_suffix,
    subfolder_hint,
)
from .weights import DEFAULT_DENOISE, DEFAULT_SCALE, bundled_models, choose_model, list_weights, load_model, model_scale

__all__ = [
    "BatchPlan",
    "FileEnd",
    "FileStart",
    "PreparedModels",
    "TileDone",
    "UpscaleRequest",
    "model_family",
    "output_megapixels",
    "plan_batch",
    "predict",
    "prepare_models",
    "run_batch",
    "suffix_values",
]

Backend = Literal["torch", "onnxruntime"]


@dataclass(frozen=True)
class UpscaleRequest:
    """Everything ``sruscale upscale`` was asked to do (the command's options, validated by type)."""

    inputs: tuple[str, ...]
    output: Path
    scale: int | None = None
    model: str | None = None
    weights: Path | None = None
    denoise: float | None = None
    outscale: float | None = None
    target: TargetSize | None = None
    suffix: str | None = None
    fmt: str = "same"
    recursive: bool = False
    tile: int | None = None
    overlap: int | None = None
    wrap: bool = False
    precision: Precision = "auto"
    device: str = "auto"
    backend: Backend = "torch"
    self_ensemble: bool = False
    alpha: AlphaMode = "model"
    quality: int | None = None
    max_pixels: int | None = None
    existing: Existing = "compare"
    #: without ``model``/``weights``: choose per file (compressed or noisy photos -> ``realworld``)
    auto: bool = True


@dataclass(frozen=True)
class BatchPlan:
    """The jobs of a request (sorted; no image read yet), the model as requested, and a hint about
    skipped subfolders ("" if none)."""

    request: UpscaleRequest
    jobs: list[Job]
    hint: str
    model: ModelRequest = ModelRequest()


def _target_suffix(target: TargetSize) -> str:
    parts = [f"w{target.width}" if target.width else "", f"h{target.height}" if target.height else ""]
    parts.append(f"l{target.long_side}" if target.long_side else "")
    return "_" + "_".join(p for p in parts if p)


def plan_batch(request: UpscaleRequest) -> BatchPlan:
    """Output names for every input (the requested factor names them, not the model that serves it).

    Reads names, the weights manifest and a weights file's metadata (its scale), never weights.

    Raises:
        ConfigError, ImageError: no inputs, two inputs writing one output, a bad weights file name,
            an unknown ``--suffix`` field.
        UnknownModelError: a model name, or a family at a scale it does not have (the message says
            which ``--scale``/``--outscale`` to use instead).
    """
    r = request
    scale = None if r.target is not None else model_scale(r.model, scale=r.scale, weights=r.weights)
    family, denoise = model_family(r.model, scale=r.scale, weights=r.weights, denoise=r.denoise)
    weights = str(r.weights.resolve()) if r.weights is not None else None
    named = ModelRequest(r.model, weights, scale if r.target is None else r.scale, r.outscale, family, denoise)
    if r.suffix is not None:
        suffix = render_suffix(r.suffix, suffix_values(r, named))
    elif r.target is not None:
        suffix = _target_suffix(r.target)
    else:
        suffix = default_suffix(scale or DEFAULT_SCALE, r.outscale)
    jobs = plan_jobs(r.inputs, r.output, suffix=suffix, fmt=r.fmt, recursive=r.recursive)
    return BatchPlan(r, jobs, "" if r.recursive else subfolder_hint(r.inputs), named)


def model_family(
    model: str | None, *, scale: int | None, weights: Path | None, denoise: float | None
) -> tuple[str | None, float | None]:
    """The manifest family ``model`` belongs to and the denoise strength it runs at (None: no family, or
    no denoise control), from the manifest alone.

    A family name (``realworld``) runs at ``denoise``, default :data:`~sruscale.weights.DEFAULT_DENOISE`,
    when it has files of two denoise levels at ``scale`` (default 4); one of its files named directly
    (``realworld-light-x4``) at that file's level.
    """
    if weights is not None or model is None:
        return None, None
    entries = list_weights()
    named = next((e for e in entries if e.name == model), None)
    if named is not None:
        return (named.family, named.number("denoise")) if named.family else (None, None)
    members = [e for e in entries if e.family == model]
    if not members:
        return None, None
    levels = {e.number("denoise") for e in members if e.scale == (scale or DEFAULT_SCALE)} - {None}
    return model, (DEFAULT_DENOISE if denoise is None else denoise) if len(levels) > 1 else None


def suffix_values(request: UpscaleRequest, named: ModelRequest) -> dict[str, str]:
    """The values of the ``--suffix`` fields (:data:`~sruscale.upscaling.SUFFIX_FIELDS`); "" where this run has none.

    ``{model}``: ``--model`` as given, the ``--weights`` file's stem, or ``default``; ``{scale}``: the
    factor the request names (none with a target size and no ``--scale``); ``{outscale}``: ``--outscale``,
    else the scale (none with a target size); ``{denoise}``: the denoise strength of a family with a
    denoise control; ``{width}``, ``{height}``, ``{long_side}``: the target size given.
    """
    t = request.target

    def text(v: float | None) -> str:
        return "" if v is None else f"{v:g}"

    outscale = request.outscale if request.outscale is not None else named.scale if t is None else None
    return {
        "model": request.weights.stem if request.weights is not None else request.model or "default",
        "scale": text(named.scale),
        "outscale": text(outscale),
        "denoise": text(named.denoise),
        "width": text(t.width if t else None),
        "height": text(t.height if t else None),
        "long_side": text(t.long_side if t else None),
    }


def predict(plan: BatchPlan) -> list[tuple[Verdict, str]]:
    """What a run of ``plan`` would do with each job, from the settings records alone; loads no model.

    See :func:`sruscale.upscaling.predict_action` for the verdicts (``write``, ``skip``, ``redo``, ``check``).
    """
    settings = _settings(plan.request, plan.model, device="cpu", outscale=plan.request.outscale)
    return [predict_action(j, expected_record(settings, j.output), settings.existing_mode) for j in plan.jobs]


@dataclass(frozen=True)
class PreparedModels:
    """The model (or per-factor chooser), the first model loaded, notes for the user, per-file settings."""

    models: ModelSource
    first: SRModel
    notes: list[str]
    settings: UpscaleSettings
    #: files per automatic choice so far ("clean", "realworld d=0.75", ...): filled while the batch runs
    routes: dict[str, int] = field(default_factory=dict)

    @property
    def per_image(self) -> bool:
        """True when the model is chosen per image (target sizes, or the input's quality)."""
        return self.models is not self.first

    @property
    def auto(self) -> bool:
        """True when the model is chosen per input file by its JPEG quality and noise."""
        return self.per_image and self.settings.target is None

    def describe_routes(self) -> str:
        """One line: how many files went to which model by the automatic choice ("" when there was none)."""
        if not self.routes:
            return ""
        clean = self.routes.get("clean", 0)
        parts = [f"{clean} to the clean default ({self.first.origin or self.first.name})"] if clean else []
        parts += [f"{n} to {k.replace(' d=', ' --denoise ')}" for k, n in sorted(self.routes.items()) if k != "clean"]
        return "per-file model choice (JPEG quality and noise of each input): " + ", ".join(parts)


def prepare_models(
    plan: BatchPlan, *, local_rank: int | None = None, say: Callable[[str], None] = lambda _: None
) -> PreparedModels:
    """Resolve the device and the model(s) of ``plan.request`` and check the precision against them.

    Explicit ``--weights`` or a named model fix the model. Otherwise (the default, ``best``, or an
    architecture without ``--scale``) :func:`sruscale.weights.choose_model` picks the bundled model
    for the requested factor: ``--scale``, else ``--outscale``, else each image's target size, else 4.
    ``say`` receives the notes that a per-image choice makes later (once each).

    Raises:
        ConfigError, UnknownModelError, CheckpointError: device, model, weights or precision.
    """
    r = plan.request
    dev = resolve_device(r.device, local_rank=local_rank)
    routes: dict[str, int] = {}
    models, first, notes = _choose(r, dev, say, routes)
    resolve_precision(r.precision, dev, half_safe=first.half_safe)
    implied = float(r.scale) if _chooses_default(r) and r.scale is not None and first.scale != r.scale else None
    outscale = r.outscale if (r.outscale is not None or r.target is not None) else implied
    settings = _settings(r, plan.model, device=dev, outscale=outscale)
    return PreparedModels(models, first, notes, settings, routes)


def _settings(
    r: UpscaleRequest, named: ModelRequest, *, device: torch.device | str, outscale: float | None
) -> UpscaleSettings:
    """The per-file settings of ``r`` (the one place options become :class:`UpscaleSettings`)."""
    return UpscaleSettings(
        device=device,
        tile=r.tile,
        overlap=r.overlap,
        precision=r.precision,
        self_ensemble=r.self_ensemble,
        alpha=r.alpha,
        outscale=outscale,
        target=r.target,
        quality=r.quality,
        max_pixels=r.max_pixels if r.max_pixels is not None else DEFAULT_MAX_PIXELS,
        existing=r.existing,
        wrap=r.wrap,
        request=named,
    )


def output_megapixels(size: tuple[int, int] | None, prepared: PreparedModels) -> float:
    """Expected output megapixels of an ``(H, W)`` input (0.0 when unknown): the unit of progress and ETA."""
    if size is None:
        return 0.0
    h, w = size
    settings = prepared.settings
    if settings.target is not None:
        oh, ow = settings.target.size_for(h, w)
        return oh * ow / 1e6
    factor = settings.outscale if settings.outscale is not None else prepared.first.scale
    return h * w * factor * factor / 1e6


def _chooses_default(r: UpscaleRequest) -> bool:
    return r.weights is None and r.model in (None, "best")


def _choose(
    r: UpscaleRequest, dev: torch.device, say: Callable[[str], None], routes: dict[str, int]
) -> tuple[ModelSource, SRModel, list[str]]:
    def load(name: str | None, scale: int | None) -> SRModel:
        net = load_model(name, scale=scale, weights=r.weights, device=dev, denoise=r.denoise)
        if r.backend == "onnxruntime":
            from .weights._onnx import OnnxRuntimeModel

            wrapped = OnnxRuntimeModel.from_model(net)
            wrapped.origin = net.origin
            return wrapped
        return net

    def with_fallback(name: str, net: SRModel) -> SRModel:
        """A registry package's network chosen by default falls back on sruscale's own model of its scale."""
        own = _fallback_for(name, net.scale)
        if own is not None:
            upscaling.set_fallback(net, load(own, None))
        return net

    by_arch = r.model in REGISTRY and r.model != "bicubic"
    if not (_chooses_default(r) or (r.weights is None and by_arch and r.scale is None)):
        net = load(r.model, r.scale)
        return net, net, _fixed_notes(net, r)
    cache: dict[str, SRModel] = {}
    said: set[str] = set()
    auto = r.auto and r.model is None and r.weights is None and r.target is None and r.backend == "torch"
    scale = DEFAULT_SCALE

    def for_factor(factor: float | None, source: Path | None = None) -> SRModel:
        if source is not None and auto:
            return for_input(source, factor)
        if factor is not None and factor <= 1 + 1e-9 and r.target is not None:
            tell("shrink", "images whose target size is not larger: a MATLAB bicubic (antialiased) resize, no SR model")
            return cache.setdefault("bicubic", load_model("bicubic", scale=2))
        choice = choose_model(factor if factor is not None else float(r.scale or DEFAULT_SCALE), name=r.model)
        if choice.name not in cache:
            cache[choice.name] = with_fallback(choice.name, load(choice.name, None))
        if not choice.exact:  # per-image choices: one note per model, not per factor
            how = "downscaled" if choice.scale > choice.factor else "enlarged"
            tell(f"{choice.name}{how}", f"images without a bundled model of their factor: {choice.name} "
                 f"(x{choice.scale}), then {how} to the target size with MATLAB bicubic (antialiased)")  # fmt: skip
        return cache[choice.name]

    def tell(key: str, line: str) -> None:
        if key not in said:
            said.add(key)
            say(line)

    def for_input(source: Path, factor: float | None) -> SRModel:
        """The clean default, or ``realworld`` for a compressed or noisy photo (:func:`route`)."""
        way = route(input_quality(source, read_image(source, max_pixels=r.max_pixels).pixels))
        key = "clean" if way.model is None else f"{way.model} d={way.denoise:g}"
        routes[key] = routes.get(key, 0) + 1
        if way.model is None:
            return for_factor(factor)
        if key not in cache:
            cache[key] = load_model(way.model, scale=scale, device=dev, denoise=way.denoise)
        return cache[key]

    if r.target is not None:  # the smallest scale's model, loaded now only to check the options early
        return for_factor, load(choose_model(1.0 + 1e-6, name=r.model).name, None), []
    requested = float(r.scale) if r.scale is not None else r.outscale if r.outscale is not None else DEFAULT_SCALE
    choice = choose_model(requested, name=r.model)
    scale = choice.scale
    auto = auto and _has_family(scale)
    if auto:
        net = with_fallback(choice.name, load(choice.name, None))
        cache[choice.name] = net
        return for_factor, net, [choice.describe()] if choice.describe() else []
    net = with_fallback(choice.name, load(choice.name, None))
    notes = [choice.describe()] if choice.describe() else []
    if r.scale is not None and r.outscale is not None and r.outscale > net.scale:
        notes.append(f"{net.name} is x{net.scale}: its output is enlarged to x{r.outscale:g} with MATLAB bicubic")
    return net, net, notes


def _fallback_for(name: str, scale: int) -> str | None:
    """For a registry package's network ``name``: sruscale's own first-ranked bundled model of exactly
    ``scale`` (:func:`~sruscale.weights.bundled_models`' order); None for our own models or when none is
    bundled at that scale."""
    source = {e.name: e.source for e in list_weights(families=False)}
    if not source.get(name):
        return None
    return next((n for n, s in bundled_models() if s == scale and not source[n]), None)


def _has_family(scale: int, family: str = "realworld") -> bool:
    """Whether ``family`` is bundled at ``scale`` (the per-file choice needs it)."""
    return any(e.family == family and e.scale == scale for e in list_weights())


def _fixed_notes(net: SRModel, r: UpscaleRequest) -> list[str]:
    notes = []
    if r.outscale is not None and r.outscale > net.scale:
        notes.append(
            f"{net.name} is x{net.scale}: its output is enlarged to x{r.outscale:g} with MATLAB bicubic interpolation"
        )
    if r.target is not None:
        notes.append(f"{net.name} is x{net.scale}; each image is then resized to the target size (MATLAB bicubic)")
    return notes


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class FileStart:
    """Work on ``jobs[index]`` begins (``batch`` > 1: it shares one forward with the next ones)."""

    index: int
    job: Job
    batch: int = 1


@dataclass(frozen=True)
class TileDone:
    """``done`` of ``total`` tiles of ``jobs[index]`` are finished."""

    index: int
    job: Job
    done: int
    total: int


@dataclass(frozen=True)
class FileEnd:
    """``jobs[index]`` is finished: done, skipped or failed (``result.status``)."""

    index: int
    job: Job
    result: FileResult


Event = FileStart | TileDone | FileEnd


def chunks(jobs: Sequence[Job], megapixels: Sequence[float], settings: UpscaleSettings) -> list[list[int]]:
    """Job indices in order: runs of small images (one forward for up to ``BATCH_SIZE``) and single others."""
    out: list[list[int]] = []
    run: list[int] = []
    for i, mp in enumerate(megapixels):
        if settings.target is None and 0 < mp * 1e6 <= upscaling.BATCH_MAX_PIXELS:
            run.append(i)
            if len(run) == upscaling.BATCH_SIZE:
                out.append(run)
                run = []
            continue
        if run:
            out.append(run)
            run = []
        out.append([i])
    return out + ([run] if run else [])


def run_batch(
    jobs: Sequence[Job],
    prepared: PreparedModels,
    *,
    megapixels: Sequence[float] | None = None,
    batch_small: bool = True,
    on_event: Callable[[Event], None] = lambda _: None,
) -> BatchSummary:
    """Process ``jobs`` in order; a failed file is reported and the batch goes on.

    Files run as a pipeline: while one is upscaled, the next is read (claimed, checked, decoded) on
    a reader thread and the previous one is written (encoded) on a writer thread. At most one file
    is read ahead and one written behind, so memory stays bounded; writes and ``FileEnd`` events
    stay in job order (``FileStart``/``TileDone`` of the next file may come before the previous
    ``FileEnd``), and each output is the bytes one file at a time would write. ``megapixels`` (input size
    of each job, 0 when unknown) decide which images are small enough to share a forward; without
    them, or with ``batch_small=False``, each file runs on its own. Ctrl-C (or SIGTERM turned into
    ``KeyboardInterrupt`` by the caller) stops after the write in progress: the summary says
    ``interrupted`` and no partial file exists.
    """
    summary = BatchSummary()
    sizes = list(megapixels) if megapixels is not None and batch_small else [0.0] * len(jobs)
    with _Pipeline(jobs, prepared, summary, on_event) as pipe:
        try:
            pipe.run(chunks(jobs, sizes, prepared.settings))
        except KeyboardInterrupt:
            summary.interrupted = True
    return summary


class _Pipeline:
    """The three stages of :func:`run_batch` over threads: read ahead, upscale here, write behind."""

    def __init__(
        self, jobs: Sequence[Job], prepared: PreparedModels, summary: BatchSummary, on_event: Callable[[Event], None]
    ) -> None:
        self.jobs, self.models, self.settings = jobs, prepared.models, prepared.settings
        self.summary, self.on_event = summary, on_event
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="sruscale-read")
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="sruscale-write")
        self.ahead: tuple[int, Future[upscaling.Staged]] | None = None
        self.behind: tuple[int, Future[FileResult]] | None = None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        try:  # a file read ahead is not processed: its claim goes
            if self.ahead is not None and not self.ahead[1].cancel():
                with contextlib.suppress(Exception):  # its own error was raised already, or is moot now
                    self.ahead[1].result().close()
            self._flush()  # the write in progress finishes (never a partial file)
        finally:
            self.reader.shutdown(wait=True)
            self.writer.shutdown(wait=True)

    def _end(self, i: int, r: FileResult) -> None:
        self.summary.add(r)
        self.on_event(FileEnd(i, self.jobs[i], r))

    def _flush(self) -> None:
        if self.behind is not None:
            i, done = self.behind
            result = done.result()  # an interrupt while waiting leaves it to __exit__ to report
            self.behind = None
            self._end(i, result)

    def _read(self, i: int) -> Future[upscaling.Staged]:
        return self.reader.submit(upscaling.read_stage, self.jobs[i], self.models, self.settings)

    def run(self, order: list[list[int]]) -> None:
        singles = [c[0] for c in order if len(c) == 1]
        following = dict(zip(singles, singles[1:], strict=False))
        for chunk in order:
            if len(chunk) > 1:  # small images sharing one forward: in order, after the write behind
                self._flush()
                self.on_event(FileStart(chunk[0], self.jobs[chunk[0]], batch=len(chunk)))
                results = upscaling.process_batch([self.jobs[i] for i in chunk], self.models, self.settings)
                for i, r in zip(chunk, results, strict=True):
                    self._end(i, r)
                continue
            i = chunk[0]
            if self.ahead is None or self.ahead[0] != i:
                self.ahead = (i, self._read(i))
            staged = self.ahead[1].result()
            nxt = following.get(i)
            self.ahead = (nxt, self._read(nxt)) if nxt is not None else None
            try:
                self._upscale(i, staged)
            except BaseException:  # interrupted before its write was handed over: the claim goes
                staged.close()
                raise
            self.behind = (i, self.writer.submit(upscaling.write_stage, staged, self.settings))

    def _upscale(self, i: int, staged: upscaling.Staged) -> None:
        self.on_event(FileStart(i, self.jobs[i]))

        def tile(done: int, total: int) -> None:
            self.on_event(TileDone(i, self.jobs[i], done, total))

        if self.behind is not None and self.behind[1].done():
            self._flush()  # report a finished write before the next forward
        upscaling.forward_stage(staged, self.settings, progress=tile)
        self._flush()  # one write behind at most


def run_sharded(
    jobs: list[Job], work: Callable[[list[Job]], BatchSummary], *, info: distributed.DistInfo
) -> tuple[BatchSummary, BatchSummary | None, bool]:
    """``work`` on this rank's share of ``jobs``; rank 0 (or a lone process) also gets the merged summary.

    Returns:
        ``(this rank's summary, the merged summary or None on other ranks, whether ranks were gathered)``.
    """
    mine, parts, grouped = distributed.map_shards(jobs, work, info=info, key=lambda j: (str(j.source), str(j.output)))
    return mine, (BatchSummary.merge(parts) if parts is not None else None), grouped
