"""LapSRN: Lai, Huang, Ahuja, Yang, "Deep Laplacian Pyramid Networks for Fast and Accurate
Super-Resolution", CVPR 2017 (arXiv:1704.03915). Authors' code: github.com/phoenix104104/LapSRN.

Progressive: one level per x2. The feature-extraction branch runs ``depth`` 3x3 convolutions
(LeakyReLU 0.2) and a stride-2 3x3 transposed convolution, then predicts a residual image;
the image-reconstruction branch upsamples the previous level's image with a 4x4 transposed
convolution (bilinear-initialised, no bias) and adds the residual. Published on Y.
:meth:`LapSRN.forward_pyramid` returns every level for the multi-scale Charbonnier loss.

Parameter count (depth 10, 64 features, x4): 812,768 weights (812K in the paper's comparison;
813K rounded in CARN, ECCV 2018, Table 1) plus 1,474 biases.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import conv


def _bilinear_kernel(size: int) -> torch.Tensor:
    """``(size, size)`` bilinear interpolation kernel for a stride ``size // 2`` transposed conv."""
    f = math.ceil(size / 2)
    center = (2 * f - 1 - f % 2) / (2 * f)
    r = 1 - (torch.arange(size, dtype=torch.float32) / f - center).abs()
    return r[:, None] * r[None, :]


class _Level(nn.Module):
    """One pyramid level: features -> (next features, residual image)."""

    def __init__(self, features: int, channels: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [conv(features, features), nn.LeakyReLU(0.2, inplace=True)]
        layers += [
            nn.ConvTranspose2d(features, features, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        self.features = nn.Sequential(*layers)
        self.residual = conv(features, channels)
        self.image_up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.image_up.weight.zero_()
            for c in range(channels):
                self.image_up.weight[c, c] = _bilinear_kernel(4)

    def forward(self, feats: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(feats)
        return feats, self.image_up(image) + self.residual(feats)


class LapSRN(SRModel):
    """LapSRN (Lai et al., CVPR 2017), progressive: one x2 level per octave, each adding a predicted
    residual to a deconvolved image. ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)`` (the last
    level; :meth:`forward_pyramid` returns every level); C = 1 (Y) as published.
    """

    name = "lapsrn"
    framework = "progressive"
    scales = (2, 4, 8)
    # input conv + 10 LR convs + 10 convs at 2x + 10 at 4x + transposed convs: ~21 LR pixels
    receptive_field = 24

    @store_hparams
    def __init__(self, *, scale: int = 4, in_channels: int = 1, depth: int = 10, features: int = 64) -> None:
        """Args:
        scale: 2, 4 or 8 (one pyramid level per x2).
        in_channels: 1 (Y, as published) or 3.
        depth: convolutions per level (paper: 10).
        features: channels (paper: 64).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        self.head = nn.Sequential(conv(in_channels, features), nn.LeakyReLU(0.2, inplace=True))
        self.levels = nn.ModuleList(_Level(features, in_channels, depth) for _ in range(int(math.log2(scale))))

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every pyramid level: ``[(B, C, 2H, 2W), (B, C, 4H, 4W), ...]`` up to ``scale``.

        ``x`` has ``in_channels`` channels (no Y/RGB adaptation), values in ``[0, 1]``.
        """
        feats, image = self.head(x), x
        outputs = []
        for level in self.levels:
            feats, image = level(feats, image)
            outputs.append(image)
        return outputs

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pyramid(x)[-1]
