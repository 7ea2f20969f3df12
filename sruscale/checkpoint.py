"""Self-describing weights files: safetensors + metadata (arch, scale, hparams, version).

Loading never unpickles arbitrary objects: ``.safetensors`` is read with safetensors,
``.pt``/``.pth`` only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._fs import atomic_write
from ._version import __version__
from .errors import CheckpointError
from .models import REGISTRY, SRModel, get_model_class

__all__ = [
    "WeightsFile",
    "build_model",
    "check_finite",
    "check_hparams",
    "load_model_file",
    "load_state_into",
    "mismatch_report",
    "read_metadata",
    "read_state_dict",
    "read_weights",
    "save_model",
    "sruscale_metadata",
    "torch_load_safely",
]

FORMAT_VERSION = "1"
#: ``format`` key of a training checkpoint (``iter_*.pt``), see :mod:`sruscale.training.checkpoints`
TRAINING_CHECKPOINT_FORMAT = "sruscale-train"

#: keys a state dict is found under in a ``.pt``/``.pth`` (first match wins): BasicSR's, the common
#: ``state_dict``/``model``, then the other wrappers spandrel's ``canonicalize_state_dict`` unwraps
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "model_state_dict", "params-ema", "net")


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


def sruscale_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The decoded metadata of a sruscale safetensors file, or None when it carries none.

    Returns a dict with ``arch`` (str), ``scale`` (int), ``hparams`` and ``card`` (dicts) plus
    the raw string fields.

    Raises:
        CheckpointError: missing or unreadable file, or sruscale metadata that does not decode
            (``hparams``/``card`` not JSON objects, ``scale`` not an integer).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if meta.get("format") != "sruscale" or "arch" not in meta:
        return None
    out: dict[str, Any] = dict(meta)
    try:
        out["scale"] = int(meta["scale"])
    except (KeyError, ValueError):
        raise CheckpointError(
            f"{path}: malformed metadata: scale must be an integer, got {meta.get('scale')!r}"
        ) from None
    for key in ("hparams", "card"):
        try:
            value = json.loads(meta.get(key, "{}"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: malformed metadata: {key} is not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise CheckpointError(f"{path}: malformed metadata: {key} must be a JSON object, got {kind}")
        out[key] = value
    return out


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Like :func:`sruscale_metadata`, but a file without sruscale metadata is an error too."""
    meta = sruscale_metadata(path)
    if meta is None:
        raise CheckpointError(
            f"{path}: safetensors file has no sruscale metadata (expected keys arch, scale, hparams); "
            "pass --model ARCH to load a bare state dict"
        )
    return meta


def torch_load_safely(path: str | os.PathLike[str], *, mmap: bool = False) -> object:
    """``torch.load(weights_only=True)`` on the CPU; a refused or broken file is a one-line error.

    ``mmap`` maps the tensors instead of reading them (a cheap check that the file loads).

    torch's own message for a refused file advises re-running with ``weights_only=False``
    (arbitrary code execution); that advice is never passed on, only the refused global.

    Raises:
        CheckpointError: unreadable file, or one that needs arbitrary unpickling.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global:)\s*(?:GLOBAL\s*)?([\w.]+)", str(exc))
        what = f" (it references {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors{what}; "
            "sruscale loads only plain weights (safetensors or a tensor-only .pt)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure to read it is a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: {first})") from None


@dataclass(frozen=True)
class WeightsFile:
    """What a weights file holds: its state dict and, when the file says, what it belongs to."""

    state: dict[str, torch.Tensor]
    #: architecture, scale and hyperparameters from the file (None for a bare state dict)
    arch: str | None = None
    scale: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    #: "sruscale" (metadata), "training" (an ``iter_*.pt`` checkpoint, EMA weights when kept), "bare"
    kind: str = "bare"


def read_weights(path: str | os.PathLike[str]) -> WeightsFile:
    """Read a weights file safely, with the description it carries.

    * ``.safetensors``: the tensors, plus arch/scale/hparams when sruscale wrote it;
    * a training checkpoint (``iter_*.pt``): its EMA weights (else the raw model) and the
      recipe's model section;
    * any other ``.pt``/``.pth`` (``torch.load(weights_only=True)``): a state dict, unwrapped
      from ``params_ema``/``params`` (BasicSR), ``state_dict``, ``model``, ``model_state_dict``,
      ``params-ema`` or ``net``, or from the only entry of a one-entry dict (the wrappers
      community model files use); a ``module.`` prefix (DataParallel) is removed.

    Raises:
        CheckpointError: missing, unreadable or refused file, or not names -> tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        meta = sruscale_metadata(path)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
        if meta is None:
            return WeightsFile(_as_state_dict(state, path))
        return WeightsFile(_as_state_dict(state, path), meta["arch"], meta["scale"], meta["hparams"], "sruscale")
    obj = torch_load_safely(path)
    if isinstance(obj, dict) and obj.get("format") == TRAINING_CHECKPOINT_FORMAT:
        model = obj.get("config", {}).get("model", {}) if isinstance(obj.get("config"), dict) else {}
        weights = obj.get("ema") if obj.get("ema") is not None else obj.get("model")
        try:
            arch, scale, hparams = str(model["name"]), int(model["scale"]), dict(model.get("hparams") or {})
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: training checkpoint without a readable model section") from None
        return WeightsFile(_as_state_dict(weights, path), arch, scale, hparams, "training")
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    else:
        if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
            obj = next(iter(obj.values()))
    return WeightsFile(_as_state_dict(obj, path))


def _as_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict (names -> tensors)")
    state = {str(k): v for k, v in obj.items()}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of any weights file :func:`read_weights` accepts."""
    return read_weights(path).state


def mismatch_report(missing: list[str], unexpected: list[str], shapes: list[str]) -> str | None:
    """One line naming missing/unexpected keys and shape mismatches (first few each); None if all fit."""
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if shapes:
        parts.append("shape mismatch " + "; ".join(shapes[:3]))
    return ", ".join(parts) or None


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
    if scale not in cls.scales:
        raise CheckpointError(f"{source}: {arch} supports scales {', '.join(map(str, cls.scales))}, file is x{scale}")
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


def check_finite(state: dict[str, torch.Tensor], *, source: str) -> None:
    """Refuse weights with NaN or Inf (a damaged file; its outputs would be NaN).

    Raises:
        CheckpointError: naming the first non-finite tensor.
    """
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: weights hold NaN or Inf values (first in {key!r}); the file is damaged")


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
