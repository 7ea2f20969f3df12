"""The one path from ``--model/--weights/--scale`` to a ready model.

Used by ``upscale``, ``evaluate``, ``export``, training's ``init_weights`` and the Python API.
Two steps, each called once:

1. :func:`resolve` turns the request into a :class:`ModelSource` (which architecture, which
   scale, which file) using only names and the weights manifest;
2. :func:`build` reads the file, validates it (bounds, shapes on the ``meta`` device, finite
   values: :func:`sruscale.weights._checkpoint.build_model`) and returns the loaded model.

Accepted requests:

* ``weights=FILE.param`` (or ``.bin``): an ncnn graph and its weights (:mod:`._ncnn`; the scale is
  measured by running it).
* ``weights=FILE``: a sruscale ``.safetensors`` (self-describing), a training checkpoint
  (``iter_*.pt``: its EMA weights), an authors' EDSR-PyTorch / RCAN ``.pt`` (told apart by its
  keys, or named by ``name="edsr"``/``"edsr-baseline"``/``"rcan"``), a bare state dict with
  ``name`` and ``scale``, or, without ``name``, a community model file of any architecture
  spandrel knows (:mod:`sruscale.weights._community`, the ``community`` extra).
  ``name``/``scale``, when given, must agree with what the file says.
* ``name=None``: the ``best`` bundled model for ``scale`` (``bicubic``, with a logged warning, if
  none is bundled at that scale). The ``upscale`` and ``export`` commands ask
  :func:`choose_model` instead: the exact bundled scale, else the nearest one above
  (``upscale`` then downscales), else the largest (``upscale`` then enlarges); never a silent bicubic.
* ``name="bicubic"``: MATLAB bicubic interpolation (no weights).
* a bundled weights name (``"fsrcnn-x2"``), an installed pretrained network of a registry package
  (``"span-x4"``, :mod:`._pretrained`) or an alias of the manifest (``"best"``, ``"fast"``).
* an architecture name (``"fsrcnn"``): its best bundled weights at ``scale``; with
  ``untrained=True`` (``export --untrained``) freshly initialised weights instead.
* a model family of the manifest (``"realworld"``): its file at ``scale``; ``denoise`` in
  ``[0, 1]`` (default :data:`DEFAULT_DENOISE`) interpolates the weights of its low-noise
  (``denoise = 0``) and high-noise (``denoise = 1``) files, as realesr-general-x4v3 does; a
  one-file family (``"realworld-gan"``) loads that file and refuses ``denoise``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device
from ..errors import CheckpointError, ConfigError, UnknownModelError
from ..models import REGISTRY, SRModel, get_model_class
from ..models.bicubic import Bicubic
from ._authors import authors_arch, convert_authors_state, is_authors_layout
from ._checkpoint import build_model, load_model_file
from ._files import read_weights, sruscale_metadata
from ._manifest import (
    WeightsEntry,
    bundled_models,
    entry_named,
    family_entries,
    find_weights,
    list_weights,
    resolve_alias,
    verify,
)
from ._ncnn import load_ncnn
from ._pretrained import missing_package, package_licence, package_version

__all__ = [
    "DEFAULT_DENOISE",
    "DEFAULT_SCALE",
    "ModelChoice",
    "ModelSource",
    "build",
    "choose_model",
    "load_model",
    "model_scale",
    "resolve",
]

log = logging.getLogger(__name__)

#: scale used when neither the caller nor a weights file / bundled name fixes one
DEFAULT_SCALE = 4

#: denoise strength of a blended family (``--model realworld``) when none is given
DEFAULT_DENOISE = 0.75

#: architectures whose authors' released checkpoints :mod:`sruscale.weights._authors` reads
_AUTHORS_LAYOUTS = ("edsr", "edsr-baseline", "rcan")


@dataclass(frozen=True)
class ModelChoice:
    """Which bundled model serves a requested factor, and what happens after it."""

    name: str
    scale: int
    factor: float  # the requested final factor

    @property
    def exact(self) -> bool:
        return self.factor == self.scale

    def describe(self) -> str:
        """One line for the user when the model's scale is not the requested factor ("" when it is)."""
        if self.exact:
            return ""
        how = "downscale" if self.scale > self.factor else "enlargement"
        return (
            f"no bundled x{self.factor:g} model: using {self.name} (x{self.scale}), then a MATLAB bicubic "
            f"(antialiased) {how} to x{self.factor:g}"
        )


