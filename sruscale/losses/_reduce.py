"""The one reduction helper and the shared input checks of every loss."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["Reduction", "check_image", "check_pair", "check_reduction", "reduce"]

Reduction = Literal["none", "mean", "sum"]
_REDUCTIONS = ("none", "mean", "sum")


def reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce a tensor of per-element (or per-sample) losses.

    Args:
        x: losses of any shape.
        reduction: ``"none"`` returns ``x`` unchanged, ``"mean"`` its mean, ``"sum"`` its sum.

    Raises:
        ValueError: ``reduction`` is not one of ``"none"``, ``"mean"``, ``"sum"``.
    """
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` early (before any computation) for an unknown reduction."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


def check_image(x: torch.Tensor, name: str = "input") -> None:
    """Require a floating-point ``(B, C, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected 4 dims (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")


def check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Require two floating-point ``(B, C, H, W)`` tensors of the same shape."""
    check_image(pred, "pred")
    check_image(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape: target is {tuple(target.shape)}, pred is {tuple(pred.shape)}"
        )
