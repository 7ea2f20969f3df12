"""Amplitude-spectrum loss: the images' Fourier magnitudes compared, their phases ignored (in the spirit
of the frequency-domain losses of Jiang et al., "Focal Frequency Loss", ICCV 2021, without the focal
weighting). It asks for the target's energy at every frequency (texture, sharpness) without asking
where each detail lies, so a network that cannot place a teacher's fine texture still learns how much
of it there is."""

from __future__ import annotations

import torch
from torch import nn

from ._reduce import Reduction, check_pair, check_reduction, reduce

__all__ = ["FrequencyLoss", "frequency_loss"]


def frequency_loss(sr: torch.Tensor, hr: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean absolute difference of the 2-D amplitude spectra (``torch.fft.rfft2``, orthonormal, per
    channel) of ``sr`` and ``hr``.

    Args:
        sr, hr: ``(B, C, H, W)`` images of the same shape (any range; [0, 1] in the trainer).
        reduction: ``"none"`` gives per-image values ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: not 4-D, shapes differ, or unknown reduction.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> round(float(frequency_loss(x, torch.roll(x, 3, dims=-1))), 6)  # a circular shift keeps the amplitudes
        0.0
    """
    check_pair(sr, hr)
    check_reduction(reduction)
    amp = [torch.fft.rfft2(x.to(torch.promote_types(x.dtype, torch.float32)), norm="ortho").abs() for x in (sr, hr)]
    return reduce((amp[0] - amp[1]).abs().flatten(1).mean(dim=1), reduction)


class FrequencyLoss(nn.Module):
    """Module form of :func:`frequency_loss`."""

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return frequency_loss(sr, hr, reduction=self.reduction)
