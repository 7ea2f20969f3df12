"""Pixel-domain visual information fidelity, VIFp (Sheikh & Bovik 2006, ``vifp_mscale.m``)."""

from __future__ import annotations

import torch

from ._common import Reduction, _MetricModule, check_reduction, gaussian_1d, prepare, reduce, sep_filter

__all__ = ["VIFp", "vifp"]

#: HVS noise variance on the 0..255 scale (``sigma_nsq`` of ``vifp_mscale.m``)
VIFP_NOISE = 2.0
_EPS = 1e-10
#: smallest side such that the fourth scale still holds one 3x3 window
_MIN_SIDE = 41


def vifp(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """VIFp: the pixel-domain, multi-scale approximation of VIF from the authors' ``vifp_mscale.m``.

    Four scales; at scale ``s`` (1..4) a Gaussian window of ``N = 2^(5-s) + 1`` taps and sigma
    ``N / 5`` estimates local statistics over the valid region; before scales 2..4 the images are
    filtered with that window (valid) and subsampled by 2. Per scale, the gain ``g`` and noise
    ``sigma_v^2`` of the distortion channel get the reference code's guards (``1e-10``), and
    ``VIFp = sum log(1 + g^2 sigma_1^2 / (sigma_v^2 + 2)) / sum log(1 + sigma_1^2 / 2)`` on the
    0..255 scale. The paper's main metric is the wavelet-domain :func:`sruscale.metrics.vif`.

    Not symmetric: ``target`` is the reference. Identical images give 1; a constant reference
    gives NaN. Colour images without ``y_channel`` are scored per channel and averaged.

    Args:
        pred: ``(B, C, H, W)`` distorted / SR image in ``[0, data_range]``.
        target: the reference, same shape; each side at least 41 pixels after cropping.
        data_range, y_channel, round_8bit, crop_border, reduction: as in :func:`sruscale.metrics.psnr`.

    Returns:
        VIFp, float64, ``(B,)`` or scalar.

    Raises:
        ImageError: mismatched/bad shapes; an image smaller than 41x41 after cropping.
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
        metric="VIFp",
    )
    b, c = x.shape[:2]
    scale = 255.0 / data_range
    dist, ref = x.double() * scale, y.double() * scale
    num = torch.zeros(b, c, dtype=torch.float64, device=x.device)
    den = torch.zeros_like(num)
    for s in range(1, 5):
        n = 2 ** (4 - s + 1) + 1
        win = gaussian_1d(n, n / 5.0, like=ref)
        if s > 1:
            ref = sep_filter(ref, win)[..., ::2, ::2]
            dist = sep_filter(dist, win)[..., ::2, ::2]
        stats = sep_filter(torch.cat([ref, dist, ref * ref, dist * dist, ref * dist], dim=1), win)
        mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
        s1 = (e11 - mu1 * mu1).clamp(min=0)
        s2 = (e22 - mu2 * mu2).clamp(min=0)
        s12 = e12 - mu1 * mu2
        g = s12 / (s1 + _EPS)
        sv = s2 - g * s12
        small1 = s1 < _EPS
        g = torch.where(small1, torch.zeros_like(g), g)
        sv = torch.where(small1, s2, sv)
        s1 = torch.where(small1, torch.zeros_like(s1), s1)
        small2 = s2 < _EPS
        g = torch.where(small2, torch.zeros_like(g), g)
        sv = torch.where(small2, torch.zeros_like(sv), sv)
        sv = torch.where(g < 0, s2, sv)
        g = g.clamp(min=0)
        sv = sv.clamp(min=_EPS)
        num += torch.log10(1 + g * g * s1 / (sv + VIFP_NOISE)).flatten(2).sum(dim=2)
        den += torch.log10(1 + s1 / VIFP_NOISE).flatten(2).sum(dim=2)
    return reduce((num / den).mean(dim=1), reduction)


class VIFp(_MetricModule):
    """:func:`vifp` as a module (stores the options; ``forward(pred, target)``, target = reference)."""

    _metric = staticmethod(vifp)
