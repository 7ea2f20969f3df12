"""Total variation regulariser (Rudin, Osher & Fatemi 1992; as an image prior in Mahendran & Vedaldi 2015)."""

from __future__ import annotations

import torch
from torch import nn

from ._reduce import Reduction, check_image, check_reduction, reduce

__all__ = ["TVLoss", "tv_loss"]


def tv_loss(x: torch.Tensor, *, squared: bool = False, reduction: Reduction = "mean") -> torch.Tensor:
    """Anisotropic total variation: mean of ``|dx|`` plus mean of ``|dy|`` per image.

    Means (not sums) make the value independent of the patch size, so one loss weight
    fits every crop size.

    Args:
        x: ``(B, C, H, W)`` image, ``H, W >= 2``.
        squared: use squared differences (smoother; SRGAN-era "TV loss") instead of absolute ones.
        reduction: ``"none"`` gives per-image values ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: not 4-D, smaller than 2x2, or unknown reduction.

    Example:
        >>> tv_loss(torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))
        tensor(1.)
    """
    check_image(x, "x")
    check_reduction(reduction)
    if x.shape[-2] < 2 or x.shape[-1] < 2:
        raise ValueError(f"x: expected H, W >= 2, got shape {tuple(x.shape)}")
    dy = x[..., 1:, :] - x[..., :-1, :]
    dx = x[..., :, 1:] - x[..., :, :-1]
    if squared:
        dy, dx = dy.square(), dx.square()
    else:
        dy, dx = dy.abs(), dx.abs()
    return reduce(dy.flatten(1).mean(dim=1) + dx.flatten(1).mean(dim=1), reduction)


class TVLoss(nn.Module):
    """Module form of :func:`tv_loss`."""

    def __init__(self, *, squared: bool = False, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.squared = squared
        self.reduction = reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tv_loss(x, squared=self.squared, reduction=self.reduction)
