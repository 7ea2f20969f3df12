"""The rows of ``sruscale models``: every registered architecture with its cost and bundled weights."""

from __future__ import annotations

from dataclasses import dataclass

from ..models import REGISTRY, create_model
from ..models.profile import count_parameters, flops_per_megapixel
from ._manifest import list_weights

__all__ = ["ModelInfo", "describe_models"]


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``sruscale models``."""

    name: str
    framework: str
    scales: tuple[int, ...]
    in_channels: int
    scale: int  #: scale the cost was measured at
    parameters: int
    gflops_per_mp: float
    half_safe: bool
    weights: tuple[str, ...]  #: bundled weights names for this architecture


def describe_models(*, scale: int = 4) -> list[ModelInfo]:
    """Every registered architecture at its default hyperparameters, measured at ``scale``
    (or its largest scale when ``scale`` is unsupported) in its inference form, with its bundled
    weights (special-purpose families included)."""
    bundled = list_weights()
    rows = []
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        s = scale if scale in cls.scales else max(cls.scales)
        model = create_model(name, scale=s).for_inference()  # re-parameterised models as they ship
        rows.append(
            ModelInfo(
                name=name,
                framework=cls.framework,
                scales=cls.scales,
                in_channels=model.in_channels,
                scale=s,
                parameters=count_parameters(model),
                gflops_per_mp=flops_per_megapixel(model, size=8),
                half_safe=cls.half_safe,
                weights=tuple(sorted(e.name for e in bundled if e.arch == name)),
            )
        )
    return rows
