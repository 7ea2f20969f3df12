"""A recipe's ``[[loss]]`` tables as typed terms: one frozen dataclass per family of loss types.

:func:`parse_losses` rejects unknown types and keys, wrong value types and out-of-range values
with a :class:`~sruscale.errors.ConfigError` naming the key path (``loss[2].eps: ...``). An
option's default is the loss class's own (read from its signature); :func:`~sruscale.losses.build_loss`
turns the terms into modules.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._config import parse_dataclass
from ..errors import ConfigError
from ..metrics.features import BACKBONES, backbone_layers
from .adversarial import AdversarialLoss, DiscriminatorLoss, GANKind
from .frequency import FrequencyLoss
from .perceptual import Distance, PerceptualLoss
from .pixel import CharbonnierLoss, HuberLoss, SmoothL1Loss
from .ssim import SSIMLoss
from .tv import TVLoss

__all__ = [
    "LOSS_TYPES",
    "AdversarialTerm",
    "CharbonnierTerm",
    "FeatureTerm",
    "FrequencyTerm",
    "HuberTerm",
    "LossTerm",
    "PixelTerm",
    "SSIMTerm",
    "SmoothL1Term",
    "TVTerm",
    "parse_losses",
]


def _non_negative(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{path}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _positive(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{path}: expected a positive number, got {value!r}")
    return float(value)


def _layers(value: Any, path: str) -> dict[str, float]:
    """``{layer = weight}`` or a list of layer names (weight 1 each)."""
    if isinstance(value, list | tuple):
        value = dict.fromkeys(map(str, value), 1.0)
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a table {{layer = weight}} or a list of layer names, got {value!r}")
    if not value:
        raise ConfigError(f"{path}: name at least one layer")
    return {str(k): _non_negative(w, f"{path}.{k}") for k, w in value.items()}


def _option(loss: type[nn.Module], key: str, parse: Callable[[Any, str], Any] | None = None) -> Any:
    """A term field whose default is ``loss(key=...)``'s (the one place it lives), checked by ``parse``."""
    default = inspect.signature(loss).parameters[key].default
    return field(default=default, metadata={} if parse is None else {"parse": parse})


@dataclass(frozen=True)
class LossTerm:
    """One ``[[loss]]`` table: the keys every type takes. Each type's subclass adds its own."""

    #: a key of :data:`LOSS_TYPES`
    type: str
    #: 0 switches the term off
    weight: float = field(default=1.0, metadata={"parse": _non_negative})
    #: logging key, unique in the list; "" = the type (:func:`parse_losses` fills it in)
    name: str = ""


@dataclass(frozen=True)
class PixelTerm(LossTerm):
    """``l1``, ``mse`` / ``l2``. ``y_channel``: score the BT.601 Y of RGB pairs (:class:`YChannelLoss`)."""

    y_channel: bool = False


@dataclass(frozen=True)
class SmoothL1Term(PixelTerm):
    """``smooth_l1`` (:class:`SmoothL1Loss`)."""

    beta: float = _option(SmoothL1Loss, "beta", _positive)


@dataclass(frozen=True)
class HuberTerm(PixelTerm):
    """``huber`` (:class:`HuberLoss`)."""

    delta: float = _option(HuberLoss, "delta", _positive)


@dataclass(frozen=True)
class CharbonnierTerm(PixelTerm):
    """``charbonnier`` (:class:`CharbonnierLoss`)."""

    eps: float = _option(CharbonnierLoss, "eps", _positive)


@dataclass(frozen=True)
class FeatureTerm(LossTerm):
    """``perceptual``, ``style`` / ``texture`` (:class:`PerceptualLoss`, :class:`StyleLoss`) on a frozen backbone."""

    #: one of :data:`~sruscale.metrics.features.BACKBONES`
    backbone: str = "vgg19"
    #: ``{layer = weight}`` (or a list of names, weight 1 each); empty = the type's default for the
    #: backbone (:func:`parse_losses` fills it in)
    layers: dict[str, float] = field(default_factory=dict, metadata={"parse": _layers})
    distance: Distance = _option(PerceptualLoss, "distance")
    #: torchvision weights file; "" = ``build_loss(backbone_weights=...)``, else the torch hub cache
    weights_path: str = ""


@dataclass(frozen=True)
class TVTerm(LossTerm):
    """``tv`` (:class:`TVLoss`)."""

    squared: bool = _option(TVLoss, "squared")


