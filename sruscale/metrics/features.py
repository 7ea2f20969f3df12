"""Frozen ImageNet classifiers as feature extractors: VGG19 and ResNet-18/34/50, no torchvision.

Parameter names follow torchvision's state-dict layout exactly (``features.34.weight`` for
VGG19; ``conv1.weight``, ``bn1.running_var``, ``layer4.2.bn3.weight`` for ResNet), so the
files torchvision downloads load as they are. Nothing is ever downloaded: weights come
from an explicit file (``--backbone-weights FILE``) or the torch hub cache
(``torch.hub.get_dir()/checkpoints``, where torchvision stores them), and
:class:`~sruscale.errors.CheckpointError` says which file to get when neither exists.

Only the layers up to the deepest requested one are built; the classifier head
(``classifier.*``, ``fc.*``) is never built, and its keys in a file are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_image
from ..errors import CheckpointError
from ..weights._files import mismatch_report, read_state_dict

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "METRIC_TRUNKS",
    "TORCHVISION_FILES",
    "AlexNetFeatures",
    "FeatureExtractor",
    "ResNetFeatures",
    "VGG16Features",
    "VGG19Features",
    "backbone_channels",
    "backbone_layers",
    "create_backbone",
    "find_backbone_weights",
    "load_backbone",
    "read_state_dict",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: backbones of the perceptual loss and the feature discriminator
BACKBONES = ("vgg19", "resnet18", "resnet34", "resnet50")
#: further trunks, for LPIPS (:mod:`sruscale.metrics.lpips`)
METRIC_TRUNKS = ("vgg16", "alexnet")

_URL = "https://download.pytorch.org/models/"
#: torchvision's file names in the hub cache, preferred (current) name first.
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "vgg19": ("vgg19-dcbb9e9d.pth",),
    "vgg16": ("vgg16-397923af.pth",),
    "alexnet": ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth"),
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "resnet34": ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth"),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"),
}


class FeatureExtractor(nn.Module):
    """Base class: ImageNet normalisation, frozen parameters, always in eval mode.

    Subclasses build the trunk with torchvision's attribute names and implement
    ``_extract(x) -> dict[str, Tensor]`` on normalised input.

    Attributes:
        arch: ``"vgg19"``, ``"resnet18"``, ``"resnet34"`` or ``"resnet50"``.
        layers: the layer names :meth:`forward` returns, in order.
    """

    arch: str = ""
    layers: tuple[str, ...]
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, *, layers: Sequence[str], normalize: bool = True) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(dict.fromkeys(layers))
        available = backbone_layers(self.arch)
        unknown = [name for name in layers if name not in available]
        if not layers or unknown:
            raise ValueError(
                f"{self.arch}: unknown layer(s) {unknown or '(none given)'}; choose from {list(available)}"
            )
        self.layers = layers
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _finish(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureExtractor:  # noqa: ARG002 - frozen by design
        """No-op: a feature extractor stays in eval mode (BatchNorm uses running statistics)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of ``x`` at :attr:`layers`.

        Args:
            x: ``(B, 3, H, W)`` RGB (or ``(B, 1, H, W)`` luma, repeated to 3 channels) in ``[0, 1]``.

        Returns:
            ``{layer: (B, C_l, H_l, W_l)}`` in the order of :attr:`layers`. Gradients flow to
            ``x``; the extractor's own parameters are frozen.

        Raises:
            ValueError: not 4-D, or not 1 or 3 channels.
        """
        check_image(x, "x")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"{self.arch}: expected 1 or 3 channels, got shape {tuple(x.shape)}")
        if self.normalize:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self._extract(x)

    def _extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_torchvision_state(self, state: Mapping[str, torch.Tensor], *, source: str = "state dict") -> None:
        """Load a torchvision-format state dict (the classifier head and deeper layers are ignored).

        Raises:
            CheckpointError: a key this extractor needs is missing, a shape differs from
                torchvision's, or a key is not part of torchvision's ``arch`` layout.
        """
        layout = _torchvision_layout(self.arch)
        own = self.state_dict()
        required = [k for k in own if not k.endswith("num_batches_tracked")]
        missing = [k for k in required if k not in state]
        unexpected = [k for k in state if k not in layout]
        shapes = [
            f"{k}: expected {layout[k]}, got {tuple(state[k].shape)}"
            for k in state
            if k in layout and tuple(state[k].shape) != layout[k]
        ]
        report = mismatch_report(missing, unexpected, shapes)
        if report:
            raise CheckpointError(
                f"{source}: not a torchvision {self.arch} state dict ({report}); "
                f"expected the file {_URL}{TORCHVISION_FILES[self.arch][0]}"
            )
        self.load_state_dict({k: state[k] for k in own if k in state}, strict=False)


# --------------------------------------------------------------------------- VGG16 / VGG19

_VGG_CFGS: dict[str, tuple[int | str, ...]] = {
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}
_VGG19_CFG = _VGG_CFGS["vgg19"]


def _vgg_names(cfg: tuple[int | str, ...]) -> dict[str, int]:
    """``{"conv1_1": 0, "relu1_1": 1, ..., "conv5_4": 34, "relu5_4": 35, "pool5": 36}`` (VGG19's)."""
    names: dict[str, int] = {}
    index, block, conv = 0, 1, 1
    for item in cfg:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


_VGG_NAMES = {arch: _vgg_names(cfg) for arch, cfg in _VGG_CFGS.items()}
_VGG19_NAMES = _VGG_NAMES["vgg19"]


class VGG19Features(FeatureExtractor):
    """VGG19 (Simonyan & Zisserman, ICLR 2015) convolutional trunk, torchvision layout ``features.N``.

    The usual SR choices: SRGAN's content loss uses ``relu5_4`` ("VGG54"); ESRGAN uses
    ``conv5_4`` (before the activation); style/texture losses use ``relu1_1`` ... ``relu5_1``.
    The ReLUs are not in-place, so ``convX_Y`` really is the pre-activation map.

    Args:
        layers: names from ``convB_I``, ``reluB_I`` (block B = 1..5, I = 1..2 for blocks 1-2,
            1..4 for 3-5) and ``poolB``. Only layers up to the deepest one are built.
        normalize: apply ImageNet mean/std to the ``[0, 1]`` input.

    Example:
        >>> vgg = VGG19Features(layers=["relu2_2"])   # random weights; use load_backbone() for ImageNet ones
        >>> vgg(torch.rand(1, 3, 32, 32))["relu2_2"].shape
        torch.Size([1, 128, 16, 16])
    """

    arch = "vgg19"

    def __init__(self, *, layers: Sequence[str] = ("relu5_4",), normalize: bool = True) -> None:
        super().__init__(layers=layers, normalize=normalize)
        self._index = {name: _VGG_NAMES[self.arch][name] for name in self.layers}
        last = max(self._index.values())
        modules: list[nn.Module] = []
        in_ch = 3
        for item in _VGG_CFGS[self.arch]:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*modules[: last + 1])
        self._finish()

    def _extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        wanted = {index: name for name, index in self._index.items()}
        out: dict[str, torch.Tensor] = {}
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return {name: out[name] for name in self.layers}


