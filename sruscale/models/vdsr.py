"""VDSR: Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016 (arXiv:1511.04587).

Pre-upsampling: MATLAB bicubic to the target size, 20 3x3 convolutions (64 channels, ReLU)
predict the residual, added back to the interpolated image (global residual learning).
Published on the Y channel. 665k parameters with biases (664,704 weights + 1,217 biases);
the 665K figure is the one quoted in later comparisons (e.g. CARN, ECCV 2018, Table 1).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import bicubic_upsample, conv


class VDSR(SRModel):
    """VDSR (Kim et al., CVPR 2016), pre-upsampling: bicubic to ``(B, C, sH, sW)``, ``depth`` 3x3
    convolutions predicting the residual.
    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 1 (Y) as published.
    """

    name = "vdsr"
    framework = "pre"
    scales = (2, 3, 4)
    # 20 layers: radius 20 HR pixels -> 10 LR pixels at x2, + 2 for bicubic support
    receptive_field = 12

    @store_hparams
    def __init__(self, *, scale: int = 3, in_channels: int = 1, depth: int = 20, features: int = 64) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 1 (Y, as published) or 3.
        depth: number of convolution layers, first and last included (paper: 20).
        features: channels of the hidden layers (paper: 64).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        layers: list[nn.Module] = [conv(in_channels, features), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv(features, features), nn.ReLU(inplace=True)]
        layers.append(conv(features, in_channels))
        self.body = nn.Sequential(*layers)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        up = bicubic_upsample(x, self.scale)
        return up + self.body(up)
