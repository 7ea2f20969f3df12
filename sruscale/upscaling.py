"""Batch upscaling, library side: find inputs, name outputs, process files, summarise.

Nothing here prints. :func:`plan_jobs` turns command-line style inputs (files, folders,
globs) into a sorted list of :class:`Job`; :func:`run_jobs` yields one
:class:`FileResult` per job (a bad file becomes a ``"failed"`` result, the batch goes
on); :class:`BatchSummary` adds them up. The CLI (``sruscale upscale``) wraps these in a
progress bar and a summary table.

Skip-existing is keyed on settings, not names: next to each output, in the hidden folder
``OUT_DIR/.sruscale/``, a small JSON record keeps the recipe that produced it
(:func:`settings_record`: the model as requested and as resolved, family, denoise, a digest of
its weights, scales or target size, tile-independent options, format, quality). A rerun skips
an output only when the fields that decide its pixels match (``existing="compare"``, the
default); ``"skip"`` skips any existing output and ``"overwrite"`` replaces them all.
:func:`predict_action` tells from the record alone, without weights, what a run would do
(``--dry-run``).

Output naming: ``OUT_DIR / relative folder / {stem}{suffix}.{ext}``. The relative folder
is empty for files named directly, and the path below the folder (``--recursive``) or
below the glob's fixed prefix otherwise. Outputs are written atomically
(:func:`~sruscale.image.write_image`), so an interrupted run leaves no partial file and
a rerun skips what is done.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import math
import os
import string
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Literal, TypeVar, cast

import torch

from ._claims import claim
from ._fs import write_text_atomic
from ._version import __version__
from .api import AlphaMode, Precision, upscale_image
from .errors import ConfigError, SruscaleError, is_out_of_memory, out_of_memory_fails_file
from .image import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    converts_back,
    from_srgb,
    image_size,
    is_image_entry,
    list_images,
    read_image,
    to_srgb,
    write_image,
)
from .models import SRModel
from .models.bicubic import Bicubic
from .resize import imresize

__all__ = [
    "FORMATS",
    "RECORD_DIR",
    "SUFFIX_FIELDS",
    "BatchSummary",
    "FileResult",
    "Job",
    "ModelRequest",
    "TargetSize",
    "UpscaleSettings",
    "default_suffix",
    "discover_inputs",
    "existing_action",
    "expected_record",
    "model_digest",
    "model_recipe",
    "plan_jobs",
    "predict_action",
    "process_batch",
    "render_suffix",
    "settings_record",
    "subfolder_hint",
    "process_job",
    "run_jobs",
]

logger = logging.getLogger(__name__)

#: ``--format`` value -> output extension (``same`` keeps the input's, see ``_SAME_OK``)
FORMATS: dict[str, str] = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff"}
#: input extensions kept as they are with ``--format same``; anything else is written as PNG
_SAME_OK = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

#: hidden folder of the output folder holding one settings record per output
RECORD_DIR = ".sruscale"

Status = Literal["done", "skipped", "failed"]
Existing = Literal["compare", "skip", "overwrite"]
#: what a run would do with an output (:func:`predict_action`): ``check`` = only its weights can tell
Verdict = Literal["write", "skip", "redo", "check"]


@dataclass(frozen=True)
class Job:
    """One input file, the output it becomes, and where the output's settings record lives."""

    source: Path
    output: Path
    record: Path | None = None


@dataclass(frozen=True)
class TargetSize:
    """A requested output size; the aspect ratio is kept, so one of the three is enough.

    With several, the output fits inside all of them (the smallest factor wins).
    """

    width: int | None = None
    height: int | None = None
    long_side: int | None = None

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if v is not None and v < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {v}")
        if self.width is None and self.height is None and self.long_side is None:
            raise ConfigError("a target size needs a width, a height or a long side")

    def size_for(self, h: int, w: int) -> tuple[int, int]:
        """Output ``(H, W)`` for an ``h`` x ``w`` input: the requested side exact, the other by aspect."""
        options = []
        if self.width is not None:
            options.append((self.width / w, "w", self.width))
        if self.height is not None:
            options.append((self.height / h, "h", self.height))
        if self.long_side is not None:
            options.append((self.long_side / max(h, w), "w" if w >= h else "h", self.long_side))
        factor, side, exact = min(options)
        if side == "w":
            return max(1, math.floor(h * factor + 0.5)), exact
        return exact, max(1, math.floor(w * factor + 0.5))


def default_suffix(scale: int, outscale: float | None = None) -> str:
    """``_x4``, or ``_x2.5`` with ``outscale=2.5``."""
    return f"_x{outscale:g}" if outscale is not None else f"_x{scale}"


