"""EDSR: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPRW 2017 (arXiv:1707.02921). Authors' code: github.com/sanghyun-son/EDSR-PyTorch.

Post-upsampling: head conv, ``blocks`` residual blocks without batch norm (residual scaling
``res_scale``), a body conv with a long skip, a pixel-shuffle upsampler and a tail conv. The
body works on mean-free ``[0, 255]`` values (``rgb_range``) like the authors' code, so their
released checkpoints load through :func:`sruscale.weights._authors.load_edsr_checkpoint`.

Two registered settings (parameter counts as in the EDSR-PyTorch README model table):
``edsr`` = the paper model, 32 blocks x 256 features, res_scale 0.1: 40.7M (x2), 43.7M (x3), 43.1M (x4);
``edsr-baseline`` = 16 blocks x 64 features, res_scale 1: 1.37M (x2), 1.55M (x3), 1.52M (x4).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import MeanShift, PixelShuffleUpsampler, ResBlock, conv

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class EDSR(SRModel):
    """EDSR (Lim et al., CVPRW 2017), post-upsampling: head conv, ``blocks`` BN-free residual blocks,
    pixel-shuffle upsampler, tail conv, on a ``rgb_range`` scale with the mean removed.
    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 3 as published.
    """

    name = "edsr"
    framework = "post"
    scales = (2, 3, 4, 8)
    # 65+ stacked 3x3 convs at LR; capped (effective RF decays fast), sets the default tile overlap
    receptive_field = 32

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        blocks: int = 32,
        features: int = 256,
        res_scale: float = 0.1,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
    ) -> None:
        """Args:
        scale: upscaling factor.
        in_channels: 3 (RGB, as published) or 1.
        blocks: residual blocks (paper: 32; baseline: 16).
        features: channels (paper: 256; baseline: 64).
        res_scale: residual scaling (paper: 0.1; baseline: 1).
        rgb_range: value range of the body (authors: 255).
        rgb_mean: per-channel mean subtracted at the input (DIV2K mean); only the first
            value is used when ``in_channels == 1``.
        """
        super().__init__(scale=scale, in_channels=in_channels)
        mean = tuple(rgb_mean[:in_channels])
        self.sub_mean = MeanShift(mean, sign=-1, rgb_range=rgb_range)
        self.head = conv(in_channels, features)
        body: list[nn.Module] = [ResBlock(features, res_scale=res_scale) for _ in range(blocks)]
        body.append(conv(features, features))
        self.body = nn.Sequential(*body)
        self.upsample = PixelShuffleUpsampler(features, scale)
        self.tail = conv(features, in_channels)
        self.add_mean = MeanShift(mean, sign=1, rgb_range=rgb_range)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.head(self.sub_mean(x))
        feats = feats + self.body(feats)
        return self.add_mean(self.tail(self.upsample(feats)))


class EDSRBaseline(EDSR):
    """EDSR baseline (Lim et al., CVPRW 2017): 16 blocks x 64 features, no residual scaling,
    post-upsampling. ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)``; C = 3 as published."""

    name = "edsr-baseline"

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        blocks: int = 16,
        features: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
    ) -> None:
        super().__init__(
            scale=scale,
            in_channels=in_channels,
            blocks=blocks,
            features=features,
            res_scale=res_scale,
            rgb_range=rgb_range,
            rgb_mean=rgb_mean,
        )
