"""Natural-scene-statistics pieces shared by NIQE and BRISQUE: MSCN coefficients and (A)GGD fits.

All functions work on ``float64`` numpy arrays with values on the 0..255 scale, as the MATLAB
reference code (``niqe_release``, ``brisque_release``) does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["aggd_fit", "fspecial_gaussian", "ggd_fit", "mscn", "pair_products"]


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: a ``(size, size)`` window summing to 1."""
    r = (size - 1) / 2
    ax = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    g[g < np.finfo(np.float64).eps * g.max()] = 0
    return g / g.sum()


def _filter(img: np.ndarray, window: np.ndarray, border: int) -> np.ndarray:
    return cv2.filter2D(img, cv2.CV_64F, window, borderType=border)  # correlation; the windows are symmetric


def mscn(
    img: np.ndarray, window: np.ndarray, *, c: float = 1.0, replicate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients ``(img - mu) / (sigma + c)`` (Mittal et al., eq. 1).

    Args:
        img: ``(H, W)`` float64, 0..255.
        window: the local weighting window (e.g. :func:`fspecial_gaussian` ``(7, 7/6)``).
        replicate: border handling of ``imfilter``: ``'replicate'`` (NIQE) or zeros (BRISQUE's default).

    Returns:
        ``(mscn, sigma)``, both ``(H, W)``.
    """
    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    mu = _filter(img, window, border)
    sigma = np.sqrt(np.abs(_filter(img * img, window, border) - mu * mu))
    return (img - mu) / (sigma + c), sigma


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gam = np.arange(0.2, 10.001, 0.001)
    g1 = np.array([math.gamma(1 / a) for a in gam])
    g2 = np.array([math.gamma(2 / a) for a in gam])
    g3 = np.array([math.gamma(3 / a) for a in gam])
    return gam, g2 * g2 / (g1 * g3), g1 * g3 / (g2 * g2)  # the grid, r(gam) of the AGGD, rho(gam) of the GGD


def aggd_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Fit an asymmetric generalised Gaussian by moment matching on MATLAB's grid ``0.2:0.001:10``.

    Returns:
        ``(alpha, std_left, std_right)``: the shape and the RMS of the negative and positive values
        (NaN when a side is empty); the scales are ``std * sqrt(gamma(1/alpha) / gamma(3/alpha))``.
    """
    x = x.ravel()
    gam, r_gam, _ = _gamma_table()
    neg, pos = x[x < 0], x[x > 0]
    left = math.sqrt(float(np.mean(neg * neg))) if neg.size else math.nan
    right = math.sqrt(float(np.mean(pos * pos))) if pos.size else math.nan
    gammahat = left / right if right else math.nan
    msq = float(np.mean(x * x))
    rhat = float(np.mean(np.abs(x))) ** 2 / msq if msq else math.nan
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    if not math.isfinite(rhatnorm):
        return math.nan, math.nan, math.nan
    return float(gam[np.argmin((r_gam - rhatnorm) ** 2)]), left, right


def ggd_fit(x: np.ndarray) -> tuple[float, float]:
    """Fit a zero-mean generalised Gaussian (BRISQUE ``estimateggdparam``): ``(alpha, sigma^2)``."""
    x = x.ravel()
    gam, r_gam = _gamma_table()[0], _gamma_table()[2]
    sigma_sq = float(np.mean(x * x))
    e = float(np.mean(np.abs(x)))
    rho = sigma_sq / (e * e) if e else math.nan
    if not math.isfinite(rho):
        return math.nan, sigma_sq
    return float(gam[np.argmin(np.abs(rho - r_gam))]), sigma_sq


#: neighbour offsets (dy, dx) of the paired products: horizontal, vertical, main and secondary diagonal
PAIR_SHIFTS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (1, -1))


def pair_products(m: np.ndarray) -> list[np.ndarray]:
    """Products of each coefficient with its circularly shifted neighbour (MATLAB ``circshift``), 4 orientations."""
    return [m * np.roll(m, s, axis=(0, 1)) for s in PAIR_SHIFTS]
