"""sruscale: batch image super-resolution on PyTorch."""

from __future__ import annotations

from ._version import __version__
from .api import load_model, upscale_image
from .checkpoint import load_model_file, save_model
from .errors import CheckpointError, ConfigError, ImageError, SruscaleError, UnknownModelError
from .models import SRModel, create_model, list_models
from .resize import imresize

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
    "load_model_file",
    "save_model",
    "upscale_image",
]
