"""Folder job behind ``sruscale degrade``: HR images -> modcropped HR + LR pairs + manifest.

Layout of ``OUT_DIR``::

    HR/<name>.png        modcropped to a multiple of the scale (same bit depth as the source)
    LR_x<s>/<name>.png   the degraded image, same relative name
    manifest.jsonl       one JSON object per pair: source, sizes, seed, every op with its parameters
    degrade.json         the run's scale, seed and full pipeline (to check a resumed run matches)

Reproducibility: image ``name`` (its path relative to ``HR_DIR``) seeds its own generator via
:func:`image_seed`, every job runs single-threaded, and the manifest is written sorted, so the
same seed gives byte-identical folders for any ``workers`` and any file order.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import struct
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from .._fs import remove_stale_temps
from .._fs import write_text_atomic as _write_text_atomic
from .._proc import die_with_parent
from .._version import __version__
from ..errors import ConfigError, ImageError, SruscaleError, out_of_memory_fails_file
from ..image import SUPPORTED_SUFFIXES, list_images, open_input, read_image, write_image
from ._ops import resize
from ._pipeline import Pipeline, image_seed

__all__ = [
    "DegradePlan",
    "DegradeResult",
    "DegradeSummary",
    "degrade_folder",
    "is_lossy",
    "plan_degrade",
    "read_manifest",
    "run_degrade",
]

MANIFEST = "manifest.jsonl"
RUN_FILE = "degrade.json"


# ----------------------------------------------------------------------------- inputs


def _webp_is_lossy(fh: Any) -> bool:
    fh.seek(12)
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return False
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        if kind == b"VP8 ":
            return True
        if kind == b"VP8L":
            return False
        if kind == b"ANMF":  # animation frame: its sub-chunks follow a 16-byte header
            fh.seek(16, os.SEEK_CUR)
            continue
        fh.seek(size + (size & 1), os.SEEK_CUR)


def is_lossy(path: str | os.PathLike[str]) -> str | None:
    """``"JPEG"``, ``"lossy WebP"`` or ``"AVIF"`` when the file's own header says it is lossy, else ``None``.

    Sniffs the bytes, not the suffix (through :func:`~sruscale.image.open_input`: a FIFO, device or
    link loop is never opened). AVIF is counted as lossy (lossless AVIF is rare).
    """
    try:
        with open_input(path) as fh:
            head = fh.read(16)
            if head[:3] == b"\xff\xd8\xff":
                return "JPEG"
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return "lossy WebP" if _webp_is_lossy(fh) else None
            if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
                return "AVIF"
    except (ImageError, OSError):
        return None  # unreadable files are reported when they are processed
    return None


# ----------------------------------------------------------------------------- manifest


def read_manifest(path: str | os.PathLike[str], *, strict: bool = True) -> list[dict[str, Any]]:
    """Entries of a ``manifest.jsonl`` in file order.

    Args:
        path: the manifest file.
        strict: raise on a malformed line; otherwise skip it (a run killed mid-write leaves one).

    Raises:
        ConfigError: unreadable file, or (``strict``) a line that is not a JSON object with a ``source``.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read manifest {p}: {exc.strerror or exc}") from None
    entries = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
                raise ValueError("not an object with a 'source'")
        except ValueError as exc:
            if strict:
                raise ConfigError(f"{p}:{i}: malformed manifest line ({exc})") from None
            continue
        entries.append(entry)
    return entries


