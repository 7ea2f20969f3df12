"""FSRCNN: Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016 (arXiv:1608.00367).

Feature extraction 5x5 (d), shrinking 1x1 (s), m mapping layers 3x3 (s), expanding 1x1 (d),
all with PReLU, then a 9x9 transposed convolution with stride = scale. Published on Y.
Paper setting FSRCNN(d=56, s=12, m=4): 12,464 weights for x3 (Table 1 counts weights only).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import bicubic_upsample


class FSRCNN(SRModel):
    """FSRCNN (Dong et al., ECCV 2016), post-upsampling: extract ``d``, shrink to ``s``, ``m`` mapping
    layers, expand, one strided deconvolution.
    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 1 (Y) as published.
    """

    name = "fsrcnn"
    framework = "post"
    scales = (2, 3, 4, 8)
    receptive_field = 8

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 3,
        in_channels: int = 1,
        d: int = 56,
        s: int = 12,
        m: int = 4,
        residual: bool = False,
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 1 (Y, as published) or 3.
        d: feature channels; s: shrunk channels; m: number of mapping layers.
        residual: add MATLAB bicubic of the input to the output (not in the paper;
            converges much faster).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        self.residual = residual
        layers: list[nn.Module] = [nn.Conv2d(in_channels, d, 5, padding=2), nn.PReLU(d)]
        layers += [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # output size = (H - 1) * scale - 2 * pad + 9 + output_padding == H * scale
        pad = (9 - scale + 1) // 2
        self.deconv = nn.ConvTranspose2d(
            d, in_channels, 9, stride=scale, padding=pad, output_padding=scale - 9 + 2 * pad
        )
        nn.init.normal_(self.deconv.weight, std=0.001)
        if self.deconv.bias is not None:
            nn.init.zeros_(self.deconv.bias)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        out = self.deconv(self.body(x))
        if self.residual:
            out = out + bicubic_upsample(x, self.scale)  # == imresize, ONNX-traceable
        return out
