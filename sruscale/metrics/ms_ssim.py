"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import Reduction, _MetricModule, check_reduction, gaussian_1d, prepare, reduce
from .ssim import ssim_cs_maps

__all__ = ["MS_SSIM_WEIGHTS", "MSSSIM", "ms_ssim"]

#: exponents of the five scales, finest first (Wang et al. 2003, table/eq. 7)
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW = 11
#: smallest side: the fifth scale, ceil(side / 16), must still hold one 11x11 window
_MIN_SIDE = (_WINDOW - 1) * 16 + 1


def _downsample(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)``."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MS-SSIM: ``prod_{j<5} cs_j^{w_j} * ssim_5^{w_5}`` over five dyadic scales.

    As in the authors' ``msssim.m``: 11x11 Gaussian window (sigma 1.5), ``K1 = 0.01``,
    ``K2 = 0.03``, valid windows only, weights :data:`MS_SSIM_WEIGHTS`, and between scales a 2x2
    mean filter with symmetric border followed by keeping every second pixel. One deviation: a
    negative mean contrast-structure term (possible for anti-correlated images, where MATLAB
    returns a complex number) is clamped to 0, as pytorch-msssim and piq do. Colour images
    without ``y_channel`` are scored per channel and averaged. Differentiable.

    Args:
        pred, target: ``(B, C, H, W)`` in ``[0, data_range]``; each side at least 161 pixels
            after cropping (the fifth scale must hold one window).
        data_range, y_channel, round_8bit, crop_border, reduction: as in :func:`sruscale.metrics.psnr`.

    Returns:
        MS-SSIM in ``[0, 1]`` (1 for identical images), ``(B,)`` or scalar.

    Raises:
        ImageError: mismatched/bad shapes; an image smaller than 161x161 after cropping.

    Example:
        >>> ms_ssim(sr, hr, y_channel=True, crop_border=4)
    """
    check_reduction(reduction)
    x, y = prepare(
        pred,
        target,
        y_channel=y_channel,
        round_8bit=round_8bit,
        crop_border=crop_border,
        data_range=data_range,
        min_side=_MIN_SIDE,
        metric="MS-SSIM",
    )
    win = gaussian_1d(_WINDOW, 1.5, like=x)
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    levels = len(MS_SSIM_WEIGHTS)
    terms = []
    for level in range(levels):
        s_map, cs_map = ssim_cs_maps(x, y, window=win, data_range=data_range, k1=0.01, k2=0.03)
        term = s_map if level == levels - 1 else cs_map
        terms.append(term.flatten(2).mean(dim=2).clamp(min=0))  # (B, C)
        if level < levels - 1:
            x, y = _downsample(x), _downsample(y)
    stacked = torch.stack(terms, dim=0)  # (levels, B, C)
    value = torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)
    return reduce(value, reduction)


class MSSSIM(_MetricModule):
    """:func:`ms_ssim` as a module (stores the options; ``forward(pred, target)``)."""

    _metric = staticmethod(ms_ssim)