#: the ``{field}``s a ``--suffix`` may contain (values: :func:`sruscale.batch.suffix_values`)
SUFFIX_FIELDS = ("model", "scale", "outscale", "denoise", "width", "height", "long_side")


def render_suffix(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{field}`` replaced by ``values[field]`` ("" when it has none); ``{{`` and
    ``}}`` are literal braces.

    Raises:
        ConfigError: a field not in :data:`SUFFIX_FIELDS`, a format spec (``{scale:02d}``), or an unmatched brace.

    Example:
        >>> render_suffix("_{model}_x{scale}", {"model": "realworld", "scale": "4"})
        '_realworld_x4'
    """
    known = ", ".join(f"{{{k}}}" for k in SUFFIX_FIELDS)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"--suffix {template!r}: {exc} (write {{{{ or }}}} for a literal brace)") from None
    out = []
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name not in SUFFIX_FIELDS or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ConfigError(f"unknown --suffix field {shown}; expected one of {known}")
        out.append(values.get(name, ""))
    return "".join(out)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _real(path: str | os.PathLike[str]) -> Path:
    """``os.path.realpath``: links resolved as far as they go; unlike ``Path.resolve``, a loop never raises."""
    return Path(os.path.realpath(path))


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
    * a folder contributes its image files (:func:`~sruscale.image.list_images`, the one scan
      rule), and with ``recursive`` those of its subfolders, relative path below the folder;
    * anything else containing ``*``, ``?`` or ``[`` is a glob (``**`` descends),
      expanded here so it works where the shell does not; image files only, by the same rule
      (:func:`~sruscale.image.is_image_entry`).

    Entries that are not regular files (a link loop, a FIFO, a device, a socket) are kept: reading
    refuses them by name without opening them, so they fail as files and the batch goes on.

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
    exclude = _real(exclude) if exclude is not None else None
    found: list[tuple[Path, PurePath]] = []
    seen: set[Path] = set()

    def add(path: Path, rel: PurePath, *, explicit: bool = False) -> bool:
        key = _real(path)
        if not explicit and _inside(key, exclude):
            return False  # an earlier output, found by a folder scan or a glob
        if key not in seen:
            seen.add(key)
            found.append((path, rel))
        return True

    def add_folder(folder: Path, base: Path, text: str) -> int:
        if _inside(_real(folder), exclude):
            raise ConfigError(f"input folder {text} is the output folder or inside it; choose another -o")
        files = list_images(folder, recursive=recursive, exclude=exclude, required=False)
        return sum(add(f, f.relative_to(base)) for f in files)

    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            add_folder(path, path, text)
        elif os.path.lexists(path):  # a broken link or a link loop too: it fails when read, by name
            add(path, PurePath(path.name), explicit=True)
        elif glob.has_magic(text):
            base = _glob_base(text)
            hits = 0
            for m in sorted(glob.glob(text, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    if not _inside(_real(mp), exclude):
                        hits += add_folder(mp, base, m)
                elif is_image_entry(mp):
                    hits += add(mp, mp.relative_to(base))
            if not hits:
                raise ConfigError(f"no image files match {text!r} (outside the output folder)")
        else:
            raise ConfigError(f"input not found: {text}")
    if not found:
        raise ConfigError("no input images found in " + ", ".join(repr(os.fspath(i)) for i in inputs))
    return found


def subfolder_hint(inputs: Sequence[str | os.PathLike[str]]) -> str:
    """A hint when a folder input has subfolders holding images and no ``--recursive`` was given ("" otherwise)."""
    for raw in inputs:
        folder = Path(raw)
        if not folder.is_dir():
            continue
        subs = sorted(
            d
            for d in folder.iterdir()
            if d.is_dir() and not d.name.startswith(".") and list_images(d, recursive=True, required=False)
        )
        if subs:
            names = ", ".join(d.name for d in subs[:3]) + (", ..." if len(subs) > 3 else "")
            return f"{os.fspath(raw)} has subfolders with images ({names}) that are not read; add -r to include them"
    return ""


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
    jobs = []
    for src, rel in pairs:
        name = _output_name(rel, suffix=suffix, fmt=fmt)
        jobs.append(Job(src, out_dir / name, out_dir / RECORD_DIR / f"{name}.json"))
    # casefolded: a.png and A.PNG are one file on case-insensitive file systems (macOS, Windows)
    sources = {os.path.normcase(_real(j.source)).casefold(): j.source for j in jobs}
    by_output: dict[str, Job] = {}
    for job in jobs:
        key = os.path.normcase(_real(job.output)).casefold()
        if key in sources:
            raise ConfigError(f"output {job.output} would overwrite input {sources[key]} (use another -o or --suffix)")
        if key in by_output:
            other = by_output[key].source
            raise ConfigError(f"{other} and {job.source} would both be written to {job.output}")
        by_output[key] = job
    return sorted(jobs, key=lambda j: (str(j.source), str(j.output)))


@dataclass(frozen=True)
class ModelRequest:
    """The model as the user asked for it, known without reading any weights (recorded; compared by ``--dry-run``).

    ``model``: ``--model`` as given (None: the default choice; ``best`` is the default too); ``weights``:
    the ``--weights`` file, resolved; ``scale``: the factor the request names (what the default
    suffix says; None when chosen per image); ``outscale``: ``--outscale`` as given; ``family`` and
    ``denoise``: the manifest family the name belongs to and the denoise strength it runs at (None
    without a family or without a denoise control).
    """

    model: str | None = None
    weights: str | None = None
    scale: int | None = None
    outscale: float | None = None
    family: str | None = None
    denoise: float | None = None


@dataclass(frozen=True)
class UpscaleSettings:
    """Per-file processing options (everything except the model and the file names).

    ``existing``: what to do with an output that exists already: ``"compare"`` its settings
    record and skip it only when it matches, ``"skip"`` it whatever made it, or ``"overwrite"`` it.
    ``overwrite=True`` is the same as ``existing="overwrite"``. ``request``: the model as asked
    for, written to each settings record.
    """

    device: torch.device | str = "cpu"
    tile: int | None = None
    overlap: int | None = None
    precision: Precision = "auto"
    self_ensemble: bool = False
    alpha: AlphaMode = "model"
    outscale: float | None = None
    target: TargetSize | None = None
    quality: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    overwrite: bool = False
    existing: Existing = "compare"
    wrap: bool = False
    request: ModelRequest = ModelRequest()

    @property
    def existing_mode(self) -> Existing:
        return "overwrite" if self.overwrite else self.existing


#: a fixed model, or a function from the final size factor (None = the model's own scale) and the input
#: file to a model (chosen per image: target sizes, or the input's JPEG quality and noise)
ModelSource = SRModel | Callable[[float | None, Path], SRModel]
#: ``progress(done_tiles, total_tiles)`` inside one image
TileProgress = Callable[[int, int], None]

_digests: weakref.WeakKeyDictionary[SRModel, str] = weakref.WeakKeyDictionary()


def model_digest(model: SRModel) -> str:
    """sha256 of the model's architecture, scale and every tensor of its state dict (cached per model).

    Identifies the weights whatever file or name they came from, and an ncnn graph's structure;
    ``"none"`` for weightless models.
    """
    if model in _digests:
        return _digests[model]
    state = model.state_dict()
    structure = getattr(model, "structure_digest", "")  # an ncnn graph: what its layers do beside the weights
    if not state and not structure:
        digest = "none"
    else:
        h = hashlib.sha256(f"{model.name}:{model.scale}{':' if structure else ''}{structure}".encode())
        for key in sorted(state):
            t = state[key].detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        digest = h.hexdigest()
    _digests[model] = digest
    return digest


#: record fields that decide an output's pixels: a rerun keeps the output only when all of them match
_PIXEL_KEYS = (
    "arch", "weights_sha256", "scale", "outscale", "target", "self_ensemble", "alpha", "precision", "wrap", "format",
    "quality",
)  # fmt: skip
#: record fields known without weights (:func:`expected_record`): what ``--dry-run`` compares
_PLAN_KEYS = (
    "request.model", "request.weights", "request.scale", "request.outscale", "family", "denoise", "target",
    "self_ensemble", "alpha", "precision", "wrap", "format", "quality",
)  # fmt: skip
#: how a changed field is named in a reason ("model, quality changed"); other fields by their key
_WORDS = {
    "arch": "model", "request.model": "model", "request.weights": "model", "family": "model",
    "weights_sha256": "weights", "request.scale": "scale", "request.outscale": "outscale",
}  # fmt: skip
#: the reason an output is kept by the default comparison
SAME_SETTINGS = "same settings"


def model_recipe(model: SRModel, request: ModelRequest) -> dict[str, object]:
    """The model part of a settings record: as requested, as resolved (``model.origin``), family, denoise, digest.

    Example:
        ``{"request": {"model": "realworld", ...}, "model": "realworld at denoise 0.75 (bundled
        realworld-light-x4 + realworld-x4)", "arch": "plainsr", "family": "realworld", "denoise": 0.75,
        "weights_sha256": "ec1c...", "scale": 4}``
    """
    return {
        "request": _as_typed(request),
        "model": model.origin or model.name,
        "arch": model.name,
        "family": request.family,
        "denoise": request.denoise,
        "weights_sha256": model_digest(model),
        "scale": model.scale,
    }


def expected_record(settings: UpscaleSettings, output: Path) -> dict[str, object]:
    """The part of ``output``'s settings record known without any weights (compared by :func:`predict_action`)."""
    return {
        "sruscale": __version__,
        "request": _as_typed(settings.request),
        "family": settings.request.family,
        "denoise": settings.request.denoise,
        "target": asdict(settings.target) if settings.target is not None else None,
        "self_ensemble": settings.self_ensemble,
        "alpha": settings.alpha,
        "precision": settings.precision,
        "wrap": settings.wrap,
        "format": output.suffix.lower(),
        "quality": settings.quality,
    }


