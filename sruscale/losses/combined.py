"""The training objective of a recipe: ``total = sum_i weight_i * loss_i``, every term logged.

:func:`build_loss` turns the recipe's list of loss tables into a :class:`CombinedLoss`::

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

import dataclasses
import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._config import parse_dataclass
from ..errors import ConfigError
from ._reduce import check_pair
from .adversarial import GAN_KINDS, AdversarialLoss, DiscriminatorLoss
from .features import BACKBONES, FeatureExtractor, backbone_layers, load_backbone
from .perceptual import PerceptualLoss, StyleLoss
from .pixel import CharbonnierLoss, HuberLoss, L1Loss, MSELoss, SmoothL1Loss, YChannelLoss
from .ssim import MSSSIMLoss, SSIMLoss
from .tv import TVLoss

__all__ = ["LOSS_TYPES", "CombinedLoss", "build_loss"]

_NUMBER = (int, float)


@dataclass(frozen=True)
class _TermKeys:
    """Keys every ``[[loss]]`` table takes (None: the loss's own default)."""

    type: str
    weight: float = 1.0
    name: str | None = None


@dataclass(frozen=True)
class _PixelKeys(_TermKeys):
    y_channel: bool | None = None


@dataclass(frozen=True)
class _SmoothL1Keys(_PixelKeys):
    beta: float | None = None


@dataclass(frozen=True)
class _HuberKeys(_PixelKeys):
    delta: float | None = None


@dataclass(frozen=True)
class _CharbonnierKeys(_PixelKeys):
    eps: float | None = None


@dataclass(frozen=True)
class _FeatureKeys(_TermKeys):
    backbone: str | None = None
    layers: dict[str, Any] | tuple[str, ...] | None = None
    distance: str | None = None
    weights_path: str | None = None


@dataclass(frozen=True)
class _TVKeys(_TermKeys):
    squared: bool | None = None


@dataclass(frozen=True)
class _SSIMKeys(_PixelKeys):
    data_range: float | None = None


@dataclass(frozen=True)
class _AdversarialKeys(_TermKeys):
    kind: str | None = None
    gp_weight: float | None = None


#: loss type -> the keys its table takes (parsed by :func:`sruscale._config.parse_dataclass`)
LOSS_TYPES: dict[str, type[_TermKeys]] = {
    "l1": _PixelKeys,
    "mse": _PixelKeys,
    "l2": _PixelKeys,
    "smooth_l1": _SmoothL1Keys,
    "huber": _HuberKeys,
    "charbonnier": _CharbonnierKeys,
    "perceptual": _FeatureKeys,
    "style": _FeatureKeys,
    "texture": _FeatureKeys,
    "tv": _TVKeys,
    "ssim": _SSIMKeys,
    "ms_ssim": _SSIMKeys,
    "adversarial": _AdversarialKeys,
}

#: the types whose ``y_channel`` wraps them in :class:`YChannelLoss` (SSIM takes it itself)
_PIXEL_TYPES = frozenset({"l1", "mse", "l2", "smooth_l1", "huber", "charbonnier"})

_DEFAULT_LAYERS = {
    ("perceptual", "vgg19"): {"relu5_4": 1.0},
    ("style", "vgg19"): {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0},
}


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


# --------------------------------------------------------------------------- recipe parsing


@dataclass
class _Entry:
    type: str
    name: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)
    where: str = ""


def _type_name(expected: Any) -> str:
    if isinstance(expected, tuple):
        if expected == _NUMBER:
            return "number"
        return " or ".join("table" if t is Mapping else t.__name__ for t in expected)
    return expected.__name__


def _check_value(value: Any, expected: Any, where: str) -> None:
    ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(expected)}, got {type(value).__name__} {value!r}")
    if expected == _NUMBER and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")


def _positive(params: dict[str, Any], name: str, where: str) -> None:
    if name in params and not params[name] > 0:
        raise ConfigError(f"{where}.{name}: must be > 0, got {params[name]!r}")


