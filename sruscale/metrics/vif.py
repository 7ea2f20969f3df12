"""Visual information fidelity in the wavelet domain (Sheikh & Bovik 2006)."""

from __future__ import annotations

import torch

from ._common import Reduction, _MetricModule, check_reduction, prepare, reduce
from ._gsm import MIN_SIDE, gsm_planes, gsm_subband_stats, information, reference_information

__all__ = ["VIF", "vif"]

#: variance of the HVS noise on the 0..255 scale (``sigma_nsq`` of ``vifvec.m``)
VIF_NOISE = 0.4


def vif(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """VIF: information the distorted image carries about the reference, over the reference's own.

    ``VIF = sum_subbands I(C; F | s) / sum_subbands I(C; E | s)`` with the GSM natural-scene model
    of the reference, the gain-plus-noise distortion channel and HVS noise ``sigma_n^2 = 0.4``
    (on the 0..255 scale), exactly as the authors' ``vifvec.m``: a 4-level, 6-orientation steerable
    pyramid (``sp5Filters``, mirror borders) of which the 0 and 90 degree subbands of every level
    are used, 3x3 coefficient blocks, a distortion window that grows with the level, boundary
    blocks dropped; see :mod:`sruscale.metrics._gsm` for the details kept from the reference.
    This is the wavelet-domain VIF, not the pixel-domain VIFp (:func:`sruscale.metrics.vifp`),
    which is what piq and sewar call ``vif_p`` / ``vifp``.

    Not symmetric: ``target`` is the reference. Identical images give 1 (up to float64 rounding);
    a contrast-enhanced ``pred`` can exceed 1. A constant reference has no information: NaN.
    Colour images without ``y_channel`` are scored per channel and averaged. Not meant for
    gradients (eigen-decompositions; computed in float64).

    Args:
        pred: ``(B, C, H, W)`` distorted / SR image in ``[0, data_range]``.
        target: the reference (ground truth), same shape; each side at least 65 pixels after cropping.
        data_range, y_channel, round_8bit, crop_border, reduction: as in :func:`sruscale.metrics.psnr`.

    Returns:
        VIF, float64, ``(B,)`` or scalar.

    Raises:
        ImageError: mismatched/bad shapes; an image smaller than 65x65 after cropping.

    Example:
        >>> vif(sr, hr, y_channel=True, crop_border=4)
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
        metric="VIF",
    )
    b, c, h, w = x.shape
    ref, dist = gsm_planes(x, y, data_range)
    num = torch.zeros(b * c, dtype=torch.float64, device=x.device)
    den = torch.zeros_like(num)
    for stats in gsm_subband_stats(ref, dist):
        num += information(stats, VIF_NOISE)
        den += reference_information(stats, VIF_NOISE)
    return reduce((num / den).reshape(b, c).mean(dim=1), reduction)


class VIF(_MetricModule):
    """:func:`vif` as a module (stores the options; ``forward(pred, target)``, target = reference)."""

    _metric = staticmethod(vif)