def settings_record(model: SRModel, settings: UpscaleSettings, output: Path) -> dict[str, object]:
    """Everything that made ``output``: the recipe (:func:`model_recipe`), sizes, tile-independent options, format.

    The fields in ``_PIXEL_KEYS`` decide whether a rerun keeps the output; the others (the model
    as requested and as resolved, family, denoise, sruscale version) name it for people and ``--dry-run``.
    """
    outscale = settings.outscale
    if outscale is not None and float(outscale) == model.scale:
        outscale = None  # x3 by --scale 3 or by --outscale 3 with an x3 model: the same pixels
    return {**expected_record(settings, output), **model_recipe(model, settings.request), "outscale": outscale}


def _as_typed(request: ModelRequest) -> dict[str, object]:
    """The record's ``request``: the fields of ``request`` the user typed (family and denoise are recorded beside)."""
    return {"model": request.model, "weights": request.weights, "scale": request.scale, "outscale": request.outscale}


def _read_record(path: Path | None) -> dict[str, object] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if "arch" not in data:  # sruscale 0.1 recorded the architecture as "model", and no request
        data["arch"] = data.get("model")
    return data


def _write_record(path: Path | None, record: dict[str, object]) -> None:
    if path is None:
        return
    try:
        write_text_atomic(path, json.dumps(record, sort_keys=True, indent=1) + "\n")
    except OSError as exc:  # the output itself is fine; the next run will redo it
        logger.warning("could not write the settings record %s: %s", path, exc)


