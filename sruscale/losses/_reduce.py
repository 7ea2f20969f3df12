"""Input checks of every loss; the reduction helper is :mod:`sruscale._reduction`."""

from __future__ import annotations

import torch

from .._reduction import Reduction, check_reduction, reduce

__all__ = ["Reduction", "check_image", "check_pair", "check_reduction", "reduce"]


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
