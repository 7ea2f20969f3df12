"""LPIPS, Learned Perceptual Image Patch Similarity (Zhang, Isola, Efros, Shechtman & Wang, CVPR 2018).

"The unreasonable effectiveness of deep features as a perceptual metric", version 0.1. Both
images go through an ImageNet backbone (AlexNet ``relu1..5`` or VGG16 ``relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3``) after LPIPS's own input scaling; each feature map is unit-normalised
over channels, the squared difference is weighted per channel by a learned 1x1 "linear head",
averaged over space and summed over layers. Lower is better (0 = identical).

Nothing is downloaded. The backbones are sruscale's own (:mod:`sruscale.metrics.features`,
torchvision's state-dict layout) and load ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``
from a path or the torch hub cache; the linear heads (``alex.pth`` / ``vgg.pth``, v0.1) come from
a path or from the ``lpips`` package when it is installed (found without importing it, so
torchvision is not needed).
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..errors import CheckpointError, ImageError
from ..weights._files import read_state_dict
from ._common import Reduction, check_reduction, reduce
from .features import FeatureExtractor, backbone_channels, create_backbone, find_backbone_weights

__all__ = ["LPIPS", "LPIPSNet", "find_lpips_heads", "lpips", "lpips_net"]

Net = Literal["alex", "vgg"]
#: LPIPS layers per network: (sruscale/torchvision backbone, layer names)
LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alex": ("alexnet", ("relu1", "relu2", "relu3", "relu4", "relu5")),
    "vgg": ("vgg16", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")),
}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def find_lpips_heads(net: Net, path: str | os.PathLike[str] | None = None) -> Path:
    """The v0.1 linear-head file: ``path``, else ``lpips/weights/v0.1/<net>.pth`` of the installed lpips package.

    Raises:
        CheckpointError: neither exists (the message says how to get it).
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise CheckpointError(f"LPIPS linear heads not found: {p}")
        return p
    spec = importlib.util.find_spec("lpips")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "weights" / "v0.1" / f"{net}.pth"
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"LPIPS linear heads for {net!r} not found: install the lpips package (pip install --no-deps lpips) "
        f"or pass its weights/v0.1/{net}.pth with --lpips-heads FILE"
    )


class LPIPSNet(nn.Module):
    """Backbone + linear heads; ``forward(pred, target) -> (B,)`` distances for ``[0, 1]`` RGB input."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, net: Net, backbone: FeatureExtractor, heads: dict[str, torch.Tensor]) -> None:
        super().__init__()
        arch, layers = LAYERS[net]
        if backbone.arch != arch or tuple(backbone.layers) != layers:
            raise ValueError(f"LPIPS-{net} needs a {arch} backbone with layers {layers}")
        self.net, self.backbone = net, backbone
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        weights = []
        for i, layer in enumerate(layers):
            key = f"lin{i}.model.1.weight"
            c = backbone_channels(arch, layer)
            w = heads.get(key)
            if w is None or tuple(w.shape) != (1, c, 1, 1):
                got = "missing" if w is None else tuple(w.shape)
                raise CheckpointError(f"LPIPS-{net} heads: expected {key} of shape (1, {c}, 1, 1), got {got}")
            weights.append(w.detach().clone().float())
        self.heads = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim != 4 or pred.shape != target.shape or pred.shape[1] not in (1, 3):
            raise ImageError(
                "LPIPS: expected two (B, 3, H, W) images of one shape, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        dtype = self.shift.dtype
        x0, x1 = (t.to(dtype).expand(-1, 3, -1, -1) * 2 - 1 for t in (pred, target))
        f0 = self.backbone((x0 - self.shift) / self.scale)
        f1 = self.backbone((x1 - self.shift) / self.scale)
        total = torch.zeros(pred.shape[0], dtype=dtype, device=pred.device)
        for head, layer in zip(self.heads, self.backbone.layers, strict=True):
            a, b = f0[layer], f1[layer]
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + ((a - b) ** 2 * head).sum(dim=1).mean(dim=(1, 2))
        return total


def lpips_net(
    net: Net = "alex",
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    heads: str | os.PathLike[str] | None = None,
) -> LPIPSNet:
    """Build LPIPS with pretrained backbone (path or torch hub cache) and v0.1 heads (path or lpips package).

    Raises:
        CheckpointError: a missing or mismatched file (one line naming the expected file).
        ValueError: ``net`` not ``"alex"`` or ``"vgg"``.
    """
    if net not in LAYERS:
        raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
    arch, layers = LAYERS[net]
    head_path = find_lpips_heads(net, heads)
    try:
        path = find_backbone_weights(arch, backbone_weights)
    except CheckpointError:
        from .features import TORCHVISION_FILES

        name = TORCHVISION_FILES[arch][0]
        hub = Path(torch.hub.get_dir()) / "checkpoints" / name
        where = f"{backbone_weights} not found; " if backbone_weights is not None else ""
        raise CheckpointError(
            f"LPIPS-{net}: {where}needs torchvision's ImageNet {arch} weights {name} (sruscale never downloads): "
            f"put it at {hub} or pass --lpips-backbone FILE (backbone_weights= in Python)"
        ) from None
    backbone = create_backbone(arch, layers=layers, normalize=False)
    backbone.load_torchvision_state(read_state_dict(path), source=str(path))
    return LPIPSNet(net, backbone, read_state_dict(head_path))


@lru_cache(maxsize=2)
def _cached(net: str, backbone_weights: str | None, heads: str | None) -> LPIPSNet:
    return lpips_net(net, backbone_weights=backbone_weights, heads=heads)  # type: ignore[arg-type]


def lpips(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    net: Net = "alex",
    backbone_weights: str | os.PathLike[str] | None = None,
    heads: str | os.PathLike[str] | None = None,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """LPIPS distance (v0.1; lower is better) between ``(B, 3, H, W)`` images in ``[0, 1]``.

    Gray ``(B, 1, H, W)`` input is repeated to 3 channels. The network is built once per
    ``(net, backbone_weights, heads)`` and cached.

    Returns:
        ``(B,)`` float32 (or its mean/sum).

    Raises:
        CheckpointError: backbone or heads not found. ImageError: shapes differ.

    Example:
        >>> lpips(sr, hr, net="alex")  # needs alexnet-owt-7be5be79.pth in the torch hub cache  # doctest: +SKIP
    """
    check_reduction(reduction)
    model = _cached(
        net, None if backbone_weights is None else str(backbone_weights), None if heads is None else str(heads)
    )
    with torch.no_grad():
        return reduce(model(pred, target), reduction)


class LPIPS(nn.Module):
    """:func:`lpips` as a module (built at construction; differentiable with respect to the inputs)."""

    def __init__(
        self,
        *,
        net: Net = "alex",
        backbone_weights: str | os.PathLike[str] | None = None,
        heads: str | os.PathLike[str] | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.model = lpips_net(net, backbone_weights=backbone_weights, heads=heads)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reduce(self.model(pred, target), self.reduction)
