"""Load the authors' released checkpoints: EDSR (EDSR-PyTorch layout) and RCAN (RCAN layout).

Both codebases save a plain ``state_dict`` (``.pt``) on a ``[0, 255]`` value range with the
RGB mean held in two 1x1 convolutions (``sub_mean`` / ``add_mean``). Loading reads the file
with ``torch.load(weights_only=True)`` (or safetensors), strips ``module.`` / ``model.``
prefixes, infers the hyperparameters from the tensor shapes, takes ``rgb_mean`` from
``add_mean.bias``, renames the keys to our modules and loads strictly: anything left over
or missing raises :class:`~sruscale.errors.CheckpointError` listing the keys.

Key mapping (authors -> sruscale):

==========================================  ==========================================
``head.0.*``                                ``head.*``
``body.{i}.body.{0,2}.*`` (EDSR)            ``body.{i}.conv{1,2}.*``
``body.{g}.body.{b}.body.{0,2}.*`` (RCAN)   ``body.{g}.blocks.{b}.conv{1,2}.*``
``body.{g}.body.{b}.body.3.conv_du.{0,2}``  ``body.{g}.blocks.{b}.attention.{down,up}``
``body.{g}.body.{n_blocks}.*`` (RCAN)       ``body.{g}.conv.*``
``body.{n}.*`` (last body conv)             ``body.{n}.*``
``tail.0.{j}.*`` (upsampler)                ``upsample.{j}.*``
``tail.1.*``                                ``tail.*``
``sub_mean.*``, ``add_mean.*``              checked, become the ``rgb_mean`` hyperparameter
==========================================  ==========================================
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from ..errors import CheckpointError
from ..models import SRModel
from ..models.edsr import EDSR
from ..models.rcan import RCAN
from ._checkpoint import build_model
from ._files import read_state_dict

__all__ = [
    "authors_arch",
    "convert_authors_state",
    "convert_edsr_state",
    "convert_rcan_state",
    "load_edsr_checkpoint",
    "load_rcan_checkpoint",
]

_PREFIXES = ("module.", "model.")


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p) :]
        out[k] = v
    return out


def _mean_and_range(state: dict[str, torch.Tensor], source: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Pop ``sub_mean``/``add_mean``; return ``rgb_mean``/``rgb_range`` hparams (std must be 1)."""
    keys = ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias")
    if not all(k in state for k in keys):
        return {}, state  # sruscale-style state or a stripped export: keep defaults
    state = dict(state)
    sub_w, sub_b, add_w, add_b = (state.pop(k).double() for k in keys)
    c = add_b.numel()
    eye = torch.eye(c, dtype=torch.float64).view(c, c, 1, 1)
    if not (torch.allclose(sub_w, eye) and torch.allclose(add_w, eye) and torch.allclose(sub_b, -add_b)):
        raise CheckpointError(
            f"{source}: sub_mean/add_mean are not a plain mean shift with std 1 "
            "(expected identity 1x1 weights and opposite biases); this variant is not supported"
        )
    rgb_range = 255.0 if add_b.abs().max() > 1.5 else 1.0
    mean = tuple(float(v) for v in add_b / rgb_range)
    if c == 1:  # our hparam holds three values; only the first is used for one channel
        mean = (mean[0], mean[0], mean[0])
    return {"rgb_range": rgb_range, "rgb_mean": mean}, state


def _upsampler(state: dict[str, torch.Tensor], features: int, source: str) -> int:
    """Infer the scale from the ``tail.0.{j}.weight`` convolutions."""
    convs = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"tail\.0\.(\d+)\.weight", k)))
    if not convs:
        raise CheckpointError(f"{source}: no upsampler found (expected keys tail.0.0.weight ...)")
    out = state[f"tail.0.{convs[0]}.weight"].shape[0]
    if out == 9 * features and len(convs) == 1:
        return 3
    if out == 4 * features:
        return 2 ** len(convs)
    raise CheckpointError(f"{source}: upsampler conv has {out} output channels, expected 4x or 9x {features}")