def choose_model(
    factor: float, *, name: str | None = None, bundled: Sequence[tuple[str, int]] | None = None
) -> ModelChoice:
    """The one rule for which bundled model serves a final size ``factor`` when no file is given.

    The exact scale, else the nearest scale above (followed by a MATLAB bicubic, antialiased
    downscale), else the largest scale (followed by a bicubic enlargement): the same for the
    default (``name`` None), ``best`` and an architecture's bundled weights, in ``upscale``,
    ``evaluate``, ``export`` and :func:`load_model`. Never falls back to bicubic interpolation
    by itself; :func:`load_model`, which returns a network of exactly the requested scale,
    uses bicubic when the choice is not exact.

    Args:
        factor: requested output/input size factor (> 0).
        name: None or ``"best"`` (all bundled models, the ``best`` pick first at each scale),
            or an architecture (its bundled weights, highest Set5 PSNR first).
        bundled: ``(name, scale)`` candidates, best first, instead of the manifest's.

    Raises:
        ConfigError: ``factor`` is not a positive number.
        UnknownModelError: nothing is bundled (for ``name``).

    Example:
        >>> choose_model(3, bundled=[("fsrcnn-x2", 2), ("fsrcnn-x4", 4)])
        ModelChoice(name='fsrcnn-x4', scale=4, factor=3)
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ConfigError(f"expected a positive size factor, got {factor}")
    if bundled is None:
        bundled = bundled_models(None if name in (None, "best") else name)
    if not bundled:
        what = f" for {name!r}" if name not in (None, "best") else ""
        raise UnknownModelError(
            f"no bundled model{what}; pass --model bicubic for plain bicubic interpolation, "
            "or --weights FILE for your own model"
        )
    above = [(scale, i, n) for i, (n, scale) in enumerate(bundled) if scale >= factor - 1e-9]
    if above:
        scale, _, chosen = min(above)
    else:
        top = max(s for _, s in bundled)
        chosen, scale = next((n, s) for n, s in bundled if s == top)
    return ModelChoice(chosen, scale, factor)


@dataclass(frozen=True)
class ModelSource:
    """A resolved request: what to build and from which file (nothing read yet)."""

    #: architecture, or None when only the file can tell (a self-describing weights file)
    arch: str | None
    #: scale, or None when only the file can tell
    scale: int | None
    #: the weights file; None for ``bicubic`` or an untrained architecture
    path: Path | None = None
    #: the manifest entry when the file is bundled (it is sha256-verified before reading)
    entry: WeightsEntry | None = None
    #: ``(other, t)``: the weights become ``(1 - t) * this file + t * other`` (same architecture)
    mix: tuple[WeightsEntry, float] | None = None


def resolve(
    name: str | None = None,
    *,
    scale: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    untrained: bool = False,
    denoise: float | None = None,
) -> ModelSource:
    """Step 1: the request -> a :class:`ModelSource` (names and the manifest only).

    Raises:
        UnknownModelError: unknown name, or an architecture without bundled weights at
            ``scale`` (the message says to pass ``--weights``).
        ConfigError: a scale the architecture or the bundled file does not have; ``denoise``
            outside ``[0, 1]`` or for a model that has no denoise control.
    """
    family = [] if weights is not None or name is None else family_entries(name, scale or DEFAULT_SCALE)
    if family:
        return _resolve_family(name or "", family, denoise)
    if denoise is not None:
        raise ConfigError(
            f"--denoise applies to a model family with a denoise control (realworld), not to {name or weights}"
        )
    if weights is not None:
        return _resolve_file(name, scale, Path(weights))
    if name is None:
        name = _default_name(scale or DEFAULT_SCALE)
    if name in REGISTRY and (untrained or name == Bicubic.name):
        scale = scale or _default_scale(name)
        _check_scale(name, scale)
        return ModelSource(name, scale)
    entry = entry_named(name)
    if entry is None:
        entry = resolve_alias(name, scale or DEFAULT_SCALE)
    if entry is not None:
        if scale is not None and scale != entry.scale:
            raise ConfigError(f"bundled model {entry.name!r} is x{entry.scale}, but scale {scale} was requested")
        return ModelSource(entry.arch, entry.scale, entry.file, entry)
    if name in REGISTRY:
        scale = scale or DEFAULT_SCALE
        _check_scale(name, scale)
        entry = find_weights(name, scale)  # UnknownModelError: "... pass --weights FILE"
        return ModelSource(entry.arch, entry.scale, entry.file, entry)
    raise _unknown(name)


def _resolve_family(name: str, members: list[WeightsEntry], denoise: float | None) -> ModelSource:
    """A family's file at one scale; its lowest- and highest-``denoise`` files are blended (``members``
    come sorted by ``denoise``, :func:`~sruscale.weights.family_entries`)."""
    lo, hi = members[0], members[-1]
    d_lo, d_hi = lo.number("denoise"), hi.number("denoise")
    if d_lo is None or d_hi is None or d_lo == d_hi:
        if denoise is not None:
            raise ConfigError(f"{name!r} at x{hi.scale} has no denoise control (one file: {hi.name})")
        return ModelSource(hi.arch, hi.scale, hi.file, hi)
    d = DEFAULT_DENOISE if denoise is None else float(denoise)
    if not (math.isfinite(d) and d_lo <= d <= d_hi):
        raise ConfigError(f"--denoise must be in [{d_lo:g}, {d_hi:g}], got {denoise}")
    t = (d - d_lo) / (d_hi - d_lo)
    if t in (0.0, 1.0):
        end = lo if t == 0.0 else hi
        return ModelSource(end.arch, end.scale, end.file, end)
    return ModelSource(lo.arch, lo.scale, lo.file, lo, mix=(hi, t))  # _blend checks the networks match


#: the ``arch`` of a :class:`ModelSource` that is an ncnn graph (``.param`` + ``.bin``), not a registered architecture
NCNN = "ncnn"
#: suffixes of an ncnn model's two files
_NCNN_SUFFIXES = (".param", ".bin")


def _resolve_file(name: str | None, scale: int | None, path: Path) -> ModelSource:
    if path.suffix.lower() in _NCNN_SUFFIXES:
        if name is not None:
            raise ConfigError(f"{path} is an ncnn model (its graph says what it is): drop --model {name}")
        return ModelSource(NCNN, scale, path.with_suffix(".param"))
    arch = name
    if name is not None and name not in REGISTRY:
        entry = entry_named(name)
        if entry is None:
            raise _unknown(name)
        arch, scale = entry.arch, entry.scale if scale is None else scale
    if arch is not None and scale is not None:
        _check_scale(arch, scale)
    return ModelSource(arch, scale, path)


def build(source: ModelSource, *, hparams: dict[str, Any] | None = None) -> SRModel:
    """Step 2: read, validate and load the model ``source`` names (eval mode, on the CPU).

    ``hparams`` define a bare state dict's model (default: the architecture's defaults).

    Raises:
        CheckpointError: missing, corrupt, unsafe, sha256-mismatched or non-matching file.
    """
    if source.path is None:
        if source.arch is None or source.scale is None:
            raise ConfigError("nothing to build: give a model name or a weights file")
        return get_model_class(source.arch)(scale=source.scale, **(hparams or {})).eval()
    if source.entry is not None:
        model = _load_bundled(source.entry)
        if source.mix is not None:
            other, t = source.mix
            model = _blend(model, _load_bundled(other), t, names=(source.entry.name, other.name))
        return model
    if source.arch in (None, NCNN) and _BUILT:
        built = _BUILT.pop(_file_key(source.path), None)  # model_scale just built it
        if built is not None and source.scale in (None, built.scale):
            return built
    if source.arch == NCNN:
        return _load_ncnn_file(source.path, source.scale)
    found = read_weights(source.path)
    if found.arch is None:
        authors = _authors_arch(source.arch, found.state)
        if authors is not None:
            arch, state, hp = convert_authors_state(authors, found.state, source=str(source.path))
            file_scale = hp.pop("scale")
            if source.scale is not None and source.scale != file_scale:
                raise CheckpointError(
                    f"{source.path}: expected scale x{source.scale}, the upsampler in the file is x{file_scale}"
                )
            return build_model(arch, file_scale, hp, state, source=str(source.path))
        if source.arch is None:
            from ._community import load_community

            return load_community(found.state, source=str(source.path), scale=source.scale)
    return load_model_file(source.path, arch=source.arch, scale=source.scale, **(hparams or {}))


def _load_ncnn_file(path: Path, scale: int | None, *, source: str | None = None) -> SRModel:
    model = load_ncnn(path, source=source or str(path))
    if scale is not None and model.scale != scale:
        raise CheckpointError(f"{source or path}: expected scale x{scale}, the ncnn graph is x{model.scale}")
    return model


def _load_bundled(entry: WeightsEntry) -> SRModel:
    path = verify(entry)
    if entry.arch == NCNN:
        return _load_ncnn_file(path, entry.scale, source=f"{entry.name} ({path})")
    try:
        return load_model_file(path, arch=entry.arch, scale=entry.scale)
    except CheckpointError as exc:
        raise CheckpointError(f"bundled model {entry.name!r}: {exc}") from None


@torch.no_grad()
def _blend(a: SRModel, b: SRModel, t: float, *, names: tuple[str, str]) -> SRModel:
    """``a`` with weights ``(1 - t) * a + t * b`` (network interpolation; same architecture and shapes)."""
    sa, sb = a.state_dict(), b.state_dict()
    if type(a) is not type(b) or a.hparams != b.hparams or sa.keys() != sb.keys():
        raise CheckpointError(f"cannot blend {names[0]} with {names[1]}: the networks differ")
    a.load_state_dict({k: torch.lerp(v, sb[k], t) if v.is_floating_point() else v for k, v in sa.items()})
    return a


def _authors_arch(name: str | None, state: dict[str, torch.Tensor]) -> str | None:
    """The authors' layout to convert ``state`` from: the one named, else the one its keys show; None if neither."""
    if name is None:
        return authors_arch(state)
    return name if name in _AUTHORS_LAYOUTS and is_authors_layout(state) else None


