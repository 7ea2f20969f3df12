"""Information fidelity criterion (Sheikh, Bovik & de Veciana 2005)."""

from __future__ import annotations

from typing import Unpack

import torch

from ._common import MetricOptions, Reduction, _MetricModule, check_reduction, prepare, reduce
from ._gsm import MIN_SIDE, gsm_planes, gsm_subband_stats, information

__all__ = ["IFC", "ifc"]

#: the reference code's guard against a zero distortion variance (``vv + 1e-10``)
_IFC_EPS = 1e-10


def ifc(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    per_pixel: bool = True,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """IFC: mutual information (bits) between reference and distorted wavelet coefficients.

    ``sum_subbands sum_blocks sum_j log2(1 + g^2 s^2 lambda_j / sigma_v^2)``: the GSM model and
    distortion channel of :func:`sruscale.metrics.vif` (same pyramid, subbands, 3x3 blocks and
    guards; the LIVE ``ifcvec.m``), without HVS noise. ``per_pixel=True`` divides by the number
    of pixels of the (cropped) image, as the SR benchmark code of Yang et al. (ECCV 2014; SelfExSR
    ``quant_eval/ifcvec.m``) does; that is the IFC of SR tables (bicubic x2 on Set5 is about 6).
    ``per_pixel=False`` gives the raw sum of the original LIVE release.

    Not symmetric (``target`` is the reference) and unbounded; identical images give a very large
    value (only the ``1e-10`` guard keeps it finite). Colour images without ``y_channel`` are
    scored per channel and averaged. Computed in float64, no gradients.

    Args:
        pred: ``(B, C, H, W)`` distorted / SR image in ``[0, data_range]``.
        target: the reference, same shape; each side at least 65 pixels after cropping.
        per_pixel: normalise by ``H * W`` (see above).
        data_range, y_channel, round_8bit, crop_border, reduction: as in :func:`sruscale.metrics.psnr`.

    Returns:
        IFC in bits (per pixel by default), float64, ``(B,)`` or scalar.

    Raises:
        ImageError: mismatched/bad shapes; an image smaller than 65x65 after cropping.
    """
    check_reduction(reduction)
    x, y = prepare(
        pred,
        target,
        y_channel=y_channel,
        round_8bit=round_8bit,
        crop_border=crop_border,
        data_range=data_range,
        min_side=MIN_SIDE,
        metric="IFC",
    )
    b, c, h, w = x.shape
    ref, dist = gsm_planes(x, y, data_range)
    total = torch.zeros(b * c, dtype=torch.float64, device=x.device)
    for stats in gsm_subband_stats(ref, dist):
        total += information(stats, _IFC_EPS)
    if per_pixel:
        total = total / (h * w)
    return reduce(total.reshape(b, c).mean(dim=1), reduction)


class IFC(_MetricModule):
    """:func:`ifc` as a module (stores the options; ``forward(pred, target)``, target = reference).

    Options (keyword-only, defaults as in :func:`ifc`): ``per_pixel``, ``data_range``, ``y_channel``,
    ``round_8bit``, ``crop_border``, ``reduction``.
    """

    _metric = staticmethod(ifc)
    _options = (*_MetricModule._options, "per_pixel")

    def __init__(self, *, per_pixel: bool = True, **options: Unpack[MetricOptions]) -> None:
        super().__init__(**options)
        self.per_pixel = per_pixel
