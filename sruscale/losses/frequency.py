"""Amplitude-spectrum loss: the images' Fourier magnitudes compared, their phases ignored (in the spirit
of the frequency-domain losses of Jiang et al., "Focal Frequency Loss", ICCV 2021, without the focal
weighting). It asks for the target's energy at every frequency (texture, sharpness) without asking
where each detail lies, so a network that cannot place a teacher's fine texture still learns how much
of it there is. With ``patch`` set, the spectra are taken tile by tile, so the energy is also asked
for where it lies (texture on fur, none on a sky) instead of anywhere in the crop."""

from __future__ import annotations

import operator

import torch
from torch import nn

from ._reduce import Reduction, check_pair, check_reduction, reduce

__all__ = ["FrequencyLoss", "frequency_loss"]


def _tiles(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, H // patch, W // patch, patch, patch)`` (the remainder dropped)."""
    b, c, h, w = x.shape
    nh, nw = h // patch, w // patch
    x = x[..., : nh * patch, : nw * patch].reshape(b, c, nh, patch, nw, patch)
    return x.permute(0, 1, 2, 4, 3, 5)


def frequency_loss(
    sr: torch.Tensor, hr: torch.Tensor, *, patch: int = 0, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Mean absolute difference of the 2-D amplitude spectra (``torch.fft.rfft2``, orthonormal, per
    channel) of ``sr`` and ``hr``: of the whole images, or of each ``patch x patch`` tile.

    Args:
        sr, hr: ``(B, C, H, W)`` images of the same shape (any range; [0, 1] in the trainer).
        patch: tile size in pixels (>= 2; rows and columns past the last whole tile are left out);
            0 = one spectrum of the whole image.
        reduction: ``"none"`` gives per-image values ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: not 4-D, shapes differ, unknown reduction, or ``patch`` is 1, negative or larger
            than the images.
        TypeError: ``patch`` is not an integer.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> round(float(frequency_loss(x, torch.roll(x, 3, dims=-1))), 6)  # a circular shift keeps the amplitudes
        0.0
    """
    check_pair(sr, hr)
    check_reduction(reduction)
    patch = operator.index(patch)
    if patch == 1 or patch < 0 or patch > min(sr.shape[-2:]):
        raise ValueError(f"patch must be 0 or 2..{min(sr.shape[-2:])} (the images' shorter side), got {patch}")
    pair = (sr, hr) if patch == 0 else (_tiles(sr, patch), _tiles(hr, patch))
    amp = [torch.fft.rfft2(x.to(torch.promote_types(x.dtype, torch.float32)), norm="ortho").abs() for x in pair]
    return reduce((amp[0] - amp[1]).abs().flatten(1).mean(dim=1), reduction)


class FrequencyLoss(nn.Module):
    """Module form of :func:`frequency_loss`."""

    def __init__(self, *, patch: int = 0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.patch, self.reduction = patch, reduction

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return frequency_loss(sr, hr, patch=self.patch, reduction=self.reduction)
