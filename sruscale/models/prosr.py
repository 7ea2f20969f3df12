"""ProSR: Wang, Perazzi, McWilliams, Sorkine-Hornung, Sorkine-Hornung, Schroers, "A Fully
Progressive Approach to Single-Image Super-Resolution", CVPR Workshops (NTIRE) 2018
(arXiv:1804.02900). Authors' code: github.com/fperazzi/proSR.

Progressive x2 -> x4 -> x8 pyramid of dense compression units (dense residual blocks of
DenseNet-BC layers, 1x1 compression, residual scaling). Each level: (1x1 level compression,)
its dense residual blocks and a 3x3 conv with a skip, then a pixel-shuffle x2 (with ReLU); a
3x3 reconstruction conv turns the features into the image of that level. Every target scale
has its own input conv, so the x2 and x4 sub-networks can be trained first (curriculum) and
grown: :meth:`ProSR.forward_pyramid` takes ``max_level`` and a ``blend`` factor that fades a
new level in over the bilinear upsampling of the previous one, as in the authors' training.

Defaults are the authors' full ProSR (``options/prosr.yaml``): 160 initial features, growth
40, bottleneck 4, 9 / 3 / 1 dense residual blocks of 8 layers, residual scaling 0.2; at x8
this gives 15.53M parameters. Zero padding instead of the authors' reflection padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SRModel, store_hparams
from .blocks import DenseResidualBlock, MeanShift, PixelShuffleUpsampler, conv
from .edsr import DIV2K_MEAN


class _PyramidLevel(nn.Module):
    def __init__(
        self, features: int, *, blocks: tuple[int, ...], growth: int, bottleneck: int, res_scale: float, first: bool
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [] if first else [nn.Conv2d(features, features, 1, bias=False)]
        layers += [
            DenseResidualBlock(features, growth=growth, layers=n, bottleneck=bottleneck, res_scale=res_scale)
            for n in blocks
        ]
        layers.append(conv(features, features))
        self.body = nn.Sequential(*layers)
        self.upsample = PixelShuffleUpsampler(features, 2, act=True)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.upsample(feats + self.body(feats))


class ProSR(SRModel):
    """ProSR (Wang et al., CVPRW 2018), progressive: dense-block pyramid, one x2 level per octave,
    grown level by level in training (:attr:`pyramid_curriculum`). ``(B, C, H, W)`` in ``[0, 1]``
    -> ``(B, C, sH, sW)``; C = 3 as published.
    """

    name = "prosr"
    framework = "progressive"
    scales = (2, 4, 8)
    half_safe = False  # deep dense features on a [0, 255] range; not verified in fp16
    # >100 stacked convs; capped, sets the default tile overlap
    receptive_field = 32
    pyramid_curriculum = True

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 8,
        in_channels: int = 3,
        features: int = 160,
        growth: int = 40,
        bottleneck: int = 4,
        level_config: tuple[tuple[int, ...], ...] = ((8,) * 9, (8,) * 3, (8,)),
        res_scale: float = 0.2,
        rgb_range: float = 255.0,
        rgb_mean: tuple[float, float, float] = DIV2K_MEAN,
    ) -> None:
        """Args:
        scale: 2, 4 or 8; the pyramid has ``log2(scale)`` levels.
        in_channels: 3 (RGB, as published) or 1.
        features: channels of every level (``num_init_features``, paper: 160).
        growth: dense growth rate (paper: 40).
        bottleneck: dense 1x1 bottleneck multiplier (paper: 4).
        level_config: per level, the layer count of each dense residual block
            (paper: 9 blocks, 3 blocks, 1 block, 8 layers each); needs ``log2(scale)`` entries.
        res_scale: residual scaling of the dense residual blocks (paper: 0.2).
        rgb_range, rgb_mean: input normalisation (authors: DIV2K mean, std 1/255).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        n_levels = int(math.log2(scale))
        if len(level_config) < n_levels:
            raise ValueError(f"level_config needs {n_levels} levels for x{scale}, got {len(level_config)}")
        mean = tuple(rgb_mean[:in_channels])
        self.sub_mean = MeanShift(mean, sign=-1, rgb_range=rgb_range)
        self.add_mean = MeanShift(mean, sign=1, rgb_range=rgb_range)
        self.init_convs = nn.ModuleList(conv(in_channels, features) for _ in range(n_levels))
        self.levels = nn.ModuleList(
            _PyramidLevel(
                features,
                blocks=tuple(level_config[i]),
                growth=growth,
                bottleneck=bottleneck,
                res_scale=res_scale,
                first=i == 0,
            )
            for i in range(n_levels)
        )
        self.reconstruct = nn.ModuleList(conv(features, in_channels) for _ in range(n_levels))

    def forward_pyramid(
        self, x: torch.Tensor, *, max_level: int | None = None, blend: float = 1.0
    ) -> list[torch.Tensor]:
        """The image at every level up to ``max_level``: ``[(B, C, 2H, 2W), ..., (B, C, 2^L H, 2^L W)]``.

        Args:
            x: ``(B, in_channels, H, W)`` in ``[0, 1]``.
            max_level: deepest level to run (1 = x2, ..., ``log2(scale)``, the default); the
                input conv of that level is used, as in the authors' per-scale training.
            blend: in ``[0, 1]``; below 1 the last level's image is mixed with the bilinear x2
                of the previous level's image (``blend * new + (1 - blend) * old``), which
                fades a newly added level in during curriculum training.

        Raises:
            ValueError: ``max_level`` out of range or ``blend`` outside ``[0, 1]``.
        """
        n_levels = len(self.levels)
        level = n_levels if max_level is None else max_level
        if not 1 <= level <= n_levels:
            raise ValueError(f"max_level must be in 1..{n_levels}, got {max_level}")
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1], got {blend}")
        return self._run(x, level, blend, every_level=True)

    def _run(self, x: torch.Tensor, level: int, blend: float, *, every_level: bool) -> list[torch.Tensor]:
        feats = self.init_convs[level - 1](self.sub_mean(x))
        outputs: list[torch.Tensor] = []
        for i in range(level):
            feats = self.levels[i](feats)
            last = i == level - 1
            if not (every_level or last or (blend < 1.0 and i == level - 2)):
                continue
            img = self.reconstruct[i](feats)
            if last and blend < 1.0 and outputs:
                prev = F.interpolate(outputs[-1], scale_factor=2, mode="bilinear", align_corners=False)
                img = blend * img + (1 - blend) * prev
            outputs.append(img)
        return [self.add_mean(o) for o in outputs]

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, len(self.levels), 1.0, every_level=False)[-1]