def _parse_layers(entry: _Entry) -> None:
    where, p = entry.where, entry.params
    kind = "style" if entry.type in ("style", "texture") else "perceptual"
    arch = p.setdefault("backbone", "vgg19")
    if arch not in BACKBONES:
        raise ConfigError(f"{where}.backbone: unknown backbone {arch!r}; choose from {list(BACKBONES)}")
    distance = p.setdefault("distance", "l1")
    if distance not in ("l1", "l2"):
        raise ConfigError(f"{where}.distance: expected 'l1' or 'l2', got {distance!r}")
    layers = p.get("layers", _DEFAULT_LAYERS.get((kind, arch)))
    if layers is None:
        raise ConfigError(f"{where}.layers: required for backbone {arch!r}; choose from {list(backbone_layers(arch))}")
    if isinstance(layers, list | tuple):
        layers = dict.fromkeys(layers, 1.0)
    if not layers:
        raise ConfigError(f"{where}.layers: name at least one layer")
    available = backbone_layers(arch)
    for name, w in layers.items():
        if name not in available:
            hint = difflib.get_close_matches(str(name), available, n=1)
            raise ConfigError(
                f"{where}.layers: unknown {arch} layer {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; choose from {list(available)}"
            )
        _check_value(w, _NUMBER, f"{where}.layers.{name}")
        if w < 0:
            raise ConfigError(f"{where}.layers.{name}: weight must be >= 0, got {w!r}")
    p["layers"] = {str(k): float(v) for k, v in layers.items()}


def _parse_entry(raw: Any, where: str) -> _Entry:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table with a 'type' key, got {type(raw).__name__}")
    if "type" not in raw:
        raise ConfigError(f"{where}.type: missing; choose from {sorted(LOSS_TYPES)}")
    kind = raw["type"]
    if kind not in LOSS_TYPES:
        hint = difflib.get_close_matches(str(kind), LOSS_TYPES, n=1)
        raise ConfigError(
            f"{where}.type: unknown loss type {kind!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; choose from {sorted(LOSS_TYPES)}"
        )
    keys = parse_dataclass(LOSS_TYPES[kind], dict(raw), where, context=f" for loss type {kind!r}")
    weight = keys.weight
    if weight < 0:
        raise ConfigError(f"{where}.weight: must be >= 0, got {weight!r}")
    name = kind if keys.name is None else keys.name
    if not name or "." in name:
        raise ConfigError(f"{where}.name: expected a non-empty name without '.', got {name!r}")
    common = {f.name for f in dataclasses.fields(_TermKeys)}
    params = {k: v for k, v in dataclasses.asdict(keys).items() if k not in common and v is not None}
    entry = _Entry(type=kind, name=name, weight=weight, params=params, where=where)
    for key in ("beta", "delta", "eps", "data_range", "gp_weight"):
        _positive(params, key, where)
    if kind in ("perceptual", "style", "texture"):
        _parse_layers(entry)
    if kind == "adversarial" and params.setdefault("kind", "vanilla") not in GAN_KINDS:
        raise ConfigError(f"{where}.kind: unknown GAN kind {params['kind']!r}; choose from {list(GAN_KINDS)}")
    return entry


