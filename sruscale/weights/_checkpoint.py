"""Self-describing sruscale weights: safetensors + metadata (arch, scale, hparams, version);
building a registered architecture from a file, with bounds, shape and finiteness checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .._fs import atomic_write
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..models import REGISTRY, SRModel, get_model_class
from ..models._hparams import check_hparams as check_model_hparams
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

def check_hparams(arch: str, hparams: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Check a file's ``hparams`` metadata with the bounds that recipes use too
    (:func:`sruscale.models._hparams.check_hparams`); lists become the declared tuples.

    Raises:
        CheckpointError: unknown name, wrong type, non-finite or out-of-bounds value (naming ``source``).
    """
    try:
        return check_model_hparams(arch, hparams, path="hparams")
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from None


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