def load_model(
    name: str | None = None,
    *,
    scale: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    untrained: bool = False,
    denoise: float | None = None,
) -> SRModel:
    """Build a model ready for inference (eval mode, no gradients, on ``device``).

    The accepted requests are listed in the :mod:`sruscale.weights._resolve` docstring.

    Args:
        name: architecture, bundled weights name or alias (``best``, ``fast``).
        scale: upscaling factor; default 4, or the scale a weights file / bundled name holds.
        weights: path to a weights file.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"auto"`` or a :class:`torch.device`.
        untrained: with an architecture name, freshly initialised weights (for export tests).
        denoise: a family's denoise strength in ``[0, 1]`` (``realworld``; default :data:`DEFAULT_DENOISE`).

    Raises:
        UnknownModelError: unknown name, or an architecture without bundled weights at that
            scale and no ``weights`` file (the message says to pass ``--weights``).
        CheckpointError: missing, corrupt, unsafe, sha256-mismatched or non-matching weights file.
        ConfigError: a scale the architecture does not support.
    """
    source = resolve(name, scale=scale, weights=weights, untrained=untrained, denoise=denoise)
    model = build(source)
    model.origin = _origin(source, model, denoise)
    model.eval().requires_grad_(False)
    return model.to(resolve_device(device))


