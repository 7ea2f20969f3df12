"""Wavelet-domain Gaussian scale mixture (GSM) machinery shared by VIF and IFC.

A faithful port of the LIVE reference code (H. R. Sheikh, ``vifvec.m`` / ``ifcvec.m`` with
``vifsub_est_M.m``, ``refparams_vecgsm.m``, ``ind2wtree.m``), including its numerical guards:

* transform: ``buildSpyr(img, 4, 'sp5Filters', 'reflect1')`` of matlabPyrTools, a 4-level,
  6-orientation steerable pyramid computed by correlation with mirror ("reflect1": about the edge
  pixel, no repeat) boundaries; the subbands used are orientations 1 and 4 (0 and 90 degrees) of
  every level (``subbands = [4 7 10 13 16 19 22 25]`` of ``ind2wtree``, coarsest level first);
* GSM on 3x3 blocks (``M = 3``): ``C_U`` from all overlapping blocks, ``s^2`` per non-overlapping
  block, eigenvalues ``lambda`` of ``C_U``;
* distortion channel ``D = g C + V`` estimated in a box window of ``2^lev + 1`` coefficients
  centred on each block, ``lev = 1, 1, 2, 2, 3, 3, 4, 4`` (the reference code's numbering);
* ``ceil(((2^lev + 1) - 1) / 2 / M)`` blocks are dropped from every border.

All arithmetic is float64. Images are expected on the 0..255 scale (the callers rescale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _sp5_filters

__all__ = ["MIN_SIDE", "SubbandStats", "gsm_planes", "gsm_subband_stats"]

_M = 3
_TOL = 1e-15
_LEVELS = 4
_ORIENTATIONS = (3, 0)  # 0-based: MATLAB band 4 then band 1, as ind2wtree's reversed order lists them
#: smallest image side: the coarsest subband (ceil(side/8)) must keep one 3x3 block inside its border
MIN_SIDE = 65


@dataclass(frozen=True)
class SubbandStats:
    """Per-block GSM quantities of one subband, border blocks already removed.

    ``g``, ``vv``, ``ss``: ``(N, h, w)`` gain, distortion-noise variance, reference multiplier
    ``s^2``; ``lam``: ``(N, M*M)`` eigenvalues of the reference covariance ``C_U``.
    """

    g: torch.Tensor
    vv: torch.Tensor
    ss: torch.Tensor
    lam: torch.Tensor


def _corr(x: torch.Tensor, kernel: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """matlabPyrTools ``corrDn(x, k, 'reflect1')`` for an odd square kernel: same-size correlation.

    A float64 sum of shifted slices (CPU ``conv2d`` has no fast float64 path).
    """
    r = len(kernel) // 2
    xp = F.pad(x, (r, r, r, r), mode="reflect")
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for i, row in enumerate(kernel):
        band = xp[..., i : i + h, :]
        for j, tap in enumerate(row):
            if tap:
                out.add_(band[..., j : j + w], alpha=tap)
    return out


def _pyramid_subbands(x: torch.Tensor) -> list[tuple[torch.Tensor, int]]:
    """``(N, 1, H, W)`` -> the eight VIF/IFC subbands, coarsest first, each with its ``lev``."""
    lo = _corr(x, _sp5_filters.LO0)
    by_level: list[list[torch.Tensor]] = []
    for level in range(_LEVELS):
        by_level.append([_corr(lo, _sp5_filters.BANDS[b]) for b in _ORIENTATIONS])
        if level < _LEVELS - 1:
            lo = _corr(lo, _sp5_filters.LO)[..., ::2, ::2]
    out: list[tuple[torch.Tensor, int]] = []
    for level in reversed(range(_LEVELS)):  # ind2wtree: coarsest level first
        lev = _LEVELS - level  # the reference code's ceil((sub - 1) / 6): 1 for the coarsest level
        out.extend((band, lev) for band in by_level[level])
    return out


def _distortion_channel(y: torch.Tensor, yn: torch.Tensor, winsize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``vifsub_est_M``: gain ``g`` and noise variance ``vv`` per block centre, quirks included."""
    r = (winsize - 1) // 2
    area = float(winsize * winsize)
    stack = torch.cat([y, yn, y * yn, y * y, yn * yn], dim=1)
    padded = F.pad(stack, (r, r, r, r), mode="reflect")[..., _M // 2 :, _M // 2 :]
    box = F.avg_pool2d(F.avg_pool2d(padded, (winsize, 1), stride=(_M, 1)), (1, winsize), stride=(1, _M))  # separable
    mean_x, mean_y, e_xy, e_xx, e_yy = box.unbind(1)
    cov_xy = area * (e_xy - mean_x * mean_y)
    ss_x = (area * (e_xx - mean_x * mean_x)).clamp(min=0)
    ss_y = (area * (e_yy - mean_y * mean_y)).clamp(min=0)
    g = cov_xy / (ss_x + _TOL)
    vv = (ss_y - g * cov_xy) / area
    small_x = ss_x < _TOL
    g = torch.where(small_x, torch.zeros_like(g), g)
    vv = torch.where(small_x, ss_y, vv)  # the reference assigns the window *sum* here (sic)
    small_y = ss_y < _TOL
    g = torch.where(small_y, torch.zeros_like(g), g)
    vv = torch.where(small_y, torch.zeros_like(vv), vv)
    negative = g < 0
    vv = torch.where(negative, ss_y, vv)  # likewise a sum (sic)
    g = g.clamp(min=0)
    vv = torch.where(vv <= _TOL, torch.full_like(vv, _TOL), vv)
    return g, vv


def _reference_params(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``refparams_vecgsm``: ``s^2`` per non-overlapping block ``(N, h/M, w/M)`` and ``lambda (N, M*M)``."""
    n, _, h, w = y.shape
    blocks = F.unfold(y, _M)  # (N, 9, L): all overlapping blocks
    centred = blocks - blocks.mean(dim=2, keepdim=True)
    cu = centred @ centred.transpose(1, 2) / blocks.shape[2]
    tiles = F.unfold(y, _M, stride=_M)  # (N, 9, L'): non-overlapping blocks
    ss = (tiles * torch.linalg.solve(cu, tiles)).sum(dim=1) / (_M * _M)
    lam = torch.linalg.eigvalsh(cu)
    return ss.reshape(n, h // _M, w // _M), lam


def gsm_planes(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepared ``(B, C, H, W)`` pred/target -> ``(ref, dist)``, each ``(B*C, 1, H, W)`` float64 on the
    0..255 scale of the authors' code, without gradient."""
    b, c, h, w = pred.shape
    scale = 255.0 / data_range
    dist = (pred.detach().double() * scale).reshape(b * c, 1, h, w)
    ref = (target.detach().double() * scale).reshape(b * c, 1, h, w)
    return ref, dist


def gsm_subband_stats(ref: torch.Tensor, dist: torch.Tensor) -> list[SubbandStats]:
    """GSM and distortion-channel statistics of the eight subbands of ``(N, 1, H, W)`` images (0..255)."""
    n = ref.shape[0]
    out = []
    for both, lev in _pyramid_subbands(torch.cat([ref, dist]).double()):  # one pass for both images
        y, yn = both[:n], both[n:]
        h, w = (y.shape[-2] // _M) * _M, (y.shape[-1] // _M) * _M
        y, yn = y[..., :h, :w], yn[..., :h, :w]
        winsize = 2**lev + 1
        g, vv = _distortion_channel(y, yn, winsize)
        ss, lam = _reference_params(y)
        off = math.ceil(((winsize - 1) / 2) / _M)
        crop = (slice(None), slice(off, -off), slice(off, -off))
        out.append(SubbandStats(g=g[crop], vv=vv[crop], ss=ss[crop], lam=lam))
    return out


def information(stats: SubbandStats, noise: float) -> torch.Tensor:
    """``sum_j sum_blocks log2(1 + g^2 s^2 lambda_j / (vv + noise))`` per image: ``(N,)``."""
    num = stats.g.square() * stats.ss
    arg = num.unsqueeze(-1) * stats.lam.view(-1, 1, 1, stats.lam.shape[-1]) / (stats.vv + noise).unsqueeze(-1)
    return torch.log2(1 + arg).flatten(1).sum(dim=1)


def reference_information(stats: SubbandStats, noise: float) -> torch.Tensor:
    """``sum_j sum_blocks log2(1 + s^2 lambda_j / noise)`` per image: ``(N,)``."""
    arg = stats.ss.unsqueeze(-1) * stats.lam.view(-1, 1, 1, stats.lam.shape[-1]) / noise
    return torch.log2(1 + arg).flatten(1).sum(dim=1)