def _field(record: dict[str, object], key: str) -> object:
    """``record[key]``; ``"request.model"`` reads inside ``record["request"]``."""
    head, _, tail = key.partition(".")
    value = record.get(head)
    if not tail:
        return value
    return cast(dict[str, object], value).get(tail) if isinstance(value, dict) else None


def _differ(old: dict[str, object], new: dict[str, object], keys: Iterable[str]) -> list[str]:
    return [k for k in keys if _field(old, k) != _field(new, k)]


def _say_changed(keys: list[str]) -> str:
    """Changed record fields in the user's words: ``"model, quality changed"`` ("weights" only when
    neither the model nor the denoise strength explains it)."""
    words: list[str] = []
    for k in keys:
        word = _WORDS.get(k, k)
        if word not in words:
            words.append(word)
    if "weights" in words and ({"model", "denoise"} & set(words)):
        words.remove("weights")
    return ", ".join(words) + " changed"


def _changed(old: dict[str, object] | None, new: dict[str, object]) -> str:
    """ "" when the fields deciding the pixels match; else a short reason such as ``"denoise changed"``.

    An older record (without the request) is compared on those fields alone: when nothing that
    decides the pixels changed, its output is kept (and its record brought up to date).
    """
    if old is None:
        return "no settings record"
    diff = _differ(old, new, _PIXEL_KEYS)
    if not diff:
        return ""
    recipe = _differ(old, new, ("request.model", "request.weights", "denoise")) if "request" in old else []
    return _say_changed(recipe + diff)


def existing_action(job: Job, record: dict[str, object], mode: Existing) -> tuple[Literal["run", "skip"], str]:
    """Whether to (re)process ``job`` given the settings ``record`` of this run, and why.

    Returns ``("skip", reason)`` or ``("run", reason)``; the reason is "" for a new output.
    """
    if not job.output.exists():
        return "run", ""
    if mode == "overwrite":
        return "run", "--overwrite"
    if mode == "skip":
        return "skip", "output exists"
    why = _changed(_read_record(job.record), record)
    return ("run", why) if why else ("skip", SAME_SETTINGS)


