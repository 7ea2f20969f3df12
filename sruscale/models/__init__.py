"""The model registry: an explicit dict of name -> architecture class.

Adding a model: write ``models/<name>.py`` with an :class:`SRModel` subclass, import it
here, add it to ``_ARCHITECTURES``; ``tests/test_models.py`` picks it up automatically.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import UnknownModelError
from ._base import SRModel, store_hparams
from .bicubic import Bicubic
from .dbpn import DBPN
from .edsr import EDSR, EDSRBaseline
from .espcn import ESPCN
from .fsrcnn import FSRCNN
from .lapsrn import LapSRN
from .plainsr import PlainSR
from .prosr import ProSR
from .rcan import RCAN
from .srcnn import SRCNN
from .vdsr import VDSR

__all__ = ["REGISTRY", "SRModel", "create_model", "get_model_class", "list_models", "store_hparams"]

_ARCHITECTURES: tuple[type[SRModel], ...] = (
    Bicubic,
    SRCNN,
    VDSR,
    FSRCNN,
    ESPCN,
    PlainSR,
    EDSR,
    EDSRBaseline,
    RCAN,
    LapSRN,
    ProSR,
    DBPN,
)


def _build_registry(classes: tuple[type[SRModel], ...]) -> dict[str, type[SRModel]]:
    registry: dict[str, type[SRModel]] = {}
    for cls in classes:
        if not cls.name:
            raise TypeError(f"{cls.__qualname__} has no registry name")
        if cls.name in registry:
            raise ValueError(f"duplicate architecture name {cls.name!r}: {registry[cls.name]} and {cls}")
        registry[cls.name] = cls
    return registry


REGISTRY: dict[str, type[SRModel]] = _build_registry(_ARCHITECTURES)


def get_model_class(name: str) -> type[SRModel]:
    """The class registered as ``name``; :class:`UnknownModelError` lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        hint = difflib.get_close_matches(name, REGISTRY, n=1)
        msg = f"unknown model {name!r}; choose from {', '.join(sorted(REGISTRY))}"
        raise UnknownModelError(msg + (f" (did you mean {hint[0]!r}?)" if hint else "")) from None


def create_model(name: str, *, scale: int, **hparams: Any) -> SRModel:
    """Instantiate architecture ``name`` with keyword-only hyperparameters (typos raise TypeError)."""
    return get_model_class(name)(scale=scale, **hparams)


def list_models() -> list[str]:
    """Registered architecture names, sorted."""
    return sorted(REGISTRY)
