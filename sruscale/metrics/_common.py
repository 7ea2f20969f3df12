"""Shared pieces of every metric: input checks, the SR evaluation conventions, the module base class."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_pair
from .._reduction import Reduction, check_reduction, reduce
from ..color import rgb_to_y
from ..errors import ImageError

__all__ = [
    "MetricOptions",
    "Reduction",
    "check_reduction",
    "gaussian_1d",
    "prepare",
    "reduce",
    "sep_filter",
    "shift_add_corr",
]


class MetricOptions(TypedDict, total=False):
    """The keyword options every metric function takes (see :func:`sruscale.metrics.psnr`)."""

    data_range: float
    y_channel: bool
    round_8bit: bool
    crop_border: int
    reduction: Reduction


class _MetricModule(nn.Module):
    """A metric function as a module: stores the options named in ``_options``, calls ``_metric`` with them.

    Subclasses set ``_metric = staticmethod(fn)``; one with extra options extends ``__init__`` and ``_options``.
    """

    _metric: ClassVar[Callable[..., torch.Tensor]]
    _options: ClassVar[tuple[str, ...]] = ("data_range", "y_channel", "round_8bit", "crop_border", "reduction")

    def __init__(
        self,
        *,
        data_range: float = 1.0,
        y_channel: bool = False,
        round_8bit: bool = False,
        crop_border: int = 0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.data_range, self.y_channel, self.round_8bit = data_range, y_channel, round_8bit
        self.crop_border, self.reduction = crop_border, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._metric(pred, target, **{name: getattr(self, name) for name in self._options})


def prepare(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool,
    round_8bit: bool,
    crop_border: int,
    data_range: float,
    min_side: int = 1,
    metric: str = "",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a pair and apply the evaluation conventions shared by all metrics.

    Order: (optional) Y of BT.601 studio range as MATLAB ``rgb2ycbcr`` computes it (rounded to
    integers on the 0..255 scale when ``round_8bit``), then ``crop_border`` pixels off every side.
    Inputs with one channel are used as they are (a gray image is scored on its one channel).

    Returns:
        ``(pred, target)`` of shape ``(B, C', H - 2 * crop, W - 2 * crop)`` in ``[0, data_range]``;
        ``C' = 1`` with ``y_channel``; half precision is promoted to float32.

    Raises:
        ImageError: bad shapes, mismatched shapes (expected vs actual), a crop that leaves nothing
            or less than ``min_side`` pixels on a side (``metric`` names the metric in the message),
            ``y_channel`` on an image that has neither 1 nor 3 channels.
        ValueError: ``data_range <= 0`` or ``crop_border < 0``.
    """
    pred, target = check_pair(pred, target)
    if not (isinstance(data_range, int | float) and data_range > 0 and math.isfinite(data_range)):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    if not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative int, got {crop_border!r}")
    if pred.dtype in (torch.float16, torch.bfloat16):
        pred, target = pred.float(), target.float()
    target = target.to(pred.dtype)
    if y_channel:
        c = pred.shape[1]
        if c == 3:
            pred = rgb_to_y(pred / data_range, round_8bit=round_8bit) * data_range
            target = rgb_to_y(target / data_range, round_8bit=round_8bit) * data_range
        elif c != 1:
            raise ImageError(f"y_channel needs 1 (gray) or 3 (RGB) channels, got {c} (shape {tuple(pred.shape)})")
    if crop_border:
        h, w = pred.shape[-2:]
        if 2 * crop_border >= min(h, w):
            raise ImageError(f"crop_border={crop_border} leaves nothing of a {h}x{w} image (H x W)")
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    check_min_size(pred, min_side, metric)
    return pred, target


def check_min_size(x: torch.Tensor, minimum: int, metric: str) -> None:
    """Raise :class:`ImageError` when the (cropped) image is smaller than ``minimum`` on a side."""
    h, w = x.shape[-2:]
    if min(h, w) < minimum:
        raise ImageError(f"{metric} needs images of at least {minimum}x{minimum} pixels (after cropping), got {h}x{w}")


@lru_cache(maxsize=32)
def _gaussian_1d_cpu(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_1d(size: int, sigma: float, *, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps; its outer product is MATLAB ``fspecial('gaussian')``."""
    return _gaussian_1d_cpu(size, float(sigma)).to(device=like.device, dtype=like.dtype)


def shift_add_corr(x: torch.Tensor, taps: list[float], dim: int, stride: int = 1) -> torch.Tensor:
    """'Valid' correlation of ``x`` with 1-D ``taps`` along ``dim`` as a sum of shifted slices.

    Used for float64, where ``conv2d`` on the CPU has no fast path (about 15x slower than float32).
    """
    n_out = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, n_out) * taps[0]
    for i, t in enumerate(taps[1:], start=1):
        out.add_(x.narrow(dim, i, n_out), alpha=t)
    return _every(out, dim, stride) if stride > 1 else out


def _every(x: torch.Tensor, dim: int, stride: int) -> torch.Tensor:
    index = [slice(None)] * x.ndim
    index[dim] = slice(None, None, stride)
    return x[tuple(index)]


def sep_filter(x: torch.Tensor, k: torch.Tensor, *, stride: int = 1) -> torch.Tensor:
    """Correlate every channel of ``(N, C, H, W)`` with the separable kernel ``k ⊗ k``, 'valid' region.

    Returns ``(N, C, (H - K) // stride + 1, (W - K) // stride + 1)``.
    """
    if x.dtype == torch.float64:
        taps = k.tolist()
        return shift_add_corr(shift_add_corr(x, taps, -2, stride), taps, -1, stride)
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    kk = k.to(dtype=x.dtype)
    out = F.conv2d(flat, kk.view(1, 1, -1, 1), stride=(stride, 1))
    out = F.conv2d(out, kk.view(1, 1, 1, -1), stride=(1, stride))
    return out.reshape(n, c, out.shape[-2], out.shape[-1])