def _origin(source: ModelSource, model: SRModel, denoise: float | None) -> str:
    """One phrase saying which weights run and where they come from."""
    entry = source.entry
    if entry is None:
        return str(source.path) if source.path is not None else f"{model.name} (no weights)"
    if source.mix is not None or entry.number("denoise") is not None:
        d = DEFAULT_DENOISE if denoise is None else denoise
        return f"{entry.family} at denoise {d:g} (bundled {entry.name}" + (
            f" + {source.mix[0].name})" if source.mix is not None else ")"
        )
    if entry.source:
        version = package_version(entry.source) or "?"
        return f"{entry.name} from the registry package {entry.source} {version} ({package_licence(entry.source)})"
    return f"bundled {entry.name}"


def model_scale(
    name: str | None = None, *, scale: int | None = None, weights: str | os.PathLike[str] | None = None
) -> int:
    """The scale :func:`load_model` would give for these arguments, without loading a model.

    Reads only a weights file's metadata (a ``.pt`` is read whole, safely; a community model
    file is built, as only spandrel knows its scale, and kept for the next :func:`build` of that
    file); used to name outputs before the model is loaded.
    Malformed metadata is an error here too.
    """
    if weights is None and (name in (None, "best") or name in REGISTRY):
        return scale or DEFAULT_SCALE  # the default model, best or an architecture: the scale asked for
    source = resolve(name, scale=scale, weights=weights)
    if source.scale is not None:
        return source.scale
    if source.path is None:
        return DEFAULT_SCALE
    if source.arch == NCNN:  # only running the graph tells its scale: built once, kept for build()
        return _keep_built(source.path, _load_ncnn_file(source.path, None))
    if source.path.suffix == ".safetensors" and source.arch not in _AUTHORS_LAYOUTS:
        meta = sruscale_metadata(source.path)  # the header only
        if meta is not None:
            return int(meta["scale"])
        if source.arch is not None:
            return DEFAULT_SCALE
    found = read_weights(source.path)
    if found.scale is not None:
        return found.scale
    authors = _authors_arch(source.arch, found.state)
    if authors is not None:
        return int(convert_authors_state(authors, found.state, source=str(source.path))[2]["scale"])
    if source.arch is None:
        from ._community import load_community

        return _keep_built(source.path, load_community(found.state, source=str(source.path)))
    return DEFAULT_SCALE


