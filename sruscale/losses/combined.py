"""The training objective of a recipe: ``total = sum_i weight_i * loss_i``, every term logged.

:func:`build_loss` turns the recipe's ``[[loss]]`` tables (typed by :func:`parse_losses`) into a
:class:`CombinedLoss`::

    [[loss]]
    type = "l1"
    weight = 1.0

    [[loss]]
    type = "perceptual"
    weight = 1.0
    layers = { conv5_4 = 1.0 }

    [[loss]]
    type = "adversarial"
    kind = "ragan"
    weight = 0.005
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..metrics.features import FeatureExtractor, load_backbone
from ._reduce import check_pair
from ._terms import (
    AdversarialTerm,
    CharbonnierTerm,
    FeatureTerm,
    FrequencyTerm,
    HuberTerm,
    LossTerm,
    PixelTerm,
    SmoothL1Term,
    SSIMTerm,
    TVTerm,
    parse_losses,
)
from .adversarial import AdversarialLoss, DiscriminatorLoss
from .frequency import FrequencyLoss
from .perceptual import PerceptualLoss, StyleLoss
from .pixel import CharbonnierLoss, HuberLoss, L1Loss, MSELoss, SmoothL1Loss, YChannelLoss
from .ssim import MSSSIMLoss, SSIMLoss
from .tv import TVLoss

__all__ = ["CombinedLoss", "build_loss"]


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; returns the total and each weighted term for logging.

    Build it with :func:`build_loss` from a recipe, or directly from ``(name, weight, module)``
    triples. A term's module is called as ``module(sr, hr)``, except :class:`TVLoss`
    (``module(sr)``) and :class:`AdversarialLoss` (``module(disc, sr, hr)``).

    Args:
        terms: ``(name, weight, module)``; names are unique and become the logging keys.
        discriminator_loss: the discriminator's objective matching the adversarial term
            (:class:`DiscriminatorLoss`), used by :meth:`discriminator_loss`.

    Raises:
        ValueError: no terms, duplicate names, negative weights, or more than one adversarial term.
    """

    def __init__(
        self,
        terms: Sequence[tuple[str, float, nn.Module]],
        *,
        discriminator_loss: DiscriminatorLoss | None = None,
    ) -> None:
        super().__init__()
        if not terms:
            raise ValueError("CombinedLoss needs at least one term")
        names = [name for name, _, _ in terms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"loss term names must be unique, got duplicates {duplicates}")
        bad = [(n, w) for n, w, _ in terms if not (w >= 0 and math.isfinite(w))]
        if bad:
            raise ValueError(f"loss weights must be finite and >= 0, got {bad}")
        if sum(isinstance(m, AdversarialLoss) for _, _, m in terms) > 1:
            raise ValueError("at most one adversarial term is allowed")
        self.names: tuple[str, ...] = tuple(names)
        self.weights: dict[str, float] = {n: float(w) for n, w, _ in terms}
        self.terms = nn.ModuleList([m for _, _, m in terms])
        self.discriminator_objective = discriminator_loss
        if self.has_adversarial and discriminator_loss is None:
            kind = next(m.kind for m in self.terms if isinstance(m, AdversarialLoss))
            self.discriminator_objective = DiscriminatorLoss(kind=kind)

    @property
    def has_adversarial(self) -> bool:
        """Whether a term needs the discriminator (``forward(..., disc=...)``)."""
        return any(isinstance(m, AdversarialLoss) for m in self.terms)

    def without_adversarial(self) -> CombinedLoss | None:
        """The same term modules (so the same feature extractors) less the adversarial one: the loss
        before ``gan.start``. ``self`` when there is no adversarial term; None when nothing else is left."""
        if not self.has_adversarial:
            return self
        terms = [
            (n, self.weights[n], m)
            for n, m in zip(self.names, self.terms, strict=True)
            if not isinstance(m, AdversarialLoss)
        ]
        return CombinedLoss(terms) if terms else None

    def forward(
        self, sr: torch.Tensor, hr: torch.Tensor, *, disc: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The generator's loss.

        Args:
            sr: ``(B, C, H, W)`` network output (with grad), in ``[0, 1]``.
            hr: ``(B, C, H, W)`` ground truth.
            disc: the discriminator; required when there is an adversarial term. Its parameters
                receive gradients too: freeze it (``requires_grad_(False)``) for this step, or
                zero its gradients before its own step.

        Returns:
            ``(total, parts)``: the scalar total (with grad) and ``{name: weight * loss}``
            (detached scalars, in recipe order; they sum to ``total``).

        Raises:
            ValueError: shapes differ, or an adversarial term without ``disc``.
        """
        check_pair(sr, hr)
        if disc is None and self.has_adversarial:
            raise ValueError("this loss has an adversarial term: pass the discriminator (disc=...)")
        total = sr.new_zeros((), dtype=torch.float32)
        parts: dict[str, torch.Tensor] = {}
        for name, module in zip(self.names, self.terms, strict=True):
            weight = self.weights[name]
            if isinstance(module, AdversarialLoss):
                value = module(disc, sr, hr)
            elif isinstance(module, TVLoss):
                value = module(sr)
            else:
                value = module(sr, hr)
            value = weight * value
            parts[name] = value.detach()
            total = total + value
        return total, parts

    def discriminator_loss(
        self, disc: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        """The discriminator's objective for the recipe's GAN kind (unweighted; ``fake`` is detached).

        Raises:
            ValueError: the loss has no adversarial term.
        """
        if self.discriminator_objective is None:
            raise ValueError("this loss has no adversarial term, so there is no discriminator objective")
        return self.discriminator_objective(disc, real, fake)


# --------------------------------------------------------------------------- building


def _module(t: LossTerm, extractor: Callable[[FeatureTerm], FeatureExtractor]) -> nn.Module:
    """The loss module of one (parsed) term."""
    if isinstance(t, FeatureTerm):
        cls = PerceptualLoss if t.type == "perceptual" else StyleLoss
        return cls(extractor(t), layer_weights=t.layers, distance=t.distance)
    if isinstance(t, TVTerm):
        return TVLoss(squared=t.squared)
    if isinstance(t, FrequencyTerm):
        return FrequencyLoss(patch=t.patch)
    if isinstance(t, SSIMTerm):
        cls_ = SSIMLoss if t.type == "ssim" else MSSSIMLoss
        return cls_(data_range=t.data_range, y_channel=t.y_channel)
    if isinstance(t, AdversarialTerm):
        return AdversarialLoss(kind=t.kind)
    if isinstance(t, SmoothL1Term):
        module: nn.Module = SmoothL1Loss(beta=t.beta)
    elif isinstance(t, HuberTerm):
        module = HuberLoss(delta=t.delta)
    elif isinstance(t, CharbonnierTerm):
        module = CharbonnierLoss(eps=t.eps)
    else:
        module = L1Loss() if t.type == "l1" else MSELoss()
    return YChannelLoss(module) if isinstance(t, PixelTerm) and t.y_channel else module


def build_loss(
    spec: Sequence[LossTerm | Mapping[str, Any]],
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    key: str = "loss",
) -> CombinedLoss:
    """Build the :class:`CombinedLoss` a recipe describes.

    ``spec`` is a list of :class:`LossTerm` objects or ``[[loss]]`` tables, checked by
    :func:`parse_losses`: ``type`` (a key of :data:`LOSS_TYPES`), ``weight`` (0 switches the term
    off), ``name`` (the logging key) and the fields of the type's term class (:class:`PixelTerm`,
    :class:`FeatureTerm`, ...), whose defaults are the loss classes' own. Feature terms on the same
    backbone and weights file share one extractor.

    Args:
        spec: the recipe's loss list.
        backbone_weights: torchvision weights file for feature terms without ``weights_path``
            (the CLI's ``--backbone-weights FILE``).
        key: name of the list in error messages (``loss[1].layers: ...``).

    Raises:
        ConfigError: as :func:`parse_losses`.
        CheckpointError: a feature term without backbone weights (the message says which file
            to get and where to put it).

    Example:
        >>> loss = build_loss([{"type": "l1"}, {"type": "tv", "weight": 1e-4}])
        >>> total, parts = loss(sr, hr)   # parts == {"l1": ..., "tv": ...}   # doctest: +SKIP
    """
    terms = [t for t in parse_losses(spec, key) if t.weight > 0]

    def slot(t: FeatureTerm) -> tuple[str, str | None]:
        weights = t.weights_path or backbone_weights
        return t.backbone, os.fspath(weights) if weights else None

    # One extractor per (backbone, weights file), with the union of the layers its terms read.
    wanted: dict[tuple[str, str | None], list[str]] = {}
    for t in terms:
        if isinstance(t, FeatureTerm):
            wanted.setdefault(slot(t), []).extend(t.layers)
    extractors = {
        s: load_backbone(s[0], layers=list(dict.fromkeys(layers)), weights_path=s[1]) for s, layers in wanted.items()
    }
    adversarial = next((t for t in terms if isinstance(t, AdversarialTerm)), None)
    return CombinedLoss(
        [(t.name, t.weight, _module(t, lambda f: extractors[slot(f)])) for t in terms],
        discriminator_loss=(
            None if adversarial is None else DiscriminatorLoss(kind=adversarial.kind, gp_weight=adversarial.gp_weight)
        ),
    )
