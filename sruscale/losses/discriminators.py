"""Discriminators for GAN training: VGG-style (SRGAN), U-Net with spectral norm (Real-ESRGAN),
and a feature-level discriminator on frozen backbone features (SRFeat).

Every discriminator maps ``(B, C, H, W)`` images in ``[0, 1]`` to raw logits (no sigmoid):
``(B, 1)`` for :class:`VGGStyleDiscriminator` and :class:`FeatureDiscriminator`,
``(B, 1, H, W)`` for :class:`UNetDiscriminatorSN`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .._config import parse_dataclass
from ..errors import ConfigError
from ..metrics.features import BACKBONES, FeatureExtractor, backbone_channels, backbone_layers, load_backbone
from ._reduce import check_image

__all__ = [
    "DISCRIMINATORS",
    "FeatureDiscriminator",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "build_discriminator",
]

Norm = Literal["batch", "spectral", "none"]


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, norm: Norm) -> list[nn.Module]:
    """conv (+ norm) + LeakyReLU(0.2); the conv has no bias when batch norm follows it."""
    conv: nn.Module = nn.Conv2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if kernel % 2 else 1, bias=norm != "batch"
    )
    if norm == "spectral":
        conv = spectral_norm(conv)
    layers: list[nn.Module] = [conv]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2))
    return layers


def _check_norm(norm: str) -> None:
    if norm not in ("batch", "spectral", "none"):
        raise ValueError(f"norm must be 'batch', 'spectral' or 'none', got {norm!r}")


class _VGGBody(nn.Module):
    """SRGAN's conv stack: pairs of (3x3 stride 1, 4x4 stride 2) convs, channels doubling, then a dense head."""

    def __init__(self, *, in_channels: int, num_feat: int, num_stages: int, norm: Norm, pool_size: int) -> None:
        super().__init__()
        _check_norm(norm)
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_feat, 3, padding=1), nn.LeakyReLU(0.2)]
        layers += _conv(num_feat, num_feat, 4, 2, norm)
        ch = num_feat
        for _ in range(num_stages - 1):
            out = min(ch * 2, 8 * num_feat)
            layers += _conv(ch, out, 3, 1, norm) + _conv(out, out, 4, 2, norm)
            ch = out
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        dense1: nn.Module = nn.Linear(ch * pool_size * pool_size, 1024)
        dense2: nn.Module = nn.Linear(1024, 1)
        if norm == "spectral":
            dense1, dense2 = spectral_norm(dense1), spectral_norm(dense2)
        self.head = nn.Sequential(nn.Flatten(), dense1, nn.LeakyReLU(0.2), dense2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)))


