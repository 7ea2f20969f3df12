"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016 (arXiv:1609.05158).

Three convolutions at LR resolution (5x5 -> 3x3 -> 3x3, 64 -> 32 -> s^2 channels, tanh)
then a pixel shuffle. Published on the Y channel.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import bicubic_upsample


class ESPCN(SRModel):
    """ESPCN (Shi et al., CVPR 2016), post-upsampling: three convolutions at LR resolution and a
    pixel shuffle.
    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 1 (Y) as published.
    """

    name = "espcn"
    framework = "post"
    scales = (2, 3, 4, 8)
    receptive_field = 4

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 3,
        in_channels: int = 1,
        features: tuple[int, int] = (64, 32),
        residual: bool = False,
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 1 (Y, as published) or 3.
        features: channels of the first two layers (paper: 64, 32).
        residual: add MATLAB bicubic of the input to the output (not in the paper;
            converges much faster).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        f1, f2 = features
        self.residual = residual
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, f1, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(f1, f2, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(f2, in_channels * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual:
            out = out + bicubic_upsample(x, self.scale)  # == imresize, ONNX-traceable
        return out
