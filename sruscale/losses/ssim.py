"""SSIM and MS-SSIM as losses (``1 - metric``), computed by :mod:`sruscale.metrics`.

References: Wang et al., "Image Quality Assessment: From Error Visibility to Structural
Similarity", IEEE TIP 2004; Wang, Simoncelli & Bovik, "Multiscale structural similarity",
Asilomar 2003; Zhao et al., "Loss Functions for Image Restoration with Neural Networks",
IEEE TCI 2017 (SSIM/MS-SSIM as training losses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn

from .. import metrics
from ._reduce import Reduction, check_pair, check_reduction, reduce

__all__ = ["MSSSIMLoss", "SSIMLoss", "ms_ssim_loss", "ssim_loss"]


def _one_minus(
    metric: Callable[..., torch.Tensor],
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    y_channel: bool,
    reduction: Reduction,
) -> torch.Tensor:
    """Validate, then reduce ``1 - metric(pred, target)`` per image (no crop, no 8-bit rounding)."""
    check_pair(pred, target)
    check_reduction(reduction)
    value = metric(pred, target, data_range=data_range, y_channel=y_channel, crop_border=0, reduction="none")
    return reduce(1 - value, reduction)


def ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``1 - SSIM(pred, target)`` per image (Gaussian 11x11 window, sigma 1.5; see :func:`sruscale.metrics.ssim`).

    Args:
        pred, target: ``(B, C, H, W)`` images in ``[0, data_range]``, ``H, W >= 11``.
        data_range: value range of the images.
        y_channel: compare the BT.601 Y channel of RGB inputs (no 8-bit rounding, so it is differentiable).
        reduction: ``"none"`` gives per-image losses ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: bad shapes, images too small for the window, bad ``data_range`` or reduction.
    """
    return _one_minus(metrics.ssim, pred, target, data_range, y_channel, reduction)


def ms_ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``1 - MS-SSIM(pred, target)`` per image (5 scales; see :func:`sruscale.metrics.ms_ssim`).

    Args:
        pred, target: ``(B, C, H, W)`` images in ``[0, data_range]``; MS-SSIM needs images large
            enough for 5 scales (see the metric's documentation for the minimum size).
        data_range: value range of the images.
        y_channel: compare the BT.601 Y channel of RGB inputs.
        reduction: ``"none"`` gives per-image losses ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: bad shapes, images too small, bad ``data_range`` or reduction.
    """
    return _one_minus(metrics.ms_ssim, pred, target, data_range, y_channel, reduction)


class _OneMinusModule(nn.Module):
    """Stores ``data_range``, ``y_channel``, ``reduction``; ``forward(pred, target)`` calls the class's ``_loss``."""

    _loss: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, *, data_range: float = 1.0, y_channel: bool = False, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.data_range = data_range
        self.y_channel = y_channel
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(pred, target, data_range=self.data_range, y_channel=self.y_channel, reduction=self.reduction)


class SSIMLoss(_OneMinusModule):
    """Module form of :func:`ssim_loss`."""

    _loss = staticmethod(ssim_loss)


class MSSSIMLoss(_OneMinusModule):
    """Module form of :func:`ms_ssim_loss`."""

    _loss = staticmethod(ms_ssim_loss)
