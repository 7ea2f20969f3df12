"""Reading weights files safely: safetensors with sruscale metadata, ``.pt``/``.pth`` only through
``torch.load(weights_only=True)``. Imports no architecture (the metrics and losses read their
backbones' state dicts through here without loading the model zoo).
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "TRAINING_CHECKPOINT_FORMAT",
    "WeightsFile",
    "check_finite",
    "mismatch_report",
    "read_metadata",
    "read_state_dict",
    "read_weights",
    "sruscale_metadata",
    "torch_load_safely",
]

FORMAT_VERSION = "1"
#: ``format`` key of a training checkpoint (``iter_*.pt``), see :mod:`sruscale.training.checkpoints`
TRAINING_CHECKPOINT_FORMAT = "sruscale-train"

#: keys a state dict is found under in a ``.pt``/``.pth`` (first match wins): BasicSR's, the common
#: ``state_dict``/``model``, then the other wrappers spandrel's ``canonicalize_state_dict`` unwraps
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "model_state_dict", "params-ema", "net")
#: ``hparams``/``card`` nested deeper than this are refused (real ones are 1-3 levels deep)
MAX_METADATA_DEPTH = 32


def _json_depth(value: object) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), computed without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in (node.values() if isinstance(node, dict) else node))
    return depth


def sruscale_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The decoded metadata of a sruscale safetensors file, or None when it carries none.

    Returns a dict with ``arch`` (str), ``scale`` (int), ``hparams`` and ``card`` (dicts) plus
    the raw string fields.

    Raises:
        CheckpointError: missing or unreadable file, or sruscale metadata that does not decode
            (``hparams``/``card`` not JSON objects or nested deeper than :data:`MAX_METADATA_DEPTH`,
            ``scale`` not an integer).
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
        except RecursionError:
            raise CheckpointError(
                f"{path}: malformed metadata: {key} is nested too deeply to decode "
                f"(at most {MAX_METADATA_DEPTH} levels)"
            ) from None
        if (depth := _json_depth(value)) > MAX_METADATA_DEPTH:
            raise CheckpointError(
                f"{path}: malformed metadata: {key} is nested {depth} levels deep (at most {MAX_METADATA_DEPTH})"
            )
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


def check_finite(state: dict[str, torch.Tensor], *, source: str) -> None:
    """Refuse weights with NaN or Inf (a damaged file; its outputs would be NaN).

    Raises:
        CheckpointError: naming the first non-finite tensor.
    """
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: weights hold NaN or Inf values (first in {key!r}); the file is damaged")