def predict_action(job: Job, expected: dict[str, object], mode: Existing) -> tuple[Verdict, str]:
    """What a run would do with ``job``, told from its settings record alone (no weights are read).

    ``expected`` is :func:`expected_record` for this run. An output whose record differs in the
    request (model name, ``--weights`` file, scale, outscale), family, denoise, size or options is
    ``"redo"``; one whose record matches is ``"skip"``, except where only the weights can tell
    (``"check"``): a ``--weights`` file (it may have been retrained), a record made by another
    sruscale version (its bundled weights may differ), or an older record without the request.
    A run keeps an output made by other names for the same weights (``fsrcnn -s 2`` and ``fsrcnn-x2``),
    which this calls a redo.

    Returns:
        ``(verdict, reason)``: ``("write", "")`` for a new output.
    """
    if not job.output.exists():
        return "write", ""
    if mode != "compare":
        return ("redo", "--overwrite") if mode == "overwrite" else ("skip", "output exists")
    old = _read_record(job.record)
    if old is None:
        return "redo", "no settings record"
    if "request" not in old:
        return "check", "record of an older sruscale: the weights decide"
    diff = _differ(old, expected, _PLAN_KEYS)
    if diff:
        return "redo", _say_changed(diff)
    if old.get("sruscale") != expected["sruscale"]:
        return "check", f"made by sruscale {old.get('sruscale')}: the weights decide"
    if _field(expected, "request.weights") is not None:
        return "check", "--weights file: its weights decide"
    return "skip", SAME_SETTINGS


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
    #: the model that made the output (its ``origin``), "" when none ran
    model: str = ""

    @property
    def out_megapixels(self) -> float:
        return self.out_size[0] * self.out_size[1] / 1e6 if self.out_size else 0.0


#: what an out-of-memory failure suggests
_OOM_HINT = "try a smaller --tile"


