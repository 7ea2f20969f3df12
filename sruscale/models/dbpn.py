"""D-DBPN: Haris, Shakhnarovich, Ukita, "Deep Back-Projection Networks For Super-Resolution",
CVPR 2018 (arXiv:1803.02735). Authors' code: github.com/alterzero/DBPN-Pytorch.

Iterative up-and-down sampling: after a 3x3 (``features``) and a 1x1 (``base_features``)
feature extraction, ``stages`` up-projection and ``stages - 1`` down-projection units
alternate; each unit back-projects its reconstruction error, and (dense variant) takes the
1x1-compressed concatenation of all previous units of the other kind. The concatenated HR
maps of all up-projection units give the image through a 3x3 conv. PReLU activations. The
projection kernel/stride/padding follow the paper per scale: x2 6/2/2, x4 8/4/2, x8 12/8/2.

Paper setting (T = 7 stages, 256/64 features) at x4: 10,426,358 parameters (10,426K).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import SRModel, store_hparams

#: scale -> (kernel, stride, padding) of the projection units (paper, Sec. 4.1)
PROJECTION = {2: (6, 2, 2), 4: (8, 4, 2), 8: (12, 8, 2)}


def _conv_act(conv: nn.Module) -> nn.Sequential:
    return nn.Sequential(conv, nn.PReLU())


class _Projection(nn.Module):
    """Up-projection (``up=True``): LR -> HR, or down-projection: HR -> LR, with error feedback."""

    def __init__(self, features: int, scale: int, *, up: bool, inputs: int) -> None:
        super().__init__()
        k, s, p = PROJECTION[scale]

        def there() -> nn.Module:
            layer = nn.ConvTranspose2d if up else nn.Conv2d
            return _conv_act(layer(features, features, k, stride=s, padding=p))

        def back() -> nn.Module:
            layer = nn.Conv2d if up else nn.ConvTranspose2d
            return _conv_act(layer(features, features, k, stride=s, padding=p))

        self.compress = _conv_act(nn.Conv2d(inputs * features, features, 1)) if inputs > 1 else None
        self.conv1, self.conv2, self.conv3 = there(), back(), there()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.compress is not None:
            x = self.compress(x)
        h0 = self.conv1(x)
        return self.conv3(self.conv2(h0) - x) + h0


class DBPN(SRModel):
    """D-DBPN (Haris et al., CVPR 2018), iterative up-and-down sampling: ``stages`` back-projection
    units with dense connections, HR maps concatenated and fused. ``(B, C, H, W)`` in ``[0, 1]``
    -> ``(B, C, sH, sW)``; C = 3 as published; H, W multiples of :attr:`multiple_of`.
    """

    name = "dbpn"
    framework = "iterative"
    scales = (2, 4, 8)
    half_safe = False  # not verified
    # 13 projection units with 8x8 kernels at x4; capped, sets the default tile overlap
    receptive_field = 32

    @store_hparams
    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        features: int = 256,
        base_features: int = 64,
        stages: int = 7,
    ) -> None:
        """Args:
        scale: 2, 4 or 8.
        in_channels: 3 (RGB, as published) or 1.
        features: channels of the first feature conv (paper: 256).
        base_features: channels of the projection units (paper: 64).
        stages: number of up-projection units T (D-DBPN: 7).
        """
        super().__init__(scale=scale, in_channels=in_channels)
        if stages < 1:
            raise ValueError(f"stages must be >= 1, got {stages}")
        self.features = nn.Sequential(
            _conv_act(nn.Conv2d(in_channels, features, 3, padding=1)),
            _conv_act(nn.Conv2d(features, base_features, 1)),
        )
        self.ups = nn.ModuleList(_Projection(base_features, scale, up=True, inputs=max(1, i)) for i in range(stages))
        self.downs = nn.ModuleList(_Projection(base_features, scale, up=False, inputs=i + 1) for i in range(stages - 1))
        self.reconstruct = nn.Conv2d(stages * base_features, in_channels, 3, padding=1)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        highs = [self.ups[0](self.features(x))]
        lows: list[torch.Tensor] = []
        for i, down in enumerate(self.downs):  # newest first, as the authors concatenate
            lows.insert(0, down(torch.cat(highs, dim=1)))
            highs.insert(0, self.ups[i + 1](torch.cat(lows, dim=1)))
        return self.reconstruct(torch.cat(highs, dim=1))