class VGGStyleDiscriminator(nn.Module):
    """SRGAN discriminator (Ledig et al., CVPR 2017, Fig. 4): 8 conv layers 64 -> 512, dense 1024, dense 1.

    Adaptive average pooling to ``pool_size`` before the dense layers lets it take any patch
    size (SRGAN: 96, ESRGAN: 128); stride-2 convs are 4x4 as in ESRGAN's ``VGGStyleDiscriminator``.

    Args:
        in_channels: 3 for RGB, 1 for Y-only generators.
        num_feat: channels of the first stage (doubling, capped at ``8 * num_feat``).
        num_stages: number of stride-2 stages (4 in SRGAN, 5 in ESRGAN-128).
        norm: ``"batch"`` (SRGAN), ``"spectral"``, or ``"none"`` (use with WGAN-GP).
        pool_size: spatial size fed to the dense head.

    Example:
        >>> VGGStyleDiscriminator()(torch.rand(2, 3, 96, 96)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_feat: int = 64,
        num_stages: int = 4,
        norm: Norm = "batch",
        pool_size: int = 4,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.net = _VGGBody(
            in_channels=in_channels, num_feat=num_feat, num_stages=num_stages, norm=norm, pool_size=pool_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> logits ``(B, 1)``."""
        check_image(x, "x")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got shape {tuple(x.shape)}")
        return self.net(x)


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalisation (Wang et al., Real-ESRGAN, ICCVW 2021).

    Gives per-pixel realness logits, so the generator gets local feedback. Layer names
    follow Real-ESRGAN's ``UNetDiscriminatorSN`` (``conv0`` ... ``conv9``); spectral norm uses
    ``torch.nn.utils.parametrizations`` (state-dict keys ``convN.parametrizations.weight.*``).

    Args:
        in_channels: 3 for RGB, 1 for Y-only generators.
        num_feat: channels of the first level (64 in Real-ESRGAN).
        skip_connection: add encoder features to the decoder (U-Net skips).

    Raises (forward):
        ValueError: height or width not a multiple of 8.

    Example:
        >>> UNetDiscriminatorSN()(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 1, 32, 32])
    """

    multiple_of = 8

    def __init__(self, *, in_channels: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.skip_connection = skip_connection
        nf = num_feat
        sn = spectral_norm
        self.conv0 = nn.Conv2d(in_channels, nf, 3, 1, 1)
        # downsample
        self.conv1 = sn(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = sn(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = sn(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        # upsample
        self.conv4 = sn(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = sn(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = sn(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        # extra
        self.conv7 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = sn(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` with ``H, W`` multiples of 8 -> logits ``(B, 1, H, W)``."""
        check_image(x, "x")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got shape {tuple(x.shape)}")
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"UNetDiscriminatorSN needs H and W that are multiples of 8, got shape {tuple(x.shape)}")
        act = F.leaky_relu
        x0 = act(self.conv0(x), 0.2)
        x1 = act(self.conv1(x0), 0.2)
        x2 = act(self.conv2(x1), 0.2)
        x3 = act(self.conv3(x2), 0.2)
        x3 = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = act(self.conv4(x3), 0.2)
        if self.skip_connection:
            x4 = x4 + x2
        x4 = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = act(self.conv5(x4), 0.2)
        if self.skip_connection:
            x5 = x5 + x1
        x5 = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = act(self.conv6(x5), 0.2)
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6), 0.2)
        out = act(self.conv8(out), 0.2)
        return self.conv9(out)


class FeatureDiscriminator(nn.Module):
    """Feature-level discriminator (Park et al., SRFeat, ECCV 2018).

    Judges the frozen backbone's feature map of an image (SRFeat: VGG19 ``relu5_4``)
    instead of its pixels, pushing the generator towards realistic structure rather than
    high-frequency noise. Gradients flow through the frozen backbone to the image.

    The backbone is a submodule (it moves with ``.to()`` and is saved in the state dict);
    its parameters have ``requires_grad=False``, so only the head trains.

    Args:
        backbone: a frozen :class:`~sruscale.losses.FeatureExtractor` that provides ``layer``.
        layer: the feature map to judge.
        num_feat: channels of the first conv stage on the features.
        num_stages: stride-2 stages on the feature map (SRFeat: 2 on the 1/16 map of relu5_4).
        norm: ``"batch"``, ``"spectral"`` or ``"none"``.
        pool_size: spatial size fed to the dense head.

    Example:
        >>> disc = FeatureDiscriminator(VGG19Features(layers=["relu5_4"]), layer="relu5_4")
        >>> disc(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        backbone: FeatureExtractor,
        *,
        layer: str = "relu5_4",
        num_feat: int = 64,
        num_stages: int = 2,
        norm: Norm = "batch",
        pool_size: int = 1,
    ) -> None:
        super().__init__()
        if layer not in backbone.layers:
            raise ValueError(f"layer {layer!r} is not extracted by the backbone; it provides {list(backbone.layers)}")
        self.backbone = backbone
        self.layer = layer
        channels = backbone_channels(backbone.arch, layer)
        self.net = _VGGBody(
            in_channels=channels, num_feat=num_feat, num_stages=num_stages, norm=norm, pool_size=pool_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3 or 1, H, W)`` images in ``[0, 1]`` -> logits ``(B, 1)``."""
        return self.net(self.backbone(x)[self.layer])


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "vgg": VGGStyleDiscriminator,
    "unet": UNetDiscriminatorSN,
    "feature": FeatureDiscriminator,
}

