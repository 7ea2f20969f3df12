"""SRCNN: Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks",
TPAMI 2016 (arXiv:1501.00092); first version ECCV 2014.

Pre-upsampling: MATLAB bicubic to the target size, then three convolutions (patch
extraction f1 x f1 -> n1, non-linear mapping f2 x f2 -> n2, reconstruction f3 x f3) with ReLU.
Published on the Y channel. The paper uses no padding (the output shrinks); here the
convolutions are zero-padded so the output keeps the full size.

Parameter counts (the paper counts weights only, Sec. 4.3 / Table of network settings):
9-1-5: 8,032; 9-5-5: 57,184 (the default, the best TPAMI setting).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import bicubic_upsample, conv


class SRCNN(SRModel):
    """SRCNN (Dong et al., TPAMI 2016), pre-upsampling: bicubic to ``(B, C, sH, sW)``, then three
    convolutions at HR resolution.
    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 1 (Y) as published.
    """

    name = "srcnn"
    framework = "pre"
    scales = (2, 3, 4)
    # (9 + 5 + 5 - 3) / 2 = 8 HR pixels -> ceil(8 / 2) = 4 LR pixels at x2, + 2 for bicubic support
    receptive_field = 6

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 3,
        in_channels: int = 1,
        kernel_sizes: tuple[int, int, int] = (9, 5, 5),
        features: tuple[int, int] = (64, 32),
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 1 (Y, as published) or 3.
        kernel_sizes: f1, f2, f3 (paper: 9-5-5, or 9-1-5 for the ECCV network).
        features: n1, n2 (paper: 64, 32).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        f1, f2, f3 = kernel_sizes
        n1, n2 = features
        self.body = nn.Sequential(
            conv(in_channels, n1, f1),
            nn.ReLU(inplace=True),
            conv(n1, n2, f2),
            nn.ReLU(inplace=True),
            conv(n2, in_channels, f3),
        )

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(bicubic_upsample(x, self.scale))