def build_loss(
    spec: Sequence[Mapping[str, Any]],
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    key: str = "loss",
) -> CombinedLoss:
    """Build the :class:`CombinedLoss` a recipe describes.

    ``spec`` is a list of tables; each has ``type`` (required), ``weight`` (default 1.0;
    0 disables the term), ``name`` (logging key, default the type; must be unique) and
    the type's own keys:

    ===============================  ==========================================================
    type                             keys (default)
    ===============================  ==========================================================
    ``l1``, ``mse`` / ``l2``         ``y_channel`` (false: every channel; true: the BT.601 Y of RGB)
    ``smooth_l1``                    ``beta`` (1.0), ``y_channel``
    ``huber``                        ``delta`` (1.0), ``y_channel``
    ``charbonnier``                  ``eps`` (1e-3), ``y_channel``
    ``perceptual``                   ``backbone`` ("vgg19"), ``layers`` (``{relu5_4 = 1.0}`` for
                                     VGG19; required for ResNet), ``distance`` ("l1" | "l2"),
                                     ``weights_path`` (``backbone_weights``, else the hub cache)
    ``style`` / ``texture``          as ``perceptual``; ``layers`` default ``relu1_1`` ... ``relu5_1``
    ``tv``                           ``squared`` (false)
    ``ssim``, ``ms_ssim``            ``data_range`` (1.0), ``y_channel`` (false)
    ``adversarial``                  ``kind`` ("vanilla" | "lsgan" | "wgan-gp" | "hinge" | "ragan"),
                                     ``gp_weight`` (10.0; WGAN-GP discriminator only)
    ===============================  ==========================================================

    ``layers`` is a table ``{layer = weight}`` or a list of layer names (weight 1 each).
    Perceptual and style terms on the same backbone and weights file share one extractor.

    Args:
        spec: the recipe's loss list.
        backbone_weights: torchvision weights file for feature terms without ``weights_path``
            (the CLI's ``--backbone-weights FILE``).
        key: name of the list in error messages (``loss[1].layers: ...``).

    Raises:
        ConfigError: not a list, empty, unknown type or key, wrong value type or range,
            duplicate names, two adversarial terms (the message names the key).
        CheckpointError: a feature term without backbone weights (the message says which file
            to get and where to put it).

    Example:
        >>> loss = build_loss([{"type": "l1"}, {"type": "tv", "weight": 1e-4}])
        >>> total, parts = loss(sr, hr)   # parts == {"l1": ..., "tv": ...}   # doctest: +SKIP
    """
    if isinstance(spec, Mapping | str | bytes) or not isinstance(spec, Sequence):
        raise ConfigError(f"{key}: expected a list of loss tables, got {type(spec).__name__}")
    if not spec:
        raise ConfigError(f"{key}: expected at least one loss")
    entries = [_parse_entry(raw, f"{key}[{i}]") for i, raw in enumerate(spec)]
    seen: dict[str, str] = {}
    for e in entries:
        if e.name in seen:
            raise ConfigError(f"{e.where}.name: {e.name!r} is already used by {seen[e.name]}; give each term a 'name'")
        seen[e.name] = e.where
    adversarial = [e for e in entries if e.type == "adversarial"]
    if len(adversarial) > 1:
        raise ConfigError(f"{adversarial[1].where}.type: only one adversarial term is allowed")
    entries = [e for e in entries if e.weight > 0]
    if not entries:
        raise ConfigError(f"{key}: every loss has weight 0")

    # One extractor per (backbone, weights file), with the union of the layers it must provide.
    wanted: dict[tuple[str, str | None], list[str]] = {}
    for e in entries:
        if "layers" in e.params:
            weights = e.params.get("weights_path", backbone_weights)
            slot = (e.params["backbone"], None if weights is None else os.fspath(weights))
            wanted.setdefault(slot, []).extend(e.params["layers"])
    extractors: dict[tuple[str, str | None], FeatureExtractor] = {
        slot: load_backbone(slot[0], layers=list(dict.fromkeys(layers)), weights_path=slot[1])
        for slot, layers in wanted.items()
    }

    terms: list[tuple[str, float, nn.Module]] = []
    disc_loss: DiscriminatorLoss | None = None
    for e in entries:
        p = e.params
        module: nn.Module
        if e.type == "l1":
            module = L1Loss()
        elif e.type in ("mse", "l2"):
            module = MSELoss()
        elif e.type == "smooth_l1":
            module = SmoothL1Loss(beta=float(p.get("beta", 1.0)))
        elif e.type == "huber":
            module = HuberLoss(delta=float(p.get("delta", 1.0)))
        elif e.type == "charbonnier":
            module = CharbonnierLoss(eps=float(p.get("eps", 1e-3)))
        elif e.type in ("perceptual", "style", "texture"):
            weights = p.get("weights_path", backbone_weights)
            extractor = extractors[(p["backbone"], None if weights is None else os.fspath(weights))]
            cls = PerceptualLoss if e.type == "perceptual" else StyleLoss
            module = cls(extractor, layer_weights=p["layers"], distance=p["distance"])
        elif e.type == "tv":
            module = TVLoss(squared=bool(p.get("squared", False)))
        elif e.type == "ssim":
            module = SSIMLoss(data_range=float(p.get("data_range", 1.0)), y_channel=bool(p.get("y_channel", False)))
        elif e.type == "ms_ssim":
            module = MSSSIMLoss(data_range=float(p.get("data_range", 1.0)), y_channel=bool(p.get("y_channel", False)))
        else:
            module = AdversarialLoss(kind=p["kind"])
            disc_loss = DiscriminatorLoss(kind=p["kind"], gp_weight=float(p.get("gp_weight", 10.0)))
        if e.type in _PIXEL_TYPES and p.get("y_channel", False):
            module = YChannelLoss(module)
        terms.append((e.name, e.weight, module))
    return CombinedLoss(terms, discriminator_loss=disc_loss)
