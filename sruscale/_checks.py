"""The one input check of metrics, losses and degradations: floating-point ``(B, C, H, W)`` tensors."""

from __future__ import annotations

import torch

from .errors import ImageError

__all__ = ["check_image", "check_pair"]


def check_image(x: object, name: str = "input") -> torch.Tensor:
    """``x`` itself when it is a floating-point ``(B, C, H, W)`` tensor.

    Raises:
        TypeError: ``x`` is not a tensor.
        ImageError: wrong number of dimensions or an integer dtype (expected vs got in the message).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ImageError(f"{name}: expected 4 dims (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    return x


def check_pair(pred: object, target: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two floating-point ``(B, C, H, W)`` tensors of the same shape (:func:`check_image` each).

    Raises:
        TypeError, ImageError: as :func:`check_image`, or the shapes differ.
    """
    p, t = check_image(pred, "pred"), check_image(target, "target")
    if p.shape != t.shape:
        got = f"target is {tuple(t.shape)}, pred is {tuple(p.shape)}"
        raise ImageError(f"pred and target must have the same shape: {got}")
    return p, t
