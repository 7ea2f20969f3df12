"""Content (perceptual) and texture (style, Gram-matrix) losses on frozen classifier features.

References:
    Johnson et al., "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016;
    Ledig et al., SRGAN, CVPR 2017 (VGG54 content loss); Wang et al., ESRGAN, ECCVW 2018 (before ReLU);
    Gatys et al., "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016 (Gram matrices);
    Sajjadi et al., EnhanceNet, ICCV 2017 (texture loss for SR).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Literal

import torch
from torch import nn

from ..metrics.features import FeatureExtractor
from ._reduce import Reduction, check_pair, check_reduction, reduce

__all__ = ["PerceptualLoss", "StyleLoss", "gram_matrix", "perceptual_loss", "style_loss"]

Distance = Literal["l1", "l2"]


def _distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Per-sample mean distance, shape ``(B,)``, in float32 for half-precision (autocast) features."""
    diff = a.float() - b.float() if a.dtype in (torch.float16, torch.bfloat16) else a - b
    per_elem = diff.abs() if distance == "l1" else diff.square()
    return per_elem.flatten(1).mean(dim=1)


def _layer_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    extractor: FeatureExtractor,
    layer_weights: Mapping[str, float],
    distance: str,
    reduction: str,
    transform: Callable[[torch.Tensor], torch.Tensor] = lambda f: f,
) -> torch.Tensor:
    """Validate, then reduce ``sum_l w_l * dist(T(phi_l(pred)), T(phi_l(target)))``, ``T = transform``, shape ``(B,)``.

    ``target``'s features are computed without gradient.
    """
    check_pair(pred, target)
    check_reduction(reduction)
    if distance not in ("l1", "l2"):
        raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
    if not layer_weights:
        raise ValueError("layer_weights must name at least one layer")
    unknown = [name for name in layer_weights if name not in extractor.layers]
    if unknown:
        raise ValueError(f"layer(s) {unknown} are not extracted; the extractor provides {list(extractor.layers)}")
    pred_feats = extractor(pred)
    with torch.no_grad():
        target_feats = extractor(target.detach())
    per_sample = sum(
        float(w) * _distance(transform(pred_feats[name]), transform(target_feats[name]), distance)
        for name, w in layer_weights.items()
    )
    return reduce(per_sample, reduction)  # type: ignore[arg-type]  # per_sample is a Tensor sum; mypy sees int | Tensor


def perceptual_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    extractor: FeatureExtractor,
    layer_weights: Mapping[str, float],
    distance: Distance = "l1",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Weighted feature distance ``sum_l w_l * mean |phi_l(pred) - phi_l(target)|^p``.

    ``target`` is treated as a constant (its features are computed without gradient).

    Args:
        pred, target: ``(B, C, H, W)`` images in ``[0, 1]``, ``C`` 3 (RGB) or 1 (Y, repeated).
        extractor: a frozen extractor (:func:`~sruscale.losses.load_backbone`) providing every layer named.
        layer_weights: ``{layer: weight}``, e.g. ``{"relu5_4": 1.0}`` (SRGAN) or ``{"conv5_4": 1.0}`` (ESRGAN).
        distance: ``"l1"`` (mean absolute) or ``"l2"`` (mean squared) per layer.
        reduction: ``"none"`` gives per-sample losses ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: bad shapes, unknown distance, reduction, or a layer the extractor does not provide.

    Example:
        >>> vgg = VGG19Features(layers=["relu2_2"])
        >>> perceptual_loss(x, y, extractor=vgg, layer_weights={"relu2_2": 1.0})  # doctest: +SKIP
    """
    return _layer_loss(pred, target, extractor, layer_weights, distance, reduction)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F F^T / (C H W)`` of ``(B, C, H, W)`` features, shape ``(B, C, C)``.

    Half-precision features are promoted to float32 (the sums overflow float16).

    Raises:
        ValueError: not 4-D.
    """
    if features.ndim != 4:
        raise ValueError(f"expected 4 dims (B, C, H, W), got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    extractor: FeatureExtractor,
    layer_weights: Mapping[str, float],
    distance: Distance = "l1",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Texture/style loss: weighted distance of Gram matrices, ``sum_l w_l * mean |G_l(pred) - G_l(target)|^p``.

    Args:
        pred, target: ``(B, C, H, W)`` images in ``[0, 1]``, ``C`` 3 (RGB) or 1 (Y, repeated).
        extractor: a frozen extractor providing every layer named.
        layer_weights: ``{layer: weight}``, e.g. ``{"relu1_1": 1, "relu2_1": 1, "relu3_1": 1}``.
        distance: ``"l1"`` or ``"l2"`` between Gram matrices (``(B, C_l, C_l)``, see :func:`gram_matrix`).
        reduction: ``"none"`` gives per-sample losses ``(B,)``; ``"mean"`` / ``"sum"`` over the batch.

    Raises:
        ValueError: bad shapes, unknown distance, reduction, or a layer the extractor does not provide.
    """
    return _layer_loss(pred, target, extractor, layer_weights, distance, reduction, transform=gram_matrix)


class _LayerLossModule(nn.Module):
    """Holds the (frozen) extractor and options; ``forward(pred, target)`` calls the class's ``_loss``."""

    _loss: ClassVar[Callable[..., torch.Tensor]]

    def __init__(
        self,
        extractor: FeatureExtractor,
        *,
        layer_weights: Mapping[str, float],
        distance: Distance = "l1",
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.layer_weights = dict(layer_weights)
        self.distance = distance
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._loss(
            pred,
            target,
            extractor=self.extractor,
            layer_weights=self.layer_weights,
            distance=self.distance,
            reduction=self.reduction,
        )


class PerceptualLoss(_LayerLossModule):
    """Module form of :func:`perceptual_loss`; holds the (frozen) extractor.

    Example:
        >>> loss = PerceptualLoss(load_backbone("vgg19", layers=["relu5_4"]), layer_weights={"relu5_4": 1.0})
    """

    _loss = staticmethod(perceptual_loss)


class StyleLoss(_LayerLossModule):
    """Module form of :func:`style_loss`; holds the (frozen) extractor."""

    _loss = staticmethod(style_loss)
