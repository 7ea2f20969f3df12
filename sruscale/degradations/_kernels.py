"""Blur kernels as ``(k, k)`` float64 tensors that sum to 1.

Every kernel is point-symmetric about its centre, so correlation and convolution agree. The
sampling grid is MATLAB ``fspecial``'s: offsets ``-(k - 1) / 2 .. (k - 1) / 2`` from the centre,
so an even ``k`` puts the centre between two taps (used by RDN's BD degradation at even scales).

The Gaussian family follows the Real-ESRGAN paper (Wang et al., ICCVW 2021, Sec. 3.1): a
covariance ``Sigma = R(angle) diag(sigma_x^2, sigma_y^2) R(angle)^T`` and, with
``q = p^T Sigma^-1 p``, the shapes ``exp(-q / 2)`` (Gaussian), ``exp(-q^beta / 2)`` (generalized
Gaussian) and ``1 / (1 + q^beta)`` (plateau). The sinc kernel is the ideal circular low-pass
filter ``omega_c J1(omega_c r) / (2 pi r)`` that Real-ESRGAN uses to simulate ringing.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

__all__ = [
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "motion_kernel",
    "plateau_kernel",
    "sinc_kernel",
]


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"kernel size must be a positive integer, got {size!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _quadratic_form(size: int, sigma_x: float, sigma_y: float | None, angle: float) -> torch.Tensor:
    """``q = p^T Sigma^-1 p`` on the kernel grid (``x`` to the right, ``y`` down)."""
    _check_size(size)
    sigma_y = sigma_x if sigma_y is None else sigma_y
    _check_positive("sigma_x", sigma_x)
    _check_positive("sigma_y", sigma_y)
    xx, yy = _grid(size)
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    u = c * xx - s * yy  # coordinates along the principal axes (y points down, angles turn counter-clockwise)
    v = s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalize(k: torch.Tensor) -> torch.Tensor:
    total = k.sum()
    if not total > 0:
        raise ConfigError("kernel sums to zero; check its parameters")
    return k / total


def gaussian_kernel(size: int, *, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0) -> torch.Tensor:
    """Isotropic (``sigma_y`` None) or anisotropic Gaussian, as MATLAB ``fspecial('gaussian')`` when isotropic.

    Args:
        size: kernel width ``k`` (odd or even).
        sigma_x: standard deviation along the first principal axis, in pixels.
        sigma_y: along the second axis; ``None`` means ``sigma_x``.
        angle: rotation of the first principal axis in degrees, counter-clockwise from the x axis.

    Returns:
        ``(k, k)`` float64 tensor summing to 1.

    Raises:
        ConfigError: for a non-positive size or sigma.
    """
    return _normalize(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, angle)))


def generalized_gaussian_kernel(
    size: int, *, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    """Generalized Gaussian ``exp(-q^beta / 2)``: ``beta < 1`` heavy-tailed, ``beta > 1`` flat-topped.

    Args:
        size, sigma_x, sigma_y, angle: as :func:`gaussian_kernel`.
        beta: shape parameter (> 0); ``beta = 1`` is the Gaussian.

    Returns:
        ``(k, k)`` float64 tensor summing to 1.
    """
    _check_positive("beta", beta)
    return _normalize(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, angle) ** beta))


def plateau_kernel(
    size: int, *, sigma_x: float, sigma_y: float | None = None, angle: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    """Plateau-shaped kernel ``1 / (1 + q^beta)`` (flat top, slow decay).

    Args:
        size, sigma_x, sigma_y, angle: as :func:`gaussian_kernel`.
        beta: shape parameter (> 0).

    Returns:
        ``(k, k)`` float64 tensor summing to 1.
    """
    _check_positive("beta", beta)
    return _normalize(1.0 / (1.0 + _quadratic_form(size, sigma_x, sigma_y, angle) ** beta))


def sinc_kernel(size: int, *, cutoff: float) -> torch.Tensor:
    """Circular low-pass ("sinc") kernel with cut-off frequency ``cutoff`` (rad/pixel, in ``(0, pi]``).

    Produces ringing and overshoot artifacts; smaller ``cutoff`` means stronger ringing.

    Returns:
        ``(k, k)`` float64 tensor summing to 1.
    """
    _check_size(size)
    if not 0 < cutoff <= math.pi + 1e-9:
        raise ConfigError(f"sinc cutoff must be in (0, pi], got {cutoff!r}")
    xx, yy = _grid(size)
    r = torch.sqrt(xx * xx + yy * yy)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    k = torch.where(r == 0, torch.full_like(r, cutoff**2 / (4 * math.pi)), k)
    return _normalize(k)


def motion_kernel(size: int, *, length: float, angle: float) -> torch.Tensor:
    """Linear motion blur: a line segment of ``length`` pixels through the centre, anti-aliased.

    Args:
        size: kernel width ``k``; the segment is clipped to the kernel.
        length: segment length in pixels (``0`` gives the identity kernel).
        angle: direction in degrees, counter-clockwise from the x axis.

    Returns:
        ``(k, k)`` float64 tensor summing to 1.
    """
    _check_size(size)
    if length < 0:
        raise ConfigError(f"motion length must be >= 0, got {length!r}")
    n = max(2, math.ceil(length * 8) + 1)
    t = torch.linspace(-length / 2, length / 2, n, dtype=torch.float64)
    a = math.radians(angle)
    c = (size - 1) / 2
    px, py = c + t * math.cos(a), c - t * math.sin(a)  # image y axis points down
    k = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = px.floor(), py.floor()
    for dx in (0, 1):  # bilinear splat of every sample point
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (px - xi).abs()) * (1 - (py - yi).abs())
            ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (w > 0)
            k.index_put_((yi[ok].long(), xi[ok].long()), w[ok], accumulate=True)
    return _normalize(k)
