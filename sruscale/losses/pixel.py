"""Pixel losses: L1, L2 (MSE), smooth L1, Huber, Charbonnier.

Every function takes ``pred`` and ``target`` of the same shape ``(B, C, H, W)`` (values
usually in ``[0, 1]``) and returns, for ``reduction="none"``, the per-element loss of that
shape, for ``"mean"``/``"sum"`` a scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..color import rgb_to_y
from ._reduce import Reduction, check_pair, check_reduction, reduce

__all__ = [
    "CharbonnierLoss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "SmoothL1Loss",
    "YChannelLoss",
    "charbonnier_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "smooth_l1_loss",
]


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def l1_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean absolute error ``|pred - target|``.

    Args:
        pred, target: ``(B, C, H, W)`` tensors of the same shape.
        reduction: ``"none"`` (shape ``(B, C, H, W)``), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: shapes differ, not 4-D, not floating point, or unknown reduction.

    Example:
        >>> l1_loss(torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
        tensor(1.)
    """
    check_pair(pred, target)
    check_reduction(reduction)
    return reduce((pred - target).abs(), reduction)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean squared error ``(pred - target)**2`` (the L2 loss of SRCNN, VDSR, FSRCNN, ESPCN).

    Args:
        pred, target: ``(B, C, H, W)`` tensors of the same shape.
        reduction: ``"none"`` (shape ``(B, C, H, W)``), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: shapes differ, not 4-D, not floating point, or unknown reduction.
    """
    check_pair(pred, target)
    check_reduction(reduction)
    return reduce((pred - target).square(), reduction)


def smooth_l1_loss(
    pred: torch.Tensor, target: torch.Tensor, *, beta: float = 1.0, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Smooth L1: ``0.5 d**2 / beta`` for ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = pred - target``).

    Equals :func:`huber_loss` divided by ``beta``; it tends to L1 as ``beta -> 0``.

    Args:
        pred, target: ``(B, C, H, W)`` tensors of the same shape.
        beta: transition point, ``> 0``.
        reduction: ``"none"`` (shape ``(B, C, H, W)``), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: bad shapes, ``beta <= 0`` or unknown reduction.
    """
    check_pair(pred, target)
    check_reduction(reduction)
    _positive(beta, "beta")
    return reduce(F.smooth_l1_loss(pred, target, beta=beta, reduction="none"), reduction)


def huber_loss(
    pred: torch.Tensor, target: torch.Tensor, *, delta: float = 1.0, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Huber: ``0.5 d**2`` for ``|d| <= delta``, else ``delta (|d| - 0.5 delta)`` (``d = pred - target``).

    Args:
        pred, target: ``(B, C, H, W)`` tensors of the same shape.
        delta: transition point, ``> 0``.
        reduction: ``"none"`` (shape ``(B, C, H, W)``), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: bad shapes, ``delta <= 0`` or unknown reduction.
    """
    check_pair(pred, target)
    check_reduction(reduction)
    _positive(delta, "delta")
    return reduce(F.huber_loss(pred, target, delta=delta, reduction="none"), reduction)


def charbonnier_loss(
    pred: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-3, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Charbonnier (differentiable L1): ``sqrt((pred - target)**2 + eps**2)``.

    The robust loss of LapSRN (Lai et al., CVPR 2017, eps = 1e-3). Half-precision inputs
    are computed in float32 so that ``eps**2`` does not underflow.

    Args:
        pred, target: ``(B, C, H, W)`` tensors of the same shape.
        eps: smoothing constant, ``> 0``; the loss of a perfect prediction is ``eps``.
        reduction: ``"none"`` (shape ``(B, C, H, W)``), ``"mean"`` or ``"sum"``.

    Raises:
        ValueError: bad shapes, ``eps <= 0`` or unknown reduction.

    Example:
        >>> charbonnier_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), eps=1e-3)
        tensor(0.0010)
    """
    check_pair(pred, target)
    check_reduction(reduction)
    _positive(eps, "eps")
    diff = pred - target
    if diff.dtype in (torch.float16, torch.bfloat16):
        diff = diff.float()
    return reduce(torch.sqrt(diff.square() + eps * eps), reduction)


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_loss(pred, target, reduction=self.reduction)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse_loss(pred, target, reduction=self.reduction)


class SmoothL1Loss(nn.Module):
    """Module form of :func:`smooth_l1_loss`."""

    def __init__(self, *, beta: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.beta = beta
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return smooth_l1_loss(pred, target, beta=self.beta, reduction=self.reduction)


class HuberLoss(nn.Module):
    """Module form of :func:`huber_loss`."""

    def __init__(self, *, delta: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.delta = delta
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return huber_loss(pred, target, delta=self.delta, reduction=self.reduction)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss`."""

    def __init__(self, *, eps: float = 1e-3, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.eps = eps
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier_loss(pred, target, eps=self.eps, reduction=self.reduction)


class YChannelLoss(nn.Module):
    """``loss`` on the BT.601 Y (MATLAB ``rgb2ycbcr``, unrounded so differentiable) of RGB inputs.

    ``(B, 3, H, W)`` pairs become ``(B, 1, H, W)`` in ``[16/255, 235/255]``; single-channel pairs
    pass through unchanged. For RGB models scored by Y-PSNR: the term spends the model's capacity
    where the protocol looks, while an RGB term keeps the chroma right.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target)
        if pred.shape[1] == 3:
            pred, target = rgb_to_y(pred), rgb_to_y(target)
        return self.loss(pred, target)
