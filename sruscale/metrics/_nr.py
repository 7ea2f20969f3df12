"""What the no-reference metrics (NIQE, BRISQUE, PIQE) share: tensors -> 0..255 planes, the module base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from ._common import check_reduction, prepare

__all__ = ["NoReferenceModule", "luma_planes"]

#: MATLAB ``rgb2gray`` weights (Rec. 601 luma on full-range RGB)
_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def luma_planes(
    x: torch.Tensor,
    *,
    data_range: float,
    y_channel: bool,
    round_8bit: bool,
    crop_border: int,
    min_side: int,
    metric: str,
) -> list[np.ndarray]:
    """One ``(H, W)`` float64 plane on the 0..255 scale per image of ``x``.

    Args:
        x: ``(B, C, H, W)`` in ``[0, data_range]``, ``C`` = 1 or 3.
        y_channel: RGB -> Y of MATLAB ``rgb2ycbcr`` (studio range); otherwise MATLAB ``rgb2gray``.
        round_8bit: round the plane to integers (MATLAB's ``uint8`` arithmetic), gray input too.
        crop_border: pixels shaved off every side first.
        min_side: the smallest plane side the metric can use (named in the error).

    Raises:
        ImageError: bad shape, a crop or an image smaller than ``min_side``.
    """
    x, _ = prepare(
        x, x, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border, data_range=data_range,
        min_side=min_side, metric=metric,
    )  # fmt: skip
    x = x.double() * (255.0 / data_range)
    if x.shape[1] == 3:  # only without y_channel
        w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * w).sum(dim=1, keepdim=True)
    elif x.shape[1] != 1:
        x = x.mean(dim=1, keepdim=True)
    if round_8bit:
        x = x.round()
    return [p[0].cpu().numpy() for p in x]


class NoReferenceModule(torch.nn.Module):
    """A no-reference metric function as a module: stores the options, ``forward(x)`` calls ``_metric``.

    Options left out take the function's defaults, except ``reduction``: ``"mean"`` here, ``"none"``
    for the functions. Subclasses set ``_metric = staticmethod(fn)`` and type the options.
    """

    _metric: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        options.setdefault("reduction", "mean")
        check_reduction(options["reduction"])
        self.options = options

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._metric(x, **self.options)