class VGG16Features(VGG19Features):
    """VGG16 trunk, torchvision layout (``features.N``); layers ``convB_I`` / ``reluB_I`` (I = 1..2 for
    blocks 1-2, 1..3 for 3-5) and ``poolB``. LPIPS uses ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``."""

    arch = "vgg16"

    def __init__(self, *, layers: Sequence[str] = ("relu5_3",), normalize: bool = True) -> None:
        super().__init__(layers=layers, normalize=normalize)


# --------------------------------------------------------------------------- AlexNet

#: torchvision ``alexnet().features`` indices (11x11/4 conv, 5x5, three 3x3; max-pools after 1, 2, 5)
_ALEX_NAMES = {
    "conv1": 0, "relu1": 1, "pool1": 2, "conv2": 3, "relu2": 4, "pool2": 5, "conv3": 6, "relu3": 7,
    "conv4": 8, "relu4": 9, "conv5": 10, "relu5": 11, "pool5": 12,
}  # fmt: skip


class AlexNetFeatures(FeatureExtractor):
    """AlexNet (Krizhevsky et al. 2012, torchvision's single-GPU variant) trunk, layout ``features.N``.

    LPIPS (Zhang et al. 2018) uses ``relu1`` ... ``relu5`` (64, 192, 384, 256, 256 channels).
    """

    arch = "alexnet"

    def __init__(self, *, layers: Sequence[str] = ("relu5",), normalize: bool = True) -> None:
        super().__init__(layers=layers, normalize=normalize)
        self._index = {name: _ALEX_NAMES[name] for name in self.layers}
        modules: list[nn.Module] = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        ]  # fmt: skip
        self.features = nn.Sequential(*modules[: max(self._index.values()) + 1])
        self._finish()

    _extract = VGG19Features._extract