def _dump(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ----------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class _Job:
    source: Path  # the input file
    name: str  # its path relative to HR_DIR (posix): the manifest key and the seed input
    out_name: str  # relative output path, ``.png``
    seed: int


@dataclass
class DegradePlan:
    """What :func:`run_degrade` will do: the pairs to make and the manifest entries kept from a previous run."""

    hr_dir: Path
    out_dir: Path
    pipeline: Pipeline
    seed: int
    config_id: str
    todo: list[_Job]
    kept: list[dict[str, Any]]
    lossy: list[tuple[str, str]]  # (name, kind) of lossy HR inputs
    max_pixels: int | None = None

    @property
    def scale(self) -> int:
        return self.pipeline.scale

    @property
    def lr_dir(self) -> Path:
        return self.out_dir / f"LR_x{self.scale}"


def _config_id(pipeline: Pipeline, seed: int) -> str:
    text = json.dumps({"seed": seed, "pipeline": pipeline.to_dict()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_degrade(
    hr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pipeline: Pipeline,
    seed: int = 0,
    recursive: bool = False,
    overwrite: bool = False,
    strict: bool = False,
    max_pixels: int | None = None,
) -> DegradePlan:
    """List the inputs, check them, and work out which pairs already exist.

    A pair is complete (skipped) when both files exist and the manifest has its entry made by the
    same seed and pipeline. ``OUT_DIR`` made with another seed/pipeline/scale is refused unless
    ``overwrite``.

    Args:
        hr_dir: folder of HR images (subfolders with ``recursive``).
        out_dir: output folder (may be new).
        pipeline: the degradation (its ``scale`` is the pair's scale).
        seed: global seed; each image's generator is seeded from ``(seed, name)``.
        recursive: descend into subfolders (kept in the output names).
        overwrite: redo every pair.
        strict: lossy HR inputs (JPEG, lossy WebP, AVIF) are an error instead of a warning.
        max_pixels: passed to ``read_image`` (None: its default,
            :data:`~sruscale.image.DEFAULT_MAX_PIXELS`, which also caps the bytes read).

    Raises:
        ConfigError: missing folder, no images, clashing output names, or a different earlier run.
        ImageError: lossy inputs with ``strict``.
    """
    hr_dir, out_dir = Path(hr_dir), Path(out_dir)
    if not hr_dir.is_dir():
        raise ConfigError(f"HR folder not found: {hr_dir}")
    out_res = out_dir.resolve()
    if hr_dir.resolve() == out_res or out_res in hr_dir.resolve().parents:
        raise ConfigError(
            f"HR folder {hr_dir} is the output folder {out_dir} or inside it (its images would be taken for "
            "earlier outputs, and HR/ is rewritten): choose another output folder"
        )
    sources = list_images(hr_dir, recursive=recursive, exclude=out_dir, required=False)
    if not sources:
        raise ConfigError(f"no images in {hr_dir} (suffixes: {' '.join(sorted(SUPPORTED_SUFFIXES))})")
    jobs: list[_Job] = []
    by_out: dict[str, str] = {}  # casefolded output name -> input name
    for src in sources:
        name = src.relative_to(hr_dir).as_posix()
        out_name = str(PurePosixPath(name).with_suffix(".png"))
        key = out_name.casefold()  # a.png and A.PNG are one file on case-insensitive file systems
        if key in by_out:
            raise ConfigError(f"{by_out[key]} and {name} would both be written as {out_name}; rename one")
        by_out[key] = name
        jobs.append(_Job(source=src, name=name, out_name=out_name, seed=image_seed(seed, name)))
    lossy = [(j.name, kind) for j in jobs if (kind := is_lossy(j.source))]
    if lossy and strict:
        names = ", ".join(n for n, _ in lossy[:10]) + (f" and {len(lossy) - 10} more" if len(lossy) > 10 else "")
        raise ImageError(f"{len(lossy)} HR input(s) are lossy ({names}); store HR images losslessly, or drop --strict")

    config_id = _config_id(pipeline, seed)
    run_file = out_dir / RUN_FILE
    if run_file.is_file() and not overwrite:
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8")).get("config")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != config_id:
            raise ConfigError(
                f"{out_dir} holds pairs made with another scale, seed or pipeline (see {run_file}); "
                "use --overwrite to redo them, or another output folder"
            )
    kept: list[dict[str, Any]] = []
    todo = jobs
    manifest = out_dir / MANIFEST
    if not overwrite and manifest.is_file():
        previous_entries = {e["source"]: e for e in read_manifest(manifest, strict=False)}
        todo = []
        for job in jobs:
            e = previous_entries.get(job.name)
            complete = (
                e is not None
                and e.get("config") == config_id
                and (out_dir / "HR" / job.out_name).is_file()
                and (out_dir / f"LR_x{pipeline.scale}" / job.out_name).is_file()
            )
            if complete:
                kept.append(e)  # type: ignore[arg-type]  # e is not None: checked in `complete`
            else:
                todo.append(job)
    return DegradePlan(hr_dir, out_dir, pipeline, seed, config_id, todo, kept, lossy, max_pixels)


# ----------------------------------------------------------------------------- run


@dataclass(frozen=True)
class DegradeResult:
    """Outcome of one image: ``entry`` (the manifest line) on success, ``error`` otherwise."""

    name: str
    entry: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DegradeSummary:
    """Counts of one run; ``failures`` lists ``(name, reason)``."""

    processed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    manifest: Path | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures


@contextmanager
def _single_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def degrade_seeded(pipeline: Pipeline, hr: torch.Tensor, seed: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """``pipeline(hr)`` with a generator seeded by ``seed`` (see :func:`image_seed`), single-threaded:
    the LR that ``sruscale degrade`` writes for this image, whatever the caller's thread count.
    ``hr``: ``(1, C, H, W)`` in ``[0, 1]``, modcropped."""
    with _single_thread():
        return pipeline(hr, generator=torch.Generator().manual_seed(seed))


def _process(job: _Job, plan: DegradePlan) -> DegradeResult:
    """Read, modcrop, degrade, write HR and LR atomically; errors (memory exhaustion included) become a
    failed result."""
    s = plan.scale
    try:
        with out_of_memory_fails_file(job.source):
            limit = plan.max_pixels
            img = read_image(job.source) if limit is None else read_image(job.source, max_pixels=limit)
            h, w = img.size
            hh, ww = h - h % s, w - w % s
            if hh == 0 or ww == 0:
                raise ImageError(f"{job.source}: {w}x{h} is smaller than the scale {s}")
            hr = img.pixels[..., :hh, :ww]
            lr, ops = degrade_seeded(plan.pipeline, hr, job.seed)
            hr_alpha = lr_alpha = None
            if img.alpha is not None:
                hr_alpha = img.alpha[..., :hh, :ww]
                lr_alpha = resize(hr_alpha, size=tuple(lr.shape[-2:]), mode="bicubic").clamp(0, 1)
            write_image(plan.lr_dir / job.out_name, img.with_pixels(lr, lr_alpha))
            write_image(plan.out_dir / "HR" / job.out_name, img.with_pixels(hr.contiguous(), hr_alpha))
    except (SruscaleError, OSError) as exc:
        return DegradeResult(job.name, error=str(exc))
    entry = {
        "source": job.name,
        "hr": f"HR/{job.out_name}",
        "lr": f"LR_x{s}/{job.out_name}",
        "source_size": [h, w],
        "hr_size": [hh, ww],
        "lr_size": [int(lr.shape[-2]), int(lr.shape[-1])],
        "channels": img.channels,
        "alpha": img.alpha is not None,
        "bit_depth": img.bit_depth,
        "scale": s,
        "seed": job.seed,
        "config": plan.config_id,
        "ops": ops,
    }
    return DegradeResult(job.name, entry=entry)


def _worker_init(parent: int) -> None:
    """Single-threaded torch; die with ``parent`` (a ``kill -9`` of it would otherwise orphan the pool)."""
    torch.set_num_threads(1)
    die_with_parent(parent)


def _mp_context() -> multiprocessing.context.BaseContext:
    """``fork`` where it is cheap and safe (Linux, Python < 3.12, CUDA unused: workers skip importing
    torch again, like DataLoader workers); else ``forkserver`` (one import, shared), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and sys.version_info < (3, 12) and not torch.cuda.is_initialized():
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def _results(plan: DegradePlan, workers: int) -> Iterator[DegradeResult]:
    if workers <= 1 or len(plan.todo) <= 1:
        with _single_thread():
            for job in plan.todo:
                yield _process(job, plan)
        return
    with ProcessPoolExecutor(
        max_workers=min(workers, len(plan.todo)),
        mp_context=_mp_context(),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    ) as ex:
        futures = [ex.submit(_process, job, plan) for job in plan.todo]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def run_degrade(
    plan: DegradePlan, *, workers: int = 1, on_result: Callable[[DegradeResult], None] | None = None
) -> DegradeSummary:
    """Make the planned pairs with ``workers`` processes; rewrite the manifest sorted at the end.

    Each finished pair is appended to ``manifest.jsonl`` at once, so an interrupted run resumes.

    Args:
        plan: from :func:`plan_degrade`.
        workers: processes (1 = in this process). Outputs do not depend on it.
        on_result: called in this process after each image (progress bars).

    Returns:
        The summary; ``failures`` holds the inputs that could not be read or written.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out = plan.out_dir
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out, recursive=True)  # what a killed run left
    run = {
        "sruscale_version": __version__,
        "hr_dir": str(plan.hr_dir.resolve()),
        "scale": plan.scale,
        "seed": plan.seed,
        "config": plan.config_id,
        "pipeline": plan.pipeline.to_dict(),
    }
    _write_text_atomic(out / RUN_FILE, json.dumps(run, indent=2, sort_keys=True) + "\n")
    manifest = out / MANIFEST
    entries = {e["source"]: e for e in plan.kept}
    _write_text_atomic(manifest, "".join(_dump(e) + "\n" for e in entries.values()))
    summary = DegradeSummary(skipped=len(plan.kept), manifest=manifest)
    try:
        with manifest.open("a", encoding="utf-8") as fh:
            for result in _results(plan, workers):
                if result.entry is not None:
                    entries[result.name] = result.entry
                    fh.write(_dump(result.entry) + "\n")
                    fh.flush()
                    summary.processed += 1
                else:
                    summary.failures.append((result.name, result.error or "unknown error"))
                if on_result is not None:
                    on_result(result)
    finally:
        ordered = sorted(entries.values(), key=lambda e: e["source"])
        _write_text_atomic(manifest, "".join(_dump(e) + "\n" for e in ordered))
    summary.failures.sort()
    return summary


def degrade_folder(
    hr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pipeline: Pipeline,
    seed: int = 0,
    workers: int = 1,
    recursive: bool = False,
    overwrite: bool = False,
    strict: bool = False,
    max_pixels: int | None = None,
) -> DegradeSummary:
    """:func:`plan_degrade` then :func:`run_degrade`: the whole ``sruscale degrade`` without the terminal.

    Example:
        >>> degrade_folder("Set5", "Set5_x4", pipeline=Pipeline.preset("bi", 4))  # doctest: +SKIP
    """
    plan = plan_degrade(
        hr_dir, out_dir, pipeline=pipeline, seed=seed, recursive=recursive, overwrite=overwrite, strict=strict,
        max_pixels=max_pixels,
    )  # fmt: skip
    return run_degrade(plan, workers=workers)