@dataclass(frozen=True)
class _VGGKeys:
    """Recipe keys of ``type = "vgg"`` (None: the constructor's default)."""

    in_channels: int | None = None
    num_feat: int | None = None
    num_stages: int | None = None
    norm: str | None = None
    pool_size: int | None = None


@dataclass(frozen=True)
class _UNetKeys:
    """Recipe keys of ``type = "unet"``."""

    in_channels: int | None = None
    num_feat: int | None = None
    skip_connection: bool | None = None


@dataclass(frozen=True)
class _FeatureKeys:
    """Recipe keys of ``type = "feature"``."""

    backbone: str = "vgg19"
    layer: str = "relu5_4"
    weights_path: str | None = None
    num_feat: int | None = None
    num_stages: int | None = None
    norm: str | None = None
    pool_size: int | None = None


_DISC_KEYS: dict[str, type] = {"vgg": _VGGKeys, "unet": _UNetKeys, "feature": _FeatureKeys}


def build_discriminator(
    spec: Mapping[str, Any] | str,
    *,
    in_channels: int | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
    key: str = "discriminator",
) -> nn.Module:
    """A discriminator from a recipe table such as ``{"type": "unet", "num_feat": 64}`` (or just ``"unet"``).

    Types and keys:
        ``vgg``: ``in_channels``, ``num_feat``, ``num_stages``, ``norm``, ``pool_size``;
        ``unet``: ``in_channels``, ``num_feat``, ``skip_connection``;
        ``feature``: ``backbone`` (default ``"vgg19"``), ``layer`` (default ``"relu5_4"``),
        ``weights_path`` (default: ``backbone_weights``, else the torch hub cache),
        ``num_feat``, ``num_stages``, ``norm``, ``pool_size``.

    Args:
        spec: the table (``type`` is required), or a type name alone.
        in_channels: the generator's channel count (1 for Y-only models); fills in
            ``in_channels`` for ``vgg``/``unet`` when the table has none (ignored by ``feature``,
            whose backbone takes 1 or 3 channels).
        backbone_weights: weights file for the ``feature`` type when the spec has no ``weights_path``.
        key: name of the table in error messages.

    Raises:
        ConfigError: unknown type, unknown key, wrong value type or invalid value (the key is named).
        CheckpointError: ``feature`` type without backbone weights.
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{key}: expected a table, got {type(spec).__name__}")
    kind = spec.get("type")
    if kind not in DISCRIMINATORS:
        hint = difflib.get_close_matches(str(kind), DISCRIMINATORS, n=1)
        raise ConfigError(
            f"{key}.type: unknown discriminator {kind!r}; choose from {sorted(DISCRIMINATORS)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    keys = _DISC_KEYS[kind]
    table = {name: value for name, value in spec.items() if name != "type"}
    parsed = parse_dataclass(keys, table, key, context=f" for discriminator {kind!r}")
    params: dict[str, Any] = {k: v for k, v in dataclasses.asdict(parsed).items() if v is not None}
    for name, value in params.items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"{key}.{name}: must be >= 1, got {value!r}")
    if in_channels is not None and "in_channels" in {f.name for f in dataclasses.fields(keys)}:
        params.setdefault("in_channels", in_channels)
    try:
        if kind != "feature":
            return DISCRIMINATORS[kind](**params)
        arch = params.pop("backbone", "vgg19")
        layer = params.pop("layer", "relu5_4")
        weights = params.pop("weights_path", backbone_weights)
        if arch not in BACKBONES:
            raise ConfigError(f"{key}.backbone: unknown backbone {arch!r}; choose from {list(BACKBONES)}")
        if layer not in backbone_layers(arch):
            raise ConfigError(f"{key}.layer: unknown {arch} layer {layer!r}; choose from {list(backbone_layers(arch))}")
        backbone = load_backbone(arch, layers=[layer], weights_path=weights)
        return FeatureDiscriminator(backbone, layer=layer, **params)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{key}: {exc}") from None