# --------------------------------------------------------------------------- ResNet

_RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
_RESNET_LAYERS = ("relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), _bn(out_ch))


class _BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = _downsample(in_ch, planes, stride) if stride != 1 or in_ch != planes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class _Bottleneck(nn.Module):
    """torchvision's ResNet V1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, kernel_size=1, bias=False)
        self.bn3 = _bn(out_ch)
        self.downsample = _downsample(in_ch, out_ch, stride) if stride != 1 or in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNetFeatures(FeatureExtractor):
    """ResNet-18/34/50 (He et al., CVPR 2016; torchvision V1.5 bottleneck) trunk, torchvision layout.

    Args:
        depth: 18, 34 or 50.
        layers: names from ``relu`` (stem, 1/2 resolution), ``maxpool`` (1/4), ``layer1`` (1/4),
            ``layer2`` (1/8), ``layer3`` (1/16), ``layer4`` (1/32). Only stages up to the
            deepest one are built.
        normalize: apply ImageNet mean/std to the ``[0, 1]`` input.

    Example:
        >>> net = ResNetFeatures(depth=50, layers=["layer1", "layer2"])
        >>> {k: tuple(v.shape) for k, v in net(torch.rand(1, 3, 32, 32)).items()}
        {'layer1': (1, 256, 8, 8), 'layer2': (1, 512, 4, 4)}
    """

    def __init__(
        self, *, depth: Literal[18, 34, 50] = 50, layers: Sequence[str] = ("layer4",), normalize: bool = True
    ) -> None:
        if depth not in _RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(_RESNET_BLOCKS)}, got {depth!r}")
        self.arch = f"resnet{depth}"
        super().__init__(layers=layers, normalize=normalize)
        self.depth = depth
        self._last = max(_RESNET_LAYERS.index(name) for name in self.layers)
        block = _Bottleneck if depth == 50 else _BasicBlock
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = _bn(64)
        in_ch = 64
        for stage, (count, planes) in enumerate(zip(_RESNET_BLOCKS[depth], (64, 128, 256, 512), strict=True), 1):
            if _RESNET_LAYERS.index(f"layer{stage}") > self._last:
                break
            blocks = []
            for i in range(count):
                blocks.append(block(in_ch, planes, 2 if (i == 0 and stage > 1) else 1))
                in_ch = planes * block.expansion
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self._finish()

    def _extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        x = out["relu"] = F.relu(self.bn1(self.conv1(x)))
        if self._last >= 1:
            x = out["maxpool"] = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for stage in range(1, self._last):
            x = out[f"layer{stage}"] = getattr(self, f"layer{stage}")(x)
        return {name: out[name] for name in self.layers}


# --------------------------------------------------------------------------- factory and loading


def backbone_layers(arch: str) -> tuple[str, ...]:
    """The layer names a backbone offers, shallow to deep.

    Raises:
        ValueError: ``arch`` is not one of :data:`BACKBONES`.
    """
    if arch in _VGG_NAMES:
        return tuple(_VGG_NAMES[arch])
    if arch == "alexnet":
        return tuple(_ALEX_NAMES)
    if arch in ("resnet18", "resnet34", "resnet50"):
        return _RESNET_LAYERS
    raise ValueError(f"unknown backbone {arch!r}; choose from {list(BACKBONES + METRIC_TRUNKS)}")


def backbone_channels(arch: str, layer: str) -> int:
    """Number of channels of ``layer``'s feature map (e.g. 512 for VGG19 ``relu5_4``, 2048 for ResNet-50 ``layer4``).

    Raises:
        ValueError: unknown ``arch`` or ``layer``.
    """
    if layer not in backbone_layers(arch):
        raise ValueError(f"{arch}: unknown layer {layer!r}; choose from {list(backbone_layers(arch))}")
    if arch in _VGG_NAMES:
        block = int(layer.removeprefix("conv").removeprefix("relu").removeprefix("pool")[0])
        return (64, 128, 256, 512, 512)[block - 1]
    if arch == "alexnet":
        return (64, 192, 384, 256, 256)[int(layer[-1]) - 1]
    if not layer.startswith("layer"):
        return 64
    return (64, 128, 256, 512)[int(layer[-1]) - 1] * (4 if arch == "resnet50" else 1)


def create_backbone(arch: str, *, layers: Sequence[str], normalize: bool = True) -> FeatureExtractor:
    """A randomly initialised, frozen extractor (no file I/O); see :func:`load_backbone`.

    Raises:
        ValueError: unknown ``arch`` or layer name.
    """
    backbone_layers(arch)
    if arch == "vgg19":
        return VGG19Features(layers=layers, normalize=normalize)
    if arch == "vgg16":
        return VGG16Features(layers=layers, normalize=normalize)
    if arch == "alexnet":
        return AlexNetFeatures(layers=layers, normalize=normalize)
    return ResNetFeatures(depth=int(arch.removeprefix("resnet")), layers=layers, normalize=normalize)  # type: ignore[arg-type]  # depth in (18, 34, 50): backbone_layers(arch) checked it


def _torchvision_layout(arch: str) -> dict[str, tuple[int, ...]]:
    """Every key and shape of torchvision's ``arch`` state dict (built on the meta device)."""
    full = backbone_layers(arch)[-1]
    with torch.device("meta"):
        trunk = create_backbone(arch, layers=[full])
    layout = {k: tuple(v.shape) for k, v in trunk.state_dict().items()}
    if arch == "alexnet":
        layout |= {
            "classifier.1.weight": (4096, 256 * 6 * 6),
            "classifier.1.bias": (4096,),
            "classifier.4.weight": (4096, 4096),
            "classifier.4.bias": (4096,),
            "classifier.6.weight": (1000, 4096),
            "classifier.6.bias": (1000,),
        }
    elif arch in _VGG_NAMES:
        layout |= {
            "classifier.0.weight": (4096, 512 * 7 * 7),
            "classifier.0.bias": (4096,),
            "classifier.3.weight": (4096, 4096),
            "classifier.3.bias": (4096,),
            "classifier.6.weight": (1000, 4096),
            "classifier.6.bias": (1000,),
        }
    else:
        width = 2048 if arch == "resnet50" else 512
        layout |= {"fc.weight": (1000, width), "fc.bias": (1000,)}
    return layout


def _missing_message(arch: str) -> str:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    name = TORCHVISION_FILES[arch][0]
    return (
        f"no pretrained {arch} weights found (sruscale never downloads). Get {_URL}{name} "
        f"(torchvision's ImageNet {arch}) and either put it at {hub / name} "
        f"(the torch hub cache; TORCH_HOME moves it) or pass --backbone-weights FILE "
        f'(weights_path=FILE in Python, "weights_path" in a loss recipe)'
    )


def find_backbone_weights(arch: str, weights_path: str | os.PathLike[str] | None = None) -> Path:
    """The weights file for ``arch``: ``weights_path`` if given, else torchvision's file in the hub cache.

    Raises:
        ValueError: unknown ``arch``.
        CheckpointError: ``weights_path`` does not exist, or no file is in the hub cache
            (the message names the file to download and where to put it).
    """
    backbone_layers(arch)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{path}: backbone weights file not found. " + _missing_message(arch))
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    for name in TORCHVISION_FILES[arch]:
        if (hub / name).is_file():
            return hub / name
    raise CheckpointError(_missing_message(arch))


def load_backbone(
    arch: str,
    *,
    layers: Sequence[str],
    weights_path: str | os.PathLike[str] | None = None,
    normalize: bool = True,
) -> FeatureExtractor:
    """A frozen ImageNet feature extractor with torchvision's pretrained weights.

    Args:
        arch: ``"vgg19"``, ``"resnet18"``, ``"resnet34"`` or ``"resnet50"``.
        layers: layer names (see :class:`VGG19Features`, :class:`ResNetFeatures`).
        weights_path: a torchvision state dict (``.pth``/``.pt`` or ``.safetensors``); when
            ``None``, torchvision's file in ``torch.hub.get_dir()/checkpoints``.
        normalize: apply ImageNet mean/std to the ``[0, 1]`` input.

    Raises:
        ValueError: unknown ``arch`` or layer.
        CheckpointError: no weights file, an unreadable one, or one with another layout.

    Example:
        >>> vgg = load_backbone("vgg19", layers=["relu5_4"], weights_path="vgg19-dcbb9e9d.pth")  # doctest: +SKIP
    """
    model = create_backbone(arch, layers=layers, normalize=normalize)
    path = find_backbone_weights(arch, weights_path)
    model.load_torchvision_state(read_state_dict(path), source=str(path))
    return model
