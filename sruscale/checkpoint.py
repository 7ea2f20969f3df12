"""Self-describing weights files: safetensors + metadata (arch, scale, hparams, version).

Loading never unpickles arbitrary objects: ``.safetensors`` is read with safetensors,
``.pt``/``.pth`` only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._fs import atomic_write
from .errors import CheckpointError
from .models import SRModel, create_model

__all__ = ["mismatch_report", "read_state_dict", "load_model_file", "read_metadata", "save_model"]

FORMAT_VERSION = "1"


def _version() -> str:
    from . import __version__

    return __version__


def save_model(model: SRModel, path: str | os.PathLike[str], *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as safetensors with its architecture, scale and hyperparameters.

    ``extra`` (JSON-serialisable) is stored under the ``card`` key (data, recipe, metrics).
    The file is written to a temporary name and renamed, so it is never half-written.
    """
    path = Path(path)
    meta = {
        "format": "sruscale",
        "format_version": FORMAT_VERSION,
        "arch": model.name,
        "scale": str(model.scale),
        "hparams": json.dumps(model.hparams, sort_keys=True),
        "sruscale_version": _version(),
    }
    if extra:
        meta["card"] = json.dumps(extra, sort_keys=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a sruscale safetensors file, with ``hparams``/``card`` decoded."""
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
        raise CheckpointError(
            f"{path}: safetensors file has no sruscale metadata (expected keys arch, scale, hparams); "
            "pass --model ARCH to load a bare state dict"
        )
    out: dict[str, Any] = dict(meta)
    out["scale"] = int(meta["scale"])
    out["hparams"] = json.loads(meta.get("hparams", "{}"))
    out["card"] = json.loads(meta["card"]) if "card" in meta else {}
    return out


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict safely: ``.safetensors``, or ``torch.load(weights_only=True)`` otherwise.

    A dict wrapping the weights under ``params_ema``/``params`` (BasicSR), ``state_dict`` or
    ``model`` is unwrapped, and a ``module.`` prefix (DataParallel) is removed.

    Raises:
        CheckpointError: unreadable file, or not a mapping of names to tensors.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            obj: object = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise CheckpointError(f"{path}: cannot be loaded safely ({type(exc).__name__}: {exc})") from None
    for key in ("params_ema", "params", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a state dict (names -> tensors)")
    if all(str(k).startswith("module.") for k in obj):
        obj = {str(k).removeprefix("module."): v for k, v in obj.items()}
    return obj


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
    model.load_state_dict(state)
    return model


def load_model_file(
    path: str | os.PathLike[str], *, arch: str | None = None, scale: int | None = None, **hparams: Any
) -> SRModel:
    """Build the model a weights file describes and load its weights (eval mode).

    Args:
        path: ``.safetensors`` written by :func:`save_model`, or a bare state dict
            (safetensors or ``.pt``/``.pth``) when ``arch`` and ``scale`` are given.
        arch, scale, hparams: expected architecture; for a sruscale file they must agree
            with the metadata, for a bare state dict they define the model.

    Raises:
        CheckpointError: missing, corrupt or mismatched file (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    meta: dict[str, Any] | None = None
    if path.suffix == ".safetensors":
        try:
            meta = read_metadata(path)
        except CheckpointError:
            if arch is None:
                raise
    if meta is not None:
        if arch is not None and arch != meta["arch"]:
            raise CheckpointError(f"{path}: expected architecture {arch!r}, file holds {meta['arch']!r}")
        if scale is not None and scale != meta["scale"]:
            raise CheckpointError(f"{path}: expected scale x{scale}, file holds x{meta['scale']}")
        arch, scale = meta["arch"], meta["scale"]
        hparams = {**meta["hparams"], **hparams}
        hparams.pop("scale", None)
    if arch is None or scale is None:
        raise CheckpointError(f"{path}: a bare state dict needs an architecture and a scale")
    try:
        model = create_model(arch, scale=scale, **_tuples(hparams))
    except TypeError as exc:
        raise CheckpointError(f"{path}: hyperparameters do not fit {arch!r}: {exc}") from None
    load_state_into(model, read_state_dict(path), source=str(path))
    return model.eval()


def _tuples(hparams: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; hyperparameters are declared as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
