"""Self-describing sruscale weights: safetensors + metadata (arch, scale, hparams, version);
building a registered architecture from a file, with bounds, shape and finiteness checks.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .._fs import atomic_write
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..models import REGISTRY, SRModel, get_model_class
from ._files import FORMAT_VERSION, check_finite, mismatch_report, read_weights


def save_model(model: SRModel, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as safetensors with its architecture, scale and hyperparameters.

    ``extra`` (JSON-serialisable) is stored under the ``card`` key (data, recipe, metrics).
    The file is written to a temporary name and renamed, so it is never half-written.

    Raises:
        CheckpointError: ``model`` is not a registered architecture (a community model file
            loaded through spandrel): the file could not be loaded back.
    """
    path = Path(path)
    if model.name not in REGISTRY or not isinstance(model, REGISTRY[model.name]):
        raise CheckpointError(
            f"cannot save {model.name!r} as a sruscale weights file: not a registered architecture "
            f"(expected one of {', '.join(sorted(REGISTRY))}); a community model loads from its own file"
        )
    meta = {
        "format": "sruscale",
        "format_version": FORMAT_VERSION,
        "arch": model.name,
        "scale": str(model.scale),
        "hparams": json.dumps(model.hparams, sort_keys=True),
        "sruscale_version": __version__,
    }
    if extra:
        meta["card"] = json.dumps(extra, sort_keys=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def load_state_into(model: SRModel, state: dict[str, torch.Tensor], *, source: str) -> SRModel:
    """Load ``state`` strictly; a mismatch names the missing/unexpected keys and shapes."""
    _check_fit(model, state, source=source)
    model.load_state_dict(state)
    return model


# --------------------------------------------------------------------------- validated construction

#: inclusive bounds for integer hyperparameters (also inside tuples), by name; others get _INT_DEFAULT.
#: Generous for every registered architecture, small enough that nothing absurd gets built.
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 3),
    "kernel_sizes": (1, 31),
    "features": (1, 2048), "base_features": (1, 2048), "channels": (1, 2048), "growth": (1, 2048),
    "d": (1, 2048), "s": (1, 2048),
    "blocks": (0, 1024), "depth": (1, 1024), "m": (0, 1024), "groups": (1, 256), "stages": (1, 64),
    "level_config": (0, 256), "reduction": (1, 2048), "bottleneck": (1, 64), "expand": (1, 64),
}
_INT_DEFAULT = (0, 4096)
_FLOAT_LIMIT = 1e6


def check_hparams(arch: str, hparams: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Check ``hparams`` against ``arch``'s keyword signature, types and sane bounds.

    Returns the hyperparameters with JSON lists turned into the tuples the signatures declare.

    Raises:
        CheckpointError: unknown name, wrong type, non-finite or out-of-bounds value.
    """
    cls = get_model_class(arch)
    params = inspect.signature(cls.__init__).parameters
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        if key not in params or key in ("self", "scale"):
            raise CheckpointError(f"{source}: {arch} has no hyperparameter {key!r} (expected one of "
                                  f"{', '.join(k for k in params if k not in ('self', 'scale'))})")
        default = params[key].default
        value = _tuples(value)
        _check_value(value, default, f"{source}: hparams.{key}", _INT_BOUNDS.get(key, _INT_DEFAULT))
        out[key] = value
    return out


def _check_value(value: Any, default: Any, what: str, bounds: tuple[int, int]) -> None:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise CheckpointError(f"{what}: expected true/false, got {value!r}")
    elif isinstance(default, tuple):
        if not isinstance(value, tuple) or len(value) > 64:
            raise CheckpointError(f"{what}: expected a list of at most 64 values, got {value!r:.60}")
        inner = default[0] if default else 0
        for v in value:
            _check_value(v, inner, what, bounds)
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(f"{what}: expected an integer, got {value!r:.60}")
        lo, hi = bounds
        if not lo <= value <= hi:
            raise CheckpointError(f"{what} = {value} is out of range (expected {lo}..{hi})")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CheckpointError(f"{what}: expected a number, got {value!r:.60}")
        if not (math.isfinite(value) and abs(value) <= _FLOAT_LIMIT):
            raise CheckpointError(f"{what} = {value} is not a finite number of magnitude <= {_FLOAT_LIMIT:g}")


def build_model(
    arch: str, scale: int, hparams: dict[str, Any], state: dict[str, torch.Tensor], *, source: str
) -> SRModel:
    """Build ``arch`` for ``state`` without allocating more than ``state`` needs (eval mode).

    Order: hyperparameters against bounds (:func:`check_hparams`); the architecture built on
    the ``meta`` device (no memory); its state-dict keys and shapes compared with ``state``;
    non-finite weights refused; only then the model is materialised and loaded.

    Raises:
        CheckpointError: any of the checks fails (one line, naming ``source``).
        UnknownModelError: ``arch`` is not registered.
    """
    cls = get_model_class(arch)
    try:
        cls.check_scale(scale)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc} (the file's scale)") from None
    hp = check_hparams(arch, hparams, source=source)
    try:
        with torch.device("meta"):
            skeleton = cls(scale=scale, **hp)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: hyperparameters do not fit {arch!r}: {exc}") from None
    _check_fit(skeleton, state, source=source)
    check_finite(state, source=source)
    model = cls(scale=scale, **hp)
    model.load_state_dict(state)
    return model.eval()


def _check_fit(model: SRModel, state: dict[str, torch.Tensor], *, source: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    report = mismatch_report(missing, unexpected, shapes)
    if report:
        raise CheckpointError(f"{source}: weights do not fit {model.name} x{model.scale}: {report}")


def load_model_file(
    path: str | os.PathLike[str], *, arch: str | None = None, scale: int | None = None, **hparams: Any
) -> SRModel:
    """Build the model a weights file describes and load its weights (eval mode).

    Args:
        path: a sruscale ``.safetensors`` (:func:`save_model`), a training checkpoint, or a
            bare state dict (safetensors or ``.pt``/``.pth``) when ``arch`` and ``scale`` are given.
        arch, scale, hparams: expected architecture; for a self-describing file they must
            agree with it, for a bare state dict they define the model.

    Raises:
        CheckpointError: missing, corrupt, unsafe or mismatched file (the message names it).
    """
    path = Path(path)
    found = read_weights(path)
    if found.arch is not None:
        if arch is not None and arch != found.arch:
            raise CheckpointError(f"{path}: expected architecture {arch!r}, file holds {found.arch!r}")
        if scale is not None and scale != found.scale:
            raise CheckpointError(f"{path}: expected scale x{scale}, file holds x{found.scale}")
        arch, scale = found.arch, found.scale
        hparams = {**found.hparams, **hparams}
        hparams.pop("scale", None)
    if arch is None or scale is None:
        raise CheckpointError(f"{path}: a bare state dict needs an architecture and a scale (--model ARCH --scale S)")
    return build_model(arch, scale, hparams, found.state, source=str(path))


def _tuples(value: Any) -> Any:
    """JSON/TOML turn tuples into lists; hyperparameters are declared as (nested) tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value
