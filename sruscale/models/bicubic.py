"""MATLAB-compatible bicubic interpolation as a parameter-free pseudo-model (the baseline)."""

from __future__ import annotations

import torch

from ..resize import imresize
from ._base import SRModel, store_hparams


class Bicubic(SRModel):
    """MATLAB ``imresize(x, scale, 'bicubic')`` (Keys 1981 cubic, antialiasing off for upscaling);
    the baseline row of every SR table. No weights. ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``."""

    name = "bicubic"
    framework = "pre"
    scales = (2, 3, 4, 8)
    receptive_field = 2

    @store_hparams
    def __init__(self, *, scale: int = 4, in_channels: int = 3) -> None:
        super().__init__(scale=scale, in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_native(x)  # channel-agnostic

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, self.scale)
