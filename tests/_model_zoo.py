"""Small hyperparameters for the big registry models, so shape/backward/round-trip tests stay fast.

Models not listed here are small at their paper defaults. Import from tests as
``from _model_zoo import SMALL_HPARAMS, small_model``.
"""

from __future__ import annotations

from typing import Any

from sruscale.models import REGISTRY, SRModel, create_model

SMALL_HPARAMS: dict[str, dict[str, Any]] = {
    "vdsr": {"depth": 5, "features": 16},
    "edsr": {"blocks": 2, "features": 16},
    "edsr-baseline": {"blocks": 2, "features": 16},
    "rcan": {"groups": 2, "blocks": 2, "features": 16, "reduction": 4},
    "lapsrn": {"depth": 3, "features": 16},
    "prosr": {"features": 16, "growth": 8, "bottleneck": 2, "level_config": ((2, 2), (2,), (2,))},
    "dbpn": {"features": 16, "base_features": 8, "stages": 3},
}


def registry_cases() -> list[tuple[str, int]]:
    """Every (name, scale) pair of the registry."""
    return [(name, s) for name in sorted(REGISTRY) for s in REGISTRY[name].scales]


def small_model(name: str, scale: int) -> SRModel:
    return create_model(name, scale=scale, **SMALL_HPARAMS.get(name, {}))
