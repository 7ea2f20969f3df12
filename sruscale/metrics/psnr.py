"""Peak signal-to-noise ratio."""

from __future__ import annotations

import torch

from ._common import Reduction, _MetricModule, check_reduction, prepare, reduce

__all__ = ["PSNR", "psnr"]


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """PSNR in dB, ``10 log10(data_range^2 / MSE)``, the MSE taken per image over all channels and pixels.

    This is what SR papers report (MATLAB: ``10*log10(255^2/mean((a-b).^2))`` on the Y plane after
    shaving ``scale`` pixels). Identical images give ``+inf`` (no cap: a capped value would silently
    pull a dataset mean; callers that need a finite number decide the cap themselves).

    Args:
        pred: ``(B, C, H, W)`` in ``[0, data_range]``, e.g. the SR output.
        target: same shape, the ground truth. PSNR is symmetric in its arguments.
        data_range: peak value (``1.0`` for ``[0, 1]`` tensors, ``255.0`` for 8-bit scale).
        y_channel: score BT.601 studio-range Y (MATLAB ``rgb2ycbcr``) of RGB inputs; gray
            (``C = 1``) inputs are scored as they are. Note that scikit-image / piq "Y" conventions
            differ (full-range or YIQ luma), which is one reason published numbers disagree.
        round_8bit: with ``y_channel``, round Y to integers on the 0..255 scale, as MATLAB does for
            ``uint8`` images (the benchmark protocol for 8-bit data).
        crop_border: pixels removed from every side before scoring (SR convention: the scale).
        reduction: ``"none"`` -> ``(B,)``, ``"mean"`` / ``"sum"`` -> scalar.

    Returns:
        PSNR in dB (float tensor; ``+inf`` where MSE is zero).

    Raises:
        ImageError: shapes differ or are not ``(B, C, H, W)``; the crop leaves nothing.
        ValueError: bad ``data_range``, ``crop_border`` or ``reduction``.

    Example:
        >>> psnr(sr, hr, y_channel=True, round_8bit=True, crop_border=4)
    """
    check_reduction(reduction)
    x, y = prepare(
        pred, target, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border, data_range=data_range
    )
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    value = 10 * torch.log10(data_range**2 / mse)
    return reduce(value, reduction)


class PSNR(_MetricModule):
    """:func:`psnr` as a module (stores the options; ``forward(pred, target)``)."""

    _metric = staticmethod(psnr)