def _patch(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value == 1 or value < 0:
        raise ConfigError(f"{path}: expected 0 (the whole crop) or a tile size >= 2 in pixels, got {value!r}")
    return value


@dataclass(frozen=True)
class FrequencyTerm(LossTerm):
    """``fft`` (:class:`FrequencyLoss`): ``patch`` = tile size of the spectra (0: the whole crop)."""

    patch: int = _option(FrequencyLoss, "patch", _patch)


@dataclass(frozen=True)
class SSIMTerm(LossTerm):
    """``ssim``, ``ms_ssim`` (:class:`SSIMLoss`, :class:`MSSSIMLoss`)."""

    data_range: float = _option(SSIMLoss, "data_range", _positive)
    y_channel: bool = _option(SSIMLoss, "y_channel")


@dataclass(frozen=True)
class AdversarialTerm(LossTerm):
    """``adversarial`` (:class:`AdversarialLoss`); ``gp_weight`` is the WGAN-GP discriminator's."""

    kind: GANKind = _option(AdversarialLoss, "kind")
    gp_weight: float = _option(DiscriminatorLoss, "gp_weight", _positive)


#: loss type -> its typed table
LOSS_TYPES: dict[str, type[LossTerm]] = {
    "l1": PixelTerm,
    "mse": PixelTerm,
    "l2": PixelTerm,
    "smooth_l1": SmoothL1Term,
    "huber": HuberTerm,
    "charbonnier": CharbonnierTerm,
    "perceptual": FeatureTerm,
    "style": FeatureTerm,
    "texture": FeatureTerm,
    "tv": TVTerm,
    "fft": FrequencyTerm,
    "ssim": SSIMTerm,
    "ms_ssim": SSIMTerm,
    "adversarial": AdversarialTerm,
}

_DEFAULT_LAYERS = {
    ("perceptual", "vgg19"): {"relu5_4": 1.0},
    ("style", "vgg19"): {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0},
}


def _with_layers(term: FeatureTerm, where: str) -> FeatureTerm:
    """``term`` with its default layers filled in, its backbone and layer names checked."""
    arch = term.backbone
    if arch not in BACKBONES:
        raise ConfigError(f"{where}.backbone: unknown backbone {arch!r}; choose from {list(BACKBONES)}")
    available = backbone_layers(arch)
    layers = term.layers or _DEFAULT_LAYERS.get(("perceptual" if term.type == "perceptual" else "style", arch))
    if layers is None:
        raise ConfigError(f"{where}.layers: required for backbone {arch!r}; choose from {list(available)}")
    for name in layers:
        if name not in available:
            hint = difflib.get_close_matches(name, available, n=1)
            raise ConfigError(
                f"{where}.layers: unknown {arch} layer {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; choose from {list(available)}"
            )
    return dataclasses.replace(term, layers=dict(layers))


def _parse_term(raw: object, where: str) -> LossTerm:
    if isinstance(raw, LossTerm):  # a term built in code passes the same checks as a table
        raw = {k: v for k, v in dataclasses.asdict(raw).items() if v != {}}  # empty layers: the default
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a table with a 'type' key, got {type(raw).__name__}")
    if "type" not in raw:
        raise ConfigError(f"{where}.type: missing; choose from {sorted(LOSS_TYPES)}")
    kind = raw["type"]
    if not isinstance(kind, str) or kind not in LOSS_TYPES:
        hint = difflib.get_close_matches(str(kind), LOSS_TYPES, n=1)
        raise ConfigError(
            f"{where}.type: unknown loss type {kind!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; choose from {sorted(LOSS_TYPES)}"
        )
    term: LossTerm = parse_dataclass(LOSS_TYPES[kind], dict(raw), where, context=f" for loss type {kind!r}")
    if "." in term.name:
        raise ConfigError(f"{where}.name: expected a name without '.', got {term.name!r}")
    term = dataclasses.replace(term, name=term.name or kind)
    return _with_layers(term, where) if isinstance(term, FeatureTerm) else term


def parse_losses(raw: object, key: str = "loss") -> tuple[LossTerm, ...]:
    """The recipe's loss list as typed terms: tables are parsed, terms re-checked, names filled in.

    Args:
        raw: a list of ``[[loss]]`` tables (see :func:`build_loss`) or :class:`LossTerm` objects.
        key: name of the list in error messages (``loss[1].layers: ...``).

    Raises:
        ConfigError: not a list, empty, unknown type or key, wrong value type or range, duplicate
            names, two adversarial terms, or every weight 0; the message starts with the key path
            (``loss[2].eps: expected a positive number, got 'x'``).
    """
    if isinstance(raw, Mapping | str | bytes) or not isinstance(raw, Sequence):
        raise ConfigError(f"{key}: expected a list of loss tables, got {type(raw).__name__}")
    if not raw:
        raise ConfigError(f"{key}: expected at least one loss")
    terms = tuple(_parse_term(t, f"{key}[{i}]") for i, t in enumerate(raw))
    first: dict[str, int] = {}
    for i, t in enumerate(terms):
        if t.name in first:
            raise ConfigError(
                f"{key}[{i}].name: {t.name!r} is already used by {key}[{first[t.name]}]; give each term a 'name'"
            )
        first[t.name] = i
    adversarial = [i for i, t in enumerate(terms) if isinstance(t, AdversarialTerm)]
    if len(adversarial) > 1:
        raise ConfigError(f"{key}[{adversarial[1]}].type: only one adversarial term is allowed")
    if all(t.weight == 0 for t in terms):
        raise ConfigError(f"{key}: every loss has weight 0")
    return terms