def _reason(exc: BaseException, source: Path) -> str:
    if is_out_of_memory(exc):
        return f"out of memory ({_OOM_HINT})"
    if isinstance(exc, OSError) and not isinstance(exc, SruscaleError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    for prefix in (f"{source}: ", f"{_real(source)}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


#: errors that fail one file and let the batch go on (anything else is a bug and propagates)
_FILE_ERRORS = (SruscaleError, OSError, ValueError, MemoryError, torch.OutOfMemoryError)


def _model_for(models: ModelSource, factor: float | None, source: Path) -> SRModel:
    return models if isinstance(models, SRModel) else models(factor, source)


def _resize_to(image: ImageData, size: tuple[int, int]) -> ImageData:
    """MATLAB bicubic (antialiased when shrinking) to exactly ``size`` = ``(H, W)``."""
    if image.size == size:
        return image
    image = image.floating()
    alpha = image.alpha
    return image.with_pixels(
        imresize(image.pixels, size=size).clamp_(0, 1),
        None if alpha is None else imresize(alpha, size=size).clamp_(0, 1),
    )


def process_job(
    job: Job, models: ModelSource, settings: UpscaleSettings, *, progress: TileProgress | None = None
) -> FileResult:
    """Claim, read, upscale and write one file; a bad file gives status ``"failed"``, not an exception,
    and an output another sruscale process is writing right now is skipped.

    Args:
        job: input and output paths.
        models: the model, or a function from the final size factor to a model.
        settings: processing options.
        progress: ``progress(done_tiles, total_tiles)`` while the image is processed.

    Raises:
        ConfigError: an option value is invalid (e.g. a tile smaller than the overlap);
            the batch should stop, since every file would fail the same way.
    """
    st = read_stage(job, models, settings)
    forward_stage(st, settings, progress=progress)
    return write_stage(st, settings)


def _write_output(
    job: Job, image: ImageData, profile: bytes | None, record: dict[str, object], *, quality: int | None
) -> list[str]:
    """Write ``image`` (working sRGB, converted back to the input's ICC ``profile``) to
    ``job.output``, then its settings record; returns the writer's notes."""
    job.output.parent.mkdir(parents=True, exist_ok=True)
    notes = write_image(job.output, from_srgb(image, profile), quality=quality)
    _write_record(job.record, record)
    return notes


def _claimed_elsewhere(job: Job) -> FileResult:
    return FileResult(job.source, job.output, "skipped", reason="another process is writing it")


def _failed(job: Job, exc: BaseException, start: float | None = None) -> FileResult:
    logger.debug("failed: %s", job.source, exc_info=True)
    seconds = 0.0 if start is None else time.perf_counter() - start
    return FileResult(job.source, job.output, "failed", reason=_reason(exc, job.source), seconds=seconds)


@dataclass(frozen=True)
class _Prepared:
    """A job past its existence check: the input image, its settings record, and why an old output is replaced."""

    image: ImageData
    record: dict[str, object]
    replaced: str


def _prepare(job: Job, model: SRModel, settings: UpscaleSettings) -> FileResult | _Prepared:
    """The steps before the forward pass: a ``"skipped"`` result when the existing output stays,
    else the read input. Raises the :data:`_FILE_ERRORS` of reading."""
    record = settings_record(model, settings, job.output)
    action, why = existing_action(job, record, settings.existing_mode)
    if action == "skip":
        if why == SAME_SETTINGS and _read_record(job.record) != record:  # same pixels, older or other names
            _write_record(job.record, record)
        return FileResult(job.source, job.output, "skipped", reason=why)
    return _Prepared(read_image(job.source, max_pixels=settings.max_pixels, keep8=True), record, why)


_Pixels = TypeVar("_Pixels", ImageData, torch.Tensor)
_T = TypeVar("_T")


def _forward(
    x: _Pixels,
    model: SRModel,
    settings: UpscaleSettings,
    *,
    outscale: float | None,
    progress: TileProgress | None = None,
    final8: bool = False,
) -> _Pixels:
    """:func:`~sruscale.api.upscale_image` with ``settings``' tiling, precision, device, self-ensemble,
    alpha and wrap: one image, or a (B,C,H,W) batch of alpha-free images in [0, 1]."""
    return upscale_image(
        x,
        model,
        outscale=outscale,
        tile=settings.tile,
        overlap=settings.overlap,
        precision=settings.precision,
        device=settings.device,
        self_ensemble=settings.self_ensemble,
        alpha=settings.alpha,
        wrap=settings.wrap,
        progress=progress,
        final8=final8,
    )


def _broke_down(model: SRModel) -> bool:
    """Whether ``model``'s outputs went far outside [0, 1] since the last call (see ``NcnnModel``)."""
    take = getattr(model, "take_breakdowns", None)
    return bool(take()) if callable(take) else False


#: the model to rerun a file with when a model breaks down on it (set by the default choice)
_fallbacks: weakref.WeakKeyDictionary[SRModel, SRModel] = weakref.WeakKeyDictionary()


def set_fallback(model: SRModel, backup: SRModel) -> None:
    """Rerun a file with ``backup`` whenever ``model`` breaks down on it (outputs far outside [0, 1])."""
    _fallbacks[model] = backup


def _checked(run: Callable[[SRModel], _T], model: SRModel) -> tuple[_T, SRModel, list[str]]:
    """``run(model)``, or ``run(backup)`` when the model broke down on this input and has a backup
    (:func:`set_fallback`; the default choice gives a registry network sruscale's own model).
    Returns the result, the model that made it, and a note when the model broke down."""
    _broke_down(model)  # a count left by an earlier input that failed is not this input's
    out = run(model)
    if not _broke_down(model):
        return out, model, []
    name = model.origin or model.name
    backup = _fallbacks.get(model)
    if backup is None:
        return out, model, [f"{name} broke down on saturated colours (output far outside [0, 1]; shows as noise): "
                            "try another --model"]  # fmt: skip
    del out  # before the rerun: never two outputs in memory
    _broke_down(backup)
    out = run(backup)
    _broke_down(backup)
    return out, backup, [f"{name} broke down on saturated colours (output far outside [0, 1]): this file was "
                         f"upscaled with {backup.origin or backup.name} instead"]  # fmt: skip


def _compute(
    prepared: _Prepared,
    model: SRModel,
    settings: UpscaleSettings,
    *,
    size: tuple[int, int] | None = None,
    progress: TileProgress | None = None,
) -> tuple[ImageData, bytes | None]:
    """The upscaled image (to ``size`` when given) in working sRGB and the input's ICC profile."""
    work, profile = to_srgb(prepared.image)
    if size is not None and isinstance(model, Bicubic):  # a target at or below the input: one resize, no SR
        out = _resize_to(work, size)
    else:
        final8 = size is None and not converts_back(profile)  # written as computed: no float copy
        out = _forward(
            work, model, settings, outscale=None if size is not None else settings.outscale, progress=progress,
            final8=final8,
        )
    return (_resize_to(out, size) if size is not None else out), profile


@dataclass(frozen=True)
class _Computed:
    """An upscaled image ready to write: working-sRGB pixels, the input's ICC profile, its record."""

    image: ImageData
    profile: bytes | None
    record: dict[str, object]
    replaced: str
    notes: tuple[str, ...] = ()


def _written(job: Job, c: _Computed, model: SRModel, settings: UpscaleSettings, *, start: float) -> FileResult:
    """Write ``c``; the file's result. Raises the :data:`_FILE_ERRORS` of writing."""
    written = [*_write_output(job, c.image, c.profile, c.record, quality=settings.quality), *c.notes]
    h, w = c.image.pixels.shape[-2:]
    return FileResult(
        job.source,
        job.output,
        "done",
        reason=c.replaced,
        seconds=time.perf_counter() - start,
        out_size=(h, w),
        notes=tuple(written),
        model=model.origin or model.name,
    )


def _finish(
    job: Job,
    prepared: _Prepared,
    model: SRModel,
    settings: UpscaleSettings,
    *,
    start: float,
    size: tuple[int, int] | None = None,
    progress: TileProgress | None = None,
) -> FileResult:
    """Upscale one prepared image (to ``size`` when given), write it; raises the :data:`_FILE_ERRORS`."""
    (out, profile), used, notes = _checked(
        lambda net: _compute(prepared, net, settings, size=size, progress=progress), model
    )
    computed = _Computed(out, profile, prepared.record, prepared.replaced, tuple(notes))
    return _written(job, computed, used, settings, start=start)


@dataclass
class Staged:
    """One job between the stages of :func:`read_stage` -> :func:`forward_stage` -> :func:`write_stage`
    (the pipelined batch runs them on three threads). ``result`` is set once the job is finished
    early (skipped, failed); the claim on its output is held until :func:`write_stage` or :meth:`close`."""

    job: Job
    claims: contextlib.ExitStack
    start: float
    result: FileResult | None = None
    model: SRModel | None = None
    prepared: _Prepared | None = None
    size: tuple[int, int] | None = None
    out: _Computed | None = None

    def close(self) -> None:
        """Release the claim (the job will not be written, or has been)."""
        self.claims.close()


def read_stage(job: Job, models: ModelSource, settings: UpscaleSettings) -> Staged:
    """Claim the output, choose the model, check the existing output, read the input."""
    st = Staged(job, contextlib.ExitStack(), time.perf_counter())
    try:
        if not st.claims.enter_context(claim(job.output)):
            st.result = _claimed_elsewhere(job)
            return st
        with out_of_memory_fails_file(job.source, _OOM_HINT):
            factor = settings.outscale
            if settings.target is not None:
                h, w = image_size(job.source, max_pixels=settings.max_pixels)
                st.size = settings.target.size_for(h, w)
                factor = max(st.size[0] / h, st.size[1] / w)
            st.model = _model_for(models, factor, job.source)
            prepared = _prepare(job, st.model, settings)
        if isinstance(prepared, FileResult):
            st.result = prepared
        else:
            st.prepared = prepared
    except _FILE_ERRORS as exc:
        st.result = _failed(job, exc, st.start)
    except BaseException:  # ConfigError (every file would fail), KeyboardInterrupt: nothing to write
        st.close()
        raise
    return st


def forward_stage(st: Staged, settings: UpscaleSettings, *, progress: TileProgress | None = None) -> None:
    """Upscale a read job (``st.out``), or set ``st.result`` to the failure."""
    if st.result is not None:
        return
    assert st.prepared is not None and st.model is not None
    st.start = time.perf_counter()  # the file's seconds: upscale and write, not the read-ahead wait
    try:
        with out_of_memory_fails_file(st.job.source, _OOM_HINT):
            p = st.prepared
            (out, profile), st.model, notes = _checked(
                lambda net: _compute(p, net, settings, size=st.size, progress=progress), st.model
            )
        st.out = _Computed(out, profile, p.record, p.replaced, tuple(notes))
        st.prepared = None  # the input's memory goes with the forward
    except _FILE_ERRORS as exc:
        st.result = _failed(st.job, exc, st.start)
    except BaseException:  # ConfigError (every file would fail the same way), KeyboardInterrupt
        st.close()
        raise


def write_stage(st: Staged, settings: UpscaleSettings) -> FileResult:
    """Write an upscaled job and release its claim; the job's result."""
    try:
        if st.result is not None:
            return st.result
        assert st.model is not None and st.out is not None
        try:
            return _written(st.job, st.out, st.model, settings, start=st.start)
        except _FILE_ERRORS as exc:
            return _failed(st.job, exc, st.start)
    finally:
        st.out = None  # the output's memory goes with the write
        st.close()


#: images up to this many pixels are batched (measured: 2.2x faster at 128^2, 7.6x at 32^2, FSRCNN x2 CPU)
BATCH_MAX_PIXELS = 256 * 256
#: at most this many images per forward
BATCH_SIZE = 16


def process_batch(jobs: Sequence[Job], models: ModelSource, settings: UpscaleSettings) -> list[FileResult]:
    """:func:`process_job` for several small files, with one forward pass per group of equal-sized images.

    Images that cannot share a forward (alpha, another size or channel count, over
    :data:`BATCH_MAX_PIXELS`, or target-size settings) go through :func:`process_job`.
    Results are in ``jobs`` order and equal :func:`process_job`'s within float rounding.
    """
    if not isinstance(models, SRModel) or len(jobs) < 2:  # a model per image: one at a time
        return [process_job(j, models, settings) for j in jobs]
    start = time.perf_counter()
    model = models
    with contextlib.ExitStack() as claims:  # each output claimed before its existence check, until written
        return _process_claimed_batch(jobs, settings, model, claims, start)


def _process_claimed_batch(
    jobs: Sequence[Job],
    settings: UpscaleSettings,
    model: SRModel,
    claims: contextlib.ExitStack,
    start: float,
) -> list[FileResult]:
    results: dict[int, FileResult] = {}
    groups: dict[tuple[int, ...], list[tuple[int, ImageData, bytes | None, _Prepared]]] = {}
    for i, job in enumerate(jobs):
        if not claims.enter_context(claim(job.output)):
            results[i] = _claimed_elsewhere(job)
            continue
        try:
            with out_of_memory_fails_file(job.source, _OOM_HINT):
                prepared = _prepare(job, model, settings)
                if isinstance(prepared, FileResult):
                    results[i] = prepared
                    continue
                image = prepared.image
                if image.alpha is not None or image.size[0] * image.size[1] > BATCH_MAX_PIXELS:
                    results[i] = _finish(job, prepared, model, settings, start=time.perf_counter())
                    continue
                work, profile = to_srgb(image)
                work = work.floating()  # joined into one float batch
        except ConfigError:
            raise
        except _FILE_ERRORS as exc:
            results[i] = _failed(job, exc)
            continue
        groups.setdefault(tuple(work.pixels.shape), []).append((i, work, profile, prepared))
    for members in groups.values():
        for k in range(0, len(members), BATCH_SIZE):
            chunk = members[k : k + BATCH_SIZE]
            try:
                with out_of_memory_fails_file(jobs[chunk[0][0]].source, _OOM_HINT):
                    _broke_down(model)
                    out = _forward(torch.cat([m[1].pixels for m in chunk]), model, settings, outscale=settings.outscale)
                    alone = _broke_down(model)  # which file broke down is not known: each runs alone
            except ConfigError:
                raise
            except _FILE_ERRORS as exc:  # the shared forward failed: so did each of its files
                results.update({i: _failed(jobs[i], exc) for i, *_ in chunk})
                continue
            if alone:
                del out
                for i, _, _, prepared in chunk:
                    try:
                        with out_of_memory_fails_file(jobs[i].source, _OOM_HINT):
                            results[i] = _finish(jobs[i], prepared, model, settings, start=time.perf_counter())
                    except ConfigError:
                        raise
                    except _FILE_ERRORS as exc:
                        results[i] = _failed(jobs[i], exc)
                continue
            seconds = (time.perf_counter() - start) / len(jobs)
            for b, (i, work, profile, prepared) in enumerate(chunk):
                job = jobs[i]
                image = work.with_pixels(out[b : b + 1], None)
                try:
                    notes = _write_output(job, image, profile, prepared.record, quality=settings.quality)
                except _FILE_ERRORS as exc:
                    results[i] = _failed(job, exc)
                    continue
                h, w = image.pixels.shape[-2:]
                results[i] = FileResult(
                    job.source,
                    job.output,
                    "done",
                    reason=prepared.replaced,
                    seconds=seconds,
                    out_size=(h, w),
                    notes=tuple(notes),
                    model=model.origin or model.name,
                )
    return [results[i] for i in range(len(jobs))]


def run_jobs(jobs: Iterable[Job], models: ModelSource, settings: UpscaleSettings) -> Iterator[FileResult]:
    """:func:`process_job` over ``jobs``, yielding each result as soon as it is ready.

    Each output is claimed first (:func:`sruscale._claims.claim`): one that another process is
    writing right now is skipped, so concurrent runs on one folder share the work.
    """
    for job in jobs:
        yield process_job(job, models, settings)


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
    skip_reasons: Counter[str] = field(default_factory=Counter)  # "same settings", "output exists"
    redo_reasons: Counter[str] = field(default_factory=Counter)  # existing outputs replaced, and why
    interrupted: bool = False

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
            total.skip_reasons.update(p.skip_reasons)
            total.redo_reasons.update(p.redo_reasons)
            total.interrupted |= p.interrupted
        return total

    def add(self, r: FileResult) -> None:
        if r.status == "done":
            self.processed += 1
            self.out_megapixels += r.out_megapixels
            self.notes.update(r.notes)
            if r.reason:
                self.redo_reasons[r.reason] += 1
        elif r.status == "skipped":
            self.skipped += 1
            self.skip_reasons[r.reason or "output exists"] += 1
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
