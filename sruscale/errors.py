"""Exception hierarchy. Library code raises these; only ``cli.main`` turns them into messages."""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ImageError",
    "NonFiniteOutputError",
    "SruscaleError",
    "UnknownModelError",
]


class SruscaleError(Exception):
    """Base class of every error sruscale raises on purpose."""


class UnknownModelError(SruscaleError, ValueError):
    """A model name that is not in the registry or the weights manifest."""


class ImageError(SruscaleError, ValueError):
    """An image that cannot be read, decoded, or written."""


class CheckpointError(SruscaleError):
    """A weights file that is missing, corrupt, or does not match what was expected."""


class ConfigError(SruscaleError, ValueError):
    """A recipe or option value that is invalid (unknown key, wrong type, bad range)."""


class NonFiniteOutputError(SruscaleError):
    """A model output with NaN/Inf that recomputing in fp32 does not fix (that image fails)."""
