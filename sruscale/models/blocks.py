"""Reusable convolution blocks shared by the architectures of :mod:`sruscale.models`.

Every block works on ``(B, C, H, W)`` feature maps and keeps ``H, W`` unless it is an
upsampler (``H, W`` -> ``sH, sW``). Convolutions use zero "same" padding.

Blocks:
    :func:`conv`: plain / dilated (atrous) convolution with same padding.
    :class:`ResBlock`: conv-act-conv with identity skip, residual scaling, optional attention.
    :class:`DenseBlock`, :class:`DenseResidualBlock`: DenseNet-BC style layers (RDN / ProSR).
    :class:`SpatialPyramidPooling`: pooled context at several grid sizes, fused by a 1x1 conv.
    :class:`ChannelAttention`: squeeze-and-excitation as in RCAN.
    :class:`MeanShift`: dataset-mean normalisation held in a (non-persistent) buffer.
    Upsamplers: :class:`PixelShuffleUpsampler`, :func:`transposed_conv_upsampler`,
    :class:`NearestConvUpsampler`, :class:`BicubicUpsampler` / :func:`bicubic_upsample`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..resize import imresize

__all__ = [
    "BicubicUpsampler",
    "ChannelAttention",
    "DenseBlock",
    "DenseResidualBlock",
    "MeanShift",
    "NearestConvUpsampler",
    "PixelShuffleUpsampler",
    "ResBlock",
    "SpatialPyramidPooling",
    "bicubic_upsample",
    "conv",
    "transposed_conv_upsampler",
]


def conv(
    in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1, bias: bool = True
) -> nn.Conv2d:
    """A stride-1 convolution with zero "same" padding; ``dilation > 1`` gives an atrous conv.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: odd kernel size.
        dilation: spacing between taps; the receptive-field radius is ``dilation * (kernel_size // 2)``.
        bias: learn a bias.

    Raises:
        ValueError: for an even kernel size (no symmetric "same" padding exists).

    Example:
        >>> conv(64, 64, 3, dilation=2)(torch.rand(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd for same padding, got {kernel_size}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    pad = dilation * (kernel_size // 2)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=pad, dilation=dilation, bias=bias)


class ChannelAttention(nn.Module):
    """Channel attention (squeeze-and-excitation) of RCAN: ``x * sigmoid(up(relu(down(avgpool(x)))))``.

    Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
    ECCV 2018. The global average pool makes the output depend on the whole input, so a
    network using it is only approximately tile-invariant.

    Args:
        features: channels ``C`` of the ``(B, C, H, W)`` input.
        reduction: squeeze ratio (paper: 16).
    """

    def __init__(self, features: int, *, reduction: int = 16) -> None:
        super().__init__()
        if features // reduction < 1:
            raise ValueError(f"features // reduction must be >= 1, got {features} // {reduction}")
        self.down = nn.Conv2d(features, features // reduction, 1)
        self.up = nn.Conv2d(features // reduction, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.up(F.relu(self.down(w))))
        return x * w


class ResBlock(nn.Module):
    """Residual block ``x + res_scale * attention(conv2(act(conv1(x))))`` (EDSR, RCAN's RCAB).

    Args:
        features: channels in and out.
        kernel_size: conv kernel size.
        res_scale: residual scaling (EDSR paper: 0.1 for the 256-channel model, else 1).
        attention: optional module applied to the residual branch (e.g. :class:`ChannelAttention`).
        act: activation between the convolutions (default ReLU).
    """

    def __init__(
        self,
        features: int,
        *,
        kernel_size: int = 3,
        res_scale: float = 1.0,
        attention: nn.Module | None = None,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv(features, features, kernel_size)
        self.act = act if act is not None else nn.ReLU(inplace=True)
        self.conv2 = conv(features, features, kernel_size)
        self.attention = attention
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.conv1(x)))
        if self.attention is not None:
            out = self.attention(out)
        return x + out * self.res_scale if self.res_scale != 1 else x + out


class _DenseLayer(nn.Module):
    """DenseNet-BC layer: 1x1 bottleneck (``bottleneck * growth`` channels) -> act -> 3x3 (``growth``)."""

    def __init__(self, in_features: int, growth: int, bottleneck: int) -> None:
        super().__init__()
        mid = bottleneck * growth
        self.conv1 = nn.Conv2d(in_features, mid, 1)
        self.conv2 = conv(mid, growth, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv2(F.relu(self.conv1(x)))], dim=1)


class DenseBlock(nn.Sequential):
    """Dense block: each layer sees the concatenation of the input and all earlier layers.

    ``(B, in_features, H, W)`` -> ``(B, in_features + layers * growth, H, W)``.
    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017 (BC variant, no BN,
    as used by ProSR and RDN).

    Args:
        in_features: input channels.
        growth: channels each layer adds (growth rate).
        layers: number of layers.
        bottleneck: width multiplier of the 1x1 bottleneck (DenseNet's ``bn_size``).
    """

    def __init__(self, in_features: int, *, growth: int, layers: int, bottleneck: int = 4) -> None:
        super().__init__(*[_DenseLayer(in_features + i * growth, growth, bottleneck) for i in range(layers)])
        self.out_features = in_features + layers * growth


class DenseResidualBlock(nn.Module):
    """ProSR's dense compression unit: ``x + res_scale * compress(dense(x))`` (1x1, no bias).

    Args:
        features: channels in and out.
        growth, layers, bottleneck: see :class:`DenseBlock`.
        res_scale: residual scaling (ProSR: 0.2).
    """

    def __init__(self, features: int, *, growth: int, layers: int, bottleneck: int = 4, res_scale: float = 0.2) -> None:
        super().__init__()
        self.dense = DenseBlock(features, growth=growth, layers=layers, bottleneck=bottleneck)
        self.compress = nn.Conv2d(self.dense.out_features, features, 1, bias=False)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.compress(self.dense(x))


class SpatialPyramidPooling(nn.Module):
    """Spatial pyramid pooling: average-pool to ``bins x bins`` grids, 1x1 conv, upsample, fuse.

    ``(B, C, H, W)`` -> ``(B, C, H, W)``: the input and one context map per grid size are
    concatenated and fused back to ``C`` channels with a 1x1 convolution (PSPNet-style;
    Zhao et al., CVPR 2017). Global context: not tile-invariant, so no registered SR model
    uses it by default.

    Args:
        features: channels ``C``.
        bins: grid sizes of the pooled maps.
    """

    def __init__(self, features: int, *, bins: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        if not bins or min(bins) < 1:
            raise ValueError(f"bins must be positive grid sizes, got {bins}")
        self.bins = bins
        branch = max(1, features // len(bins))
        self.reduce = nn.ModuleList(nn.Conv2d(features, branch, 1) for _ in bins)
        self.fuse = nn.Conv2d(features + branch * len(bins), features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        maps = [x]
        for b, reduce in zip(self.bins, self.reduce, strict=True):
            pooled = F.relu(reduce(F.adaptive_avg_pool2d(x, b)))
            maps.append(F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(maps, dim=1))


class MeanShift(nn.Module):
    """Subtract (``sign=-1``) or add back (``sign=+1``) a per-channel mean, with value scaling.

    ``sign=-1``: ``(x - mean) * rgb_range``; ``sign=+1``: ``x / rgb_range + mean``. With
    ``rgb_range=255`` this maps ``[0, 1]`` images to the ``[0, 255]`` mean-free range the
    EDSR/RCAN authors trained on, so their released weights load unchanged. The mean is a
    non-persistent buffer (follows ``.to()``, never in the state dict).

    Args:
        mean: per-channel mean in ``[0, 1]`` (length 1 or C).
        sign: -1 to normalise, +1 to denormalise.
        rgb_range: value range the network body works in.
    """

    mean: torch.Tensor

    def __init__(self, mean: tuple[float, ...], *, sign: int, rgb_range: float = 1.0) -> None:
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 or +1, got {sign}")
        self.sign = sign
        self.rgb_range = float(rgb_range)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.dtype)
        if self.sign < 0:
            return (x - mean) * self.rgb_range
        return x / self.rgb_range + mean


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel convolution upsampler (Shi et al., CVPR 2016): conv to ``r^2 C`` then pixel shuffle.

    Scale 2, 3 use one stage; 4 and 8 chain x2 stages (as EDSR/RCAN). Layout matches the
    EDSR-PyTorch ``Upsampler``: indices ``0, 2, 4`` are the convolutions.

    Args:
        features: channels in and out.
        scale: 2, 3, 4 or 8.
        act: append a ReLU after each shuffle (ProSR does).

    Raises:
        ValueError: for another scale.
    """

    def __init__(self, features: int, scale: int, *, act: bool = False) -> None:
        if scale == 3:
            stages = [3]
        elif scale in (2, 4, 8):
            stages = [2] * int(math.log2(scale))
        else:
            raise ValueError(f"pixel-shuffle upsampler supports scales 2, 3, 4, 8, got {scale}")
        layers: list[nn.Module] = []
        for r in stages:
            layers += [conv(features, r * r * features, 3), nn.PixelShuffle(r)]
            if act:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def transposed_conv_upsampler(
    in_channels: int, out_channels: int, scale: int, kernel_size: int, *, bias: bool = True
) -> nn.ConvTranspose2d:
    """A transposed convolution with stride ``scale`` whose output is exactly ``scale`` times the input.

    Padding and output padding are chosen so ``(H - 1) * s - 2p + k + op == s * H``.

    Raises:
        ValueError: when ``kernel_size < scale`` (no valid padding).
    """
    if kernel_size < scale:
        raise ValueError(f"kernel_size must be >= scale, got kernel_size={kernel_size}, scale={scale}")
    pad = (kernel_size - scale + 1) // 2
    out_pad = scale - kernel_size + 2 * pad
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=scale, padding=pad, output_padding=out_pad, bias=bias
    )


class NearestConvUpsampler(nn.Sequential):
    """Nearest-neighbour resize followed by a 3x3 convolution and activation, per x2 (or x3) stage.

    Avoids the checkerboard artefacts of transposed convolutions (Odena et al., Distill 2016).

    Args:
        features: channels in and out.
        scale: 2, 3, 4 or 8.
    """

    def __init__(self, features: int, scale: int) -> None:
        if scale == 3:
            stages = [3]
        elif scale in (2, 4, 8):
            stages = [2] * int(math.log2(scale))
        else:
            raise ValueError(f"nearest+conv upsampler supports scales 2, 3, 4, 8, got {scale}")
        layers: list[nn.Module] = []
        for r in stages:
            layers += [nn.Upsample(scale_factor=r, mode="nearest"), conv(features, features, 3), nn.LeakyReLU(0.2)]
        super().__init__(*layers)


_PAD = 2  # Keys' cubic has support 2: two mirrored pixels on each side suffice for any integer upscale


@lru_cache(maxsize=16)
def _bicubic_phases(scale: int) -> torch.Tensor:
    """``(s*s, 1, 5, 5)`` float64 polyphase kernels equal to MATLAB's integer-scale bicubic.

    Output pixel ``o = s*i + p`` (0-based) samples the input at offset
    ``t_p = (p + 0.5) / s - 0.5`` from pixel ``i``; weights are Keys' cubic (a = -0.5) at
    ``t_p - k`` for taps ``k = -2..2`` (normalised, as MATLAB does).
    """
    k = torch.arange(-_PAD, _PAD + 1, dtype=torch.float64)
    t = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5
    d = (t[:, None] - k[None, :]).abs()
    w = torch.where(d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1, torch.where(d < 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0))
    w = w / w.sum(dim=1, keepdim=True)  # (s, 5): one row per phase
    return (w[:, None, :, None] * w[None, :, None, :]).reshape(scale * scale, 1, 2 * _PAD + 1, 2 * _PAD + 1)


def _symmetric_pad(x: torch.Tensor) -> torch.Tensor:
    """Mirror-pad the last two dims by 2 with edge repetition (MATLAB's ``symmetric``)."""
    x = torch.cat([x[..., 1:2, :], x[..., 0:1, :], x, x[..., -1:, :], x[..., -2:-1, :]], dim=-2)
    return torch.cat([x[..., 1:2], x[..., 0:1], x, x[..., -1:], x[..., -2:-1]], dim=-1)


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` for an integer ``scale >= 1`` as one convolution.

    Equal to :func:`sruscale.resize.imresize` (tested to float rounding) but built from
    pad/conv/pixel-shuffle only, so it traces to ONNX with dynamic height and width.
    Inputs smaller than 2 pixels fall back to :func:`imresize`.

    Args:
        x: ``(B, C, H, W)`` float tensor.
        scale: integer upscaling factor.

    Returns:
        ``(B, C, scale * H, scale * W)``, same dtype and device.
    """
    if scale == 1:
        return x
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return imresize(x, scale)
    b, c, h, w = x.shape
    weight = _bicubic_phases(scale).to(device=x.device, dtype=x.dtype)
    y = F.conv2d(_symmetric_pad(x.reshape(b * c, 1, h, w)), weight)
    return F.pixel_shuffle(y, scale).reshape(b, c, h * scale, w * scale)


class BicubicUpsampler(nn.Module):
    """Module form of :func:`bicubic_upsample` (parameter-free pre-interpolation)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        if scale < 1 or int(scale) != scale:
            raise ValueError(f"bicubic pre-interpolation needs an integer scale >= 1, got {scale}")
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bicubic_upsample(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
