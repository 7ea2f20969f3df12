"""sruscale: batch image super-resolution on PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .api import load_model, upscale_image
    from .errors import CheckpointError, ConfigError, ImageError, SruscaleError, UnknownModelError
    from .models import SRModel, create_model, list_models
    from .resize import imresize
    from .weights import save_model

#: public name -> module that defines it; imported on first access, so ``import sruscale`` (and the
#: CLI's ``--help``) does not import torch
_EXPORTS = {
    "load_model": "api",
    "upscale_image": "api",
    "save_model": "weights",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "ImageError": "errors",
    "SruscaleError": "errors",
    "UnknownModelError": "errors",
    "SRModel": "models",
    "create_model": "models",
    "list_models": "models",
    "imresize": "resize",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "SRModel",
    "SruscaleError",
    "UnknownModelError",
    "__version__",
    "create_model",
    "imresize",
    "list_models",
    "load_model",
    "save_model",
    "upscale_image",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
