"""Batch upscaling, library side: find inputs, name outputs, process files, summarise.

Nothing here prints. :func:`plan_jobs` turns command-line style inputs (files, folders,
globs) into a sorted list of :class:`Job`; :func:`run_jobs` yields one
:class:`FileResult` per job (a bad file becomes a ``"failed"`` result, the batch goes
on); :class:`BatchSummary` adds them up. The CLI (``sruscale upscale``) wraps these in a
progress bar and a summary table.

Output naming: ``OUT_DIR / relative folder / {stem}{suffix}.{ext}``. The relative folder
is empty for files named directly, and the path below the folder (``--recursive``) or
below the glob's fixed prefix otherwise. Outputs are written atomically
(:func:`~sruscale.image.write_image`), so an interrupted run leaves no partial file and
a rerun skips what is done.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Literal

import torch

from .api import AlphaMode, Precision, upscale_image
from .errors import ConfigError, SruscaleError
from .image import DEFAULT_MAX_PIXELS, is_image_name, list_images, read_image, write_image
from .models import SRModel

__all__ = [
    "FORMATS",
    "BatchSummary",
    "FileResult",
    "Job",
    "UpscaleSettings",
    "default_suffix",
    "discover_inputs",
    "plan_jobs",
    "process_job",
    "run_jobs",
]

logger = logging.getLogger(__name__)

#: ``--format`` value -> output extension (``same`` keeps the input's, see ``_SAME_OK``)
FORMATS: dict[str, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
#: input extensions kept as they are with ``--format same``; anything else is written as PNG
_SAME_OK = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Job:
    """One input file and the output it becomes."""

    source: Path
    output: Path


def default_suffix(scale: int, outscale: float | None = None) -> str:
    """``_x4``, or ``_x2.5`` with ``outscale=2.5``."""
    return f"_x{outscale:g}" if outscale is not None else f"_x{scale}"


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _glob_base(pattern: str) -> Path:
    """The leading part of ``pattern`` without wildcards (what matches are relative to)."""
    parts = PurePath(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def discover_inputs(
    inputs: Sequence[str | os.PathLike[str]], *, recursive: bool = False, exclude: Path | None = None
) -> list[tuple[Path, PurePath]]:
    """Expand files, folders and globs into ``(file, relative output path)`` pairs.

    * a file is taken as it is (whatever its extension), relative path = its name;
    * a folder contributes its image files (by extension; hidden files skipped), and
      with ``recursive`` those of its subfolders, relative path below the folder;
    * anything else containing ``*``, ``?`` or ``[`` is a glob (``**`` descends),
      expanded here so it works where the shell does not; image files only.

    Args:
        inputs: command-line inputs.
        recursive: descend into subfolders of folder inputs.
        exclude: the output folder: folder scans and globs never read from it (files named
            explicitly are always taken), and a folder input may not lie inside it.

    Returns:
        Pairs in input order, duplicates (same resolved file) removed.

    Raises:
        ConfigError: an input does not exist, a glob matches nothing, a folder input is
            (inside) ``exclude``, or no image was found at all.
    """
    exclude = exclude.resolve() if exclude is not None else None
    found: list[tuple[Path, PurePath]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: PurePath, *, explicit: bool = False) -> bool:
        key = path.resolve()
        if not explicit and _inside(key, exclude):
            return False  # an earlier output, found by a folder scan or a glob
        if key not in seen:
            seen.add(key)
            found.append((path, rel))
        return True

    def add_folder(folder: Path, base: Path, text: str) -> int:
        if _inside(folder.resolve(), exclude):
            raise ConfigError(f"input folder {text} is the output folder or inside it; choose another -o")
        files = list_images(folder, recursive=recursive, exclude=exclude, required=False)
        return sum(add(f, f.relative_to(base)) for f in files)

    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            add_folder(path, path, text)
        elif path.exists():
            add(path, PurePath(path.name), explicit=True)
        elif glob.has_magic(text):
            base = _glob_base(text)
            hits = 0
            for m in sorted(glob.glob(text, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    if not _inside(mp.resolve(), exclude):
                        hits += add_folder(mp, base, m)
                elif mp.is_file() and is_image_name(mp.name):
                    hits += add(mp, mp.relative_to(base))
            if not hits:
                raise ConfigError(f"no image files match {text!r} (outside the output folder)")
        else:
            raise ConfigError(f"input not found: {text}")
    if not found:
        raise ConfigError("no input images found in " + ", ".join(repr(os.fspath(i)) for i in inputs))
    return found


def _output_name(rel: PurePath, *, suffix: str, fmt: str) -> PurePath:
    if fmt == "same":
        ext = rel.suffix if rel.suffix.lower() in _SAME_OK else ".png"
    elif fmt in FORMATS:
        ext = FORMATS[fmt]
    else:
        raise ConfigError(f"format must be one of same, {', '.join(FORMATS)}; got {fmt!r}")
    return rel.with_name(f"{rel.stem}{suffix}{ext}")


def plan_jobs(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    suffix: str,
    fmt: str = "same",
    recursive: bool = False,
) -> list[Job]:
    """The whole work list, sorted by input path (the order shards are cut from).

    Raises:
        ConfigError: see :func:`discover_inputs`; also a suffix with a path separator, two
            inputs that would be written to the same output (both named), or an output that
            would overwrite an input.
    """
    if "/" in suffix or "\\" in suffix or suffix in (".", ".."):
        raise ConfigError(f"suffix must not contain path separators, got {suffix!r}")
    out_dir = Path(out_dir)
    pairs = discover_inputs(inputs, recursive=recursive, exclude=out_dir)
    jobs = [Job(src, out_dir / _output_name(rel, suffix=suffix, fmt=fmt)) for src, rel in pairs]
    sources = {os.path.normcase(j.source.resolve()): j.source for j in jobs}
    by_output: dict[str, Job] = {}
    for job in jobs:
        key = os.path.normcase(job.output.resolve())
        if key in sources:
            raise ConfigError(f"output {job.output} would overwrite input {sources[key]} (use another -o or --suffix)")
        if key in by_output:
            other = by_output[key].source
            raise ConfigError(f"{other} and {job.source} would both be written to {job.output}")
        by_output[key] = job
    return sorted(jobs, key=lambda j: (str(j.source), str(j.output)))


@dataclass(frozen=True)
class UpscaleSettings:
    """Per-file processing options (everything except the model and the file names)."""

    device: torch.device | str = "cpu"
    tile: int | None = None
    overlap: int | None = None
    precision: Precision = "auto"
    self_ensemble: bool = False
    alpha: AlphaMode = "model"
    outscale: float | None = None
    quality: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False


@dataclass(frozen=True)
class FileResult:
    """What happened to one job."""

    source: Path
    output: Path
    status: Status
    reason: str = ""
    seconds: float = 0.0
    out_size: tuple[int, int] | None = None  # (H, W)
    notes: tuple[str, ...] = ()

    @property
    def out_megapixels(self) -> float:
        return self.out_size[0] * self.out_size[1] / 1e6 if self.out_size else 0.0


def _reason(exc: BaseException, source: Path) -> str:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return "out of memory (try a smaller --tile)"
    if isinstance(exc, OSError) and not isinstance(exc, SruscaleError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    for prefix in (f"{source}: ", f"{source.resolve()}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


#: errors that fail one file and let the batch go on (anything else is a bug and propagates)
_FILE_ERRORS = (SruscaleError, OSError, ValueError, MemoryError, torch.OutOfMemoryError)


def process_job(job: Job, model: SRModel, settings: UpscaleSettings) -> FileResult:
    """Read, upscale and write one file; a bad file gives status ``"failed"``, not an exception.

    Raises:
        ConfigError: an option value is invalid (e.g. a tile smaller than the overlap);
            the batch should stop, since every file would fail the same way.
    """
    start = time.perf_counter()
    if job.output.exists() and not settings.overwrite:
        return FileResult(job.source, job.output, "skipped", reason="output exists")
    try:
        image = read_image(job.source, max_pixels=settings.max_pixels)
        out = upscale_image(
            image,
            model,
            outscale=settings.outscale,
            tile=settings.tile,
            overlap=settings.overlap,
            precision=settings.precision,
            device=settings.device,
            self_ensemble=settings.self_ensemble,
            alpha=settings.alpha,
        )
        job.output.parent.mkdir(parents=True, exist_ok=True)
        notes = write_image(job.output, out, quality=settings.quality)
    except ConfigError:
        raise  # an option value is wrong: every file would fail the same way
    except _FILE_ERRORS as exc:
        logger.debug("failed: %s", job.source, exc_info=True)
        return FileResult(
            job.source, job.output, "failed", reason=_reason(exc, job.source), seconds=time.perf_counter() - start
        )
    h, w = out.pixels.shape[-2:]
    return FileResult(
        job.source, job.output, "done", seconds=time.perf_counter() - start, out_size=(h, w), notes=tuple(notes)
    )


def run_jobs(jobs: Iterable[Job], model: SRModel, settings: UpscaleSettings) -> Iterator[FileResult]:
    """:func:`process_job` over ``jobs``, yielding each result as soon as it is ready."""
    for job in jobs:
        yield process_job(job, model, settings)


@dataclass
class BatchSummary:
    """Totals over a batch (possibly gathered from several ranks)."""

    processed: int = 0
    skipped: int = 0
    failed: int = 0
    out_megapixels: float = 0.0
    busy_seconds: float = 0.0
    failures: list[tuple[Path, str]] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)

    @classmethod
    def merge(cls, parts: Iterable[BatchSummary]) -> BatchSummary:
        """One summary for several (e.g. one per ``torchrun`` rank)."""
        total = cls()
        for p in parts:
            total.processed += p.processed
            total.skipped += p.skipped
            total.failed += p.failed
            total.out_megapixels += p.out_megapixels
            total.busy_seconds += p.busy_seconds
            total.failures.extend(p.failures)
            total.notes.update(p.notes)
        return total

    def add(self, r: FileResult) -> None:
        if r.status == "done":
            self.processed += 1
            self.out_megapixels += r.out_megapixels
            self.notes.update(r.notes)
        elif r.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append((r.source, r.reason))
        self.busy_seconds += r.seconds

    @property
    def total(self) -> int:
        return self.processed + self.skipped + self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0