def _keep_built(path: Path, model: SRModel) -> int:
    """Keep ``model`` for the :func:`build` of ``path`` that usually follows; its scale."""
    _BUILT.clear()
    _BUILT[_file_key(path)] = model
    return model.scale


#: The one community or ncnn model :func:`model_scale` built (only spandrel or running the graph knows a
#: file's scale), handed to the next :func:`build` of the same unchanged file instead of building it again.
_BUILT: dict[tuple[str, int, int], SRModel] = {}


def _file_key(path: Path) -> tuple[str, int, int]:
    """A file's identity for :data:`_BUILT`: resolved path, size and modification time."""
    try:
        st = path.stat()
    except OSError:  # gone: matches nothing built
        return str(path), -1, -1
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _default_name(scale: int) -> str:
    """The library default at ``scale``: the exact bundled model (:func:`choose_model`), else bicubic."""
    try:
        choice = choose_model(scale)
    except UnknownModelError:
        choice = None
    if choice is not None and choice.exact:
        return choice.name
    log.warning("no bundled x%d model: using bicubic interpolation", scale)
    return Bicubic.name


def _default_scale(arch: str) -> int:
    scales = get_model_class(arch).scales
    return DEFAULT_SCALE if DEFAULT_SCALE in scales else max(scales)


def _check_scale(arch: str, scale: int) -> None:
    get_model_class(arch).check_scale(scale)


def _unknown(name: str) -> UnknownModelError:
    missing = missing_package(name)  # a named pretrained network whose registry package is absent
    if missing is not None:
        return missing
    if "/" in name or os.sep in name or Path(name).suffix in (".safetensors", ".pt", ".pth", ".param", ".bin"):
        return UnknownModelError(f"{name}: weights file not found (a name with a path or a weights suffix is a file)")
    entries = list_weights()
    bundled = ", ".join(e.name for e in entries) or "none"
    families = sorted({e.family for e in entries if e.family})
    return UnknownModelError(
        f"unknown model {name!r}; choose an architecture ({', '.join(sorted(REGISTRY))}), "
        f"bundled weights ({bundled}), "
        + (f"a model family ({', '.join(families)}) " if families else "")
        + "or an alias (best, fast)"
    )
