"""RCAN: Zhang, Li, Li, Wang, Zhong, Fu, "Image Super-Resolution Using Very Deep Residual
Channel Attention Networks", ECCV 2018 (arXiv:1807.02758). Authors' code: github.com/yulunzhang/RCAN.

Post-upsampling residual-in-residual network: ``groups`` residual groups, each of ``blocks``
residual channel-attention blocks (RCAB: conv-ReLU-conv-channel attention) and a conv with a
short skip; a body conv with a long skip; a pixel-shuffle upsampler and a tail conv. Works on
mean-free ``[0, 255]`` values like the authors' code. Paper setting 10 groups x 20 blocks x 64
features, reduction 16: 15.59M parameters at x4 (the paper's "about 16M").

Channel attention pools globally, so tiled inference is only approximately equal to
whole-image inference.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import ChannelAttention, MeanShift, PixelShuffleUpsampler, ResBlock, conv
from .edsr import DIV2K_MEAN


class ResidualGroup(nn.Module):
    """``x + conv(RCAB_n(...RCAB_1(x)))``."""

    def __init__(self, features: int, *, blocks: int, reduction: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *[ResBlock(features, attention=ChannelAttention(features, reduction=reduction)) for _ in range(blocks)]
        )
        self.conv = conv(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.blocks(x))


class RCAN(SRModel):
    """RCAN (Zhang et al., ECCV 2018), post-upsampling residual-in-residual network: ``groups`` groups
    of ``blocks`` channel-attention blocks, pixel-shuffle upsampler. ``(B, C, H, W)`` in ``[0, 1]``
    -> ``(B, C, sH, sW)``; C = 3 as published.
    """

    name = "rcan"
    framework = "post"
    scales = (2, 3, 4, 8)
    # ~400 stacked 3x3 convs plus global pooling; capped, sets the default tile overlap
    receptive_field = 32

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        groups: int = 10,
        blocks: int = 20,
        features: int = 64,
        reduction: int = 16,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 3 (RGB, as published) or 1.
        groups: residual groups (paper: 10).
        blocks: RCABs per group (paper: 20).
        features: channels (paper: 64).
        reduction: channel-attention squeeze ratio (paper: 16).
        rgb_range, rgb_mean: input normalisation of the authors' code.
        """
        super().__init__(scale=scale, in_channels=in_channels)
        mean = tuple(rgb_mean[:in_channels])
        self.sub_mean = MeanShift(mean, sign=-1, rgb_range=rgb_range)
        self.head = conv(in_channels, features)
        body: list[nn.Module] = [ResidualGroup(features, blocks=blocks, reduction=reduction) for _ in range(groups)]
        body.append(conv(features, features))
        self.body = nn.Sequential(*body)
        self.upsample = PixelShuffleUpsampler(features, scale)
        self.tail = conv(features, in_channels)
        self.add_mean = MeanShift(mean, sign=1, rgb_range=rgb_range)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.head(self.sub_mean(x))
        feats = feats + self.body(feats)
        return self.add_mean(self.tail(self.upsample(feats)))
