"""SSIM (Wang, Bovik, Sheikh & Simoncelli 2004), its per-window map, and the general mean-SSIM."""

from __future__ import annotations

from typing import Literal, Unpack

import torch

from ._common import (
    MetricOptions,
    Reduction,
    _MetricModule,
    check_min_size,
    check_reduction,
    gaussian_1d,
    prepare,
    reduce,
    sep_filter,
)

__all__ = ["MSSIM", "SSIM", "mssim", "ssim", "ssim_map"]

Window = Literal["gaussian", "uniform"]


def _window(kind: str, size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"window_size must be a positive int, got {size!r}")
    if kind == "gaussian":
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        return gaussian_1d(size, sigma, like=like)
    if kind == "uniform":
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    raise ValueError(f"window must be 'gaussian' or 'uniform', got {kind!r}")


def ssim_cs_maps(
    x: torch.Tensor, y: torch.Tensor, *, window: torch.Tensor, data_range: float, k1: float, k2: float, stride: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local SSIM and contrast-structure maps over the 'valid' windows (no padding).

    Args:
        x, y: ``(B, C, H, W)`` already prepared, in ``[0, data_range]``.
        window: 1-D separable window (sums to 1), ``K`` taps.

    Returns:
        ``(ssim_map, cs_map)``, each ``(B, C, (H - K) // stride + 1, (W - K) // stride + 1)``.
    """
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    b, c = x.shape[:2]
    stats = sep_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window, stride=stride)
    mu1, mu2, e11, e22, e12 = stats.split(c, dim=1)
    mu11, mu22, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s11, s22, s12 = e11 - mu11, e22 - mu22, e12 - mu12
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    lum = (2 * mu12 + c1) / (mu11 + mu22 + c1)
    return lum * cs, cs


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    window: Window = "gaussian",
    window_size: int = 11,
    sigma: float = 1.5,
    stride: int = 1,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
) -> torch.Tensor:
    """The SSIM index of every local window: ``SSIM(x_j, y_j)`` of Wang et al. 2004, eq. (13).

    Only windows that lie fully inside the (cropped) image are scored ("valid" region, as the
    authors' ``ssim_index.m`` does with ``filter2(..., 'valid')``); nothing is padded.

    Args:
        pred, target: ``(B, C, H, W)`` in ``[0, data_range]``.
        window: ``"gaussian"`` (paper: 11 taps, sigma 1.5) or ``"uniform"`` (box, e.g. 8x8).
        window_size: taps per side ``K``.
        sigma: Gaussian standard deviation (ignored for ``"uniform"``).
        stride: step between windows (``1`` = every pixel; ``window_size`` = non-overlapping).
        k1, k2: the stabilising constants ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.
        data_range, y_channel, round_8bit, crop_border: as in :func:`sruscale.metrics.psnr`.

    Returns:
        ``(B, C', (H' - K) // stride + 1, (W' - K) // stride + 1)`` local SSIM values in ``[-1, 1]``.

    Raises:
        ImageError: mismatched/bad shapes, or an image smaller than the window.
        ValueError: bad window parameters.
    """
    x, y = prepare(
        pred, target, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border, data_range=data_range
    )
    win = _window(window, window_size, sigma, x)
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    check_min_size(x, window_size, "SSIM")
    return ssim_cs_maps(x, y, window=win, data_range=data_range, k1=k1, k2=k2, stride=stride)[0]


def mssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    window: Window = "gaussian",
    window_size: int = 11,
    sigma: float = 1.5,
    stride: int = 1,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Mean SSIM: the mean of :func:`ssim_map` over all windows (and channels) of each image.

    ``MSSIM(X, Y) = 1/M sum_j SSIM(x_j, y_j)`` (Wang et al. 2004, eq. 17), with the window, its
    stride and the constants configurable; the per-window values are :func:`ssim_map`. With the
    defaults this equals :func:`ssim`.

    Returns:
        ``(B,)`` for ``reduction="none"``, else a scalar.

    Example:
        >>> mssim(sr, hr, window="uniform", window_size=8, stride=8)   # non-overlapping 8x8 blocks
    """
    check_reduction(reduction)
    local = ssim_map(
        pred,
        target,
        window=window,
        window_size=window_size,
        sigma=sigma,
        stride=stride,
        k1=k1,
        k2=k2,
        data_range=data_range,
        y_channel=y_channel,
        round_8bit=round_8bit,
        crop_border=crop_border,
    )
    return reduce(local.flatten(1).mean(dim=1), reduction)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = False,
    crop_border: int = 0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """SSIM as SR papers report it (Wang et al. 2004; the authors' ``ssim_index.m``).

    11x11 Gaussian window, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population (not sample)
    statistics, mean over the *valid* windows only; colour images without ``y_channel`` are
    scored per channel and averaged. Differentiable (use ``1 - ssim`` as a loss).

    Differences from other Python implementations: scikit-image's ``structural_similarity``
    defaults to a 7x7 uniform window with sample covariance, and even with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` it filters with reflection
    at the border and then crops; its mean equals this one but its ``full`` map is padded. piq and
    kornia pad the image (zero or reflect) and score the border windows too, which raises SSIM a
    little; BasicSR and this function do not pad. piq's Y is YIQ luma, not BT.601 studio range.

    Args:
        pred, target: ``(B, C, H, W)`` in ``[0, data_range]``; the index is symmetric in them.
        data_range, y_channel, round_8bit, crop_border, reduction: as in :func:`sruscale.metrics.psnr`.

    Returns:
        SSIM in ``[-1, 1]`` (1 for identical images), ``(B,)`` or scalar.

    Raises:
        ImageError: mismatched/bad shapes; an image smaller than 11x11 after cropping.

    Example:
        >>> ssim(sr, hr, y_channel=True, round_8bit=True, crop_border=4)
    """
    return mssim(
        pred,
        target,
        data_range=data_range,
        y_channel=y_channel,
        round_8bit=round_8bit,
        crop_border=crop_border,
        reduction=reduction,
    )


class SSIM(_MetricModule):
    """:func:`ssim` as a module (stores the options; ``forward(pred, target)``)."""

    _metric = staticmethod(ssim)


class MSSIM(_MetricModule):
    """:func:`mssim` as a module (stores the options; ``forward(pred, target)``).

    Options (keyword-only, defaults as in :func:`mssim`): ``window``, ``window_size``, ``sigma``, ``stride``,
    ``k1``, ``k2``, ``data_range``, ``y_channel``, ``round_8bit``, ``crop_border``, ``reduction``.
    """

    _metric = staticmethod(mssim)
    _options = (*_MetricModule._options, "window", "window_size", "sigma", "stride", "k1", "k2")

    def __init__(
        self,
        *,
        window: Window = "gaussian",
        window_size: int = 11,
        sigma: float = 1.5,
        stride: int = 1,
        k1: float = 0.01,
        k2: float = 0.03,
        **options: Unpack[MetricOptions],
    ) -> None:
        super().__init__(**options)
        self.window, self.window_size, self.sigma, self.stride = window, window_size, sigma, stride
        self.k1, self.k2 = k1, k2