def _rename(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Apply the first matching ``(pattern, replacement)``; unmatched keys pass through (reported later)."""
    out = {}
    for k, v in state.items():
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, k)
            if n:
                k = new
                break
        out[k] = v
    return out


def _common_rules() -> list[tuple[str, str]]:
    return [
        (r"^head\.0\.", "head."),
        (r"^tail\.0\.(\d+)\.", r"upsample.\1."),
        (r"^tail\.1\.", "tail."),
    ]


def convert_edsr_state(
    state: dict[str, torch.Tensor], *, source: str = "state dict"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """EDSR-PyTorch state dict -> (our state dict, inferred hyperparameters incl. ``scale``).

    ``res_scale`` is not stored in the weights; it is set to the paper's 0.1 for the
    32 x 256 model and 1 otherwise (override it when loading if you trained differently).
    """
    state = _strip(state)
    if "head.0.weight" not in state:
        raise CheckpointError(f"{source}: not an EDSR-PyTorch state dict (no head.0.weight)")
    hp, state = _mean_and_range(state, source)
    features, in_channels = state["head.0.weight"].shape[:2]
    blocks = len({m.group(1) for k in state if (m := re.fullmatch(r"body\.(\d+)\.body\.0\.weight", k))})
    hp.update(
        scale=_upsampler(state, features, source),
        in_channels=int(in_channels),
        blocks=blocks,
        features=int(features),
        res_scale=0.1 if (blocks, features) == (32, 256) else 1.0,
    )
    rules = [
        (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
        (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
        *_common_rules(),
    ]
    return _rename(state, rules), hp


def convert_rcan_state(
    state: dict[str, torch.Tensor], *, source: str = "state dict"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """RCAN (yulunzhang/RCAN) state dict -> (our state dict, inferred hyperparameters incl. ``scale``)."""
    state = _strip(state)
    if "head.0.weight" not in state:
        raise CheckpointError(f"{source}: not an RCAN state dict (no head.0.weight)")
    hp, state = _mean_and_range(state, source)
    features, in_channels = state["head.0.weight"].shape[:2]
    rcab = [re.fullmatch(r"body\.(\d+)\.body\.(\d+)\.body\.0\.weight", k) for k in state]
    groups = len({m.group(1) for m in rcab if m})
    blocks = len({m.group(2) for m in rcab if m and m.group(1) == "0"})
    if not groups or "body.0.body.0.body.3.conv_du.0.weight" not in state:
        raise CheckpointError(f"{source}: not an RCAN state dict (no body.0.body.0.body.3.conv_du.0.weight)")
    reduction = int(features) // state["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
    hp.update(
        scale=_upsampler(state, features, source),
        in_channels=int(in_channels),
        groups=groups,
        blocks=blocks,
        features=int(features),
        reduction=reduction,
    )
    rules = [
        (r"^body\.(\d+)\.body\.(\d+)\.body\.0\.", r"body.\1.blocks.\2.conv1."),
        (r"^body\.(\d+)\.body\.(\d+)\.body\.2\.", r"body.\1.blocks.\2.conv2."),
        (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.", r"body.\1.blocks.\2.attention.down."),
        (r"^body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.", r"body.\1.blocks.\2.attention.up."),
        (rf"^body\.(\d+)\.body\.{blocks}\.", r"body.\1.conv."),
        *_common_rules(),
    ]
    return _rename(state, rules), hp


def is_authors_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for an EDSR-PyTorch / RCAN state dict (``head.0.weight``; ours is ``head.weight``)."""
    return "head.0.weight" in _strip(state)


def authors_arch(state: dict[str, torch.Tensor]) -> str | None:
    """``"rcan"`` or ``"edsr"`` for an authors' layout, told apart by the keys; None for any other layout.

    RCAN's residual blocks carry channel attention (``body.{g}.body.{b}.body.3.conv_du.*``),
    EDSR's are plain (``body.{i}.body.{0,2}.*``); both start with ``head.0.weight``.
    :func:`convert_authors_state` picks ``edsr-baseline`` by the shapes.
    """
    state = _strip(state)
    if "head.0.weight" not in state:
        return None
    if any(re.fullmatch(r"body\.\d+\.body\.\d+\.body\.3\.conv_du\.0\.weight", k) for k in state):
        return "rcan"
    if any(re.fullmatch(r"body\.\d+\.body\.0\.weight", k) for k in state):
        return "edsr"
    return None


def convert_authors_state(
    arch: str, state: dict[str, torch.Tensor], *, source: str = "state dict"
) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """An authors' EDSR/RCAN state dict -> ``(arch, our state dict, hyperparameters incl. scale)``.

    ``arch`` is ``"edsr"``, ``"edsr-baseline"`` or ``"rcan"``; an EDSR file with the baseline's
    shape (16 blocks x 64 features) becomes ``edsr-baseline``.

    Raises:
        CheckpointError: ``arch`` has no authors' layout, or the state does not match it.
    """
    if arch in ("edsr", "edsr-baseline"):
        state, hp = convert_edsr_state(state, source=source)
        return ("edsr-baseline" if (hp["blocks"], hp["features"]) == (16, 64) else "edsr"), state, hp
    if arch == "rcan":
        state, hp = convert_rcan_state(state, source=source)
        return arch, state, hp
    raise CheckpointError(f"{source}: no converter for the authors' layout of {arch!r} (edsr, edsr-baseline, rcan)")


def _load_converted(
    arch: str, path: str | os.PathLike[str], scale: int | None, overrides: dict[str, Any]
) -> SRModel:
    source = str(path)
    arch, state, hp = convert_authors_state(arch, read_state_dict(path), source=source)
    if scale is not None and scale != hp["scale"]:
        raise CheckpointError(f"{source}: expected scale x{scale}, the upsampler in the file is x{hp['scale']}")
    hp = {**hp, **{k: v for k, v in overrides.items() if v is not None}}
    if arch == "edsr-baseline" and hp["res_scale"] != 1.0:
        arch = "edsr"  # the baseline class fixes res_scale = 1
    return build_model(arch, hp.pop("scale"), hp, state, source=source)


def load_edsr_checkpoint(
    path: str | os.PathLike[str], *, scale: int | None = None, res_scale: float | None = None
) -> EDSR:
    """Build an :class:`EDSR` from an EDSR-PyTorch checkpoint (e.g. ``edsr_baseline_x2-1bc95232.pt``).

    Args:
        path: ``.pt``/``.pth`` (read with ``weights_only=True``) or ``.safetensors``.
        scale: expected scale (checked against the upsampler), or None to infer it.
        res_scale: residual scaling, if the run did not use the paper's value.

    Raises:
        CheckpointError: unreadable file, unknown layout, or keys/shapes that do not fit.
    """
    model = _load_converted("edsr", path, scale, {"res_scale": res_scale})
    if not isinstance(model, EDSR):
        raise CheckpointError(f"{path}: expected an EDSR model, built {type(model).__name__}")
    return model


def load_rcan_checkpoint(path: str | os.PathLike[str], *, scale: int | None = None) -> RCAN:
    """Build an :class:`RCAN` from an RCAN checkpoint (e.g. ``RCAN_BIX4.pt``); see :func:`load_edsr_checkpoint`."""
    model = _load_converted("rcan", path, scale, {})
    if not isinstance(model, RCAN):
        raise CheckpointError(f"{path}: expected an RCAN model, built {type(model).__name__}")
    return model
