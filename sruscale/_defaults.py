"""Defaults shared by the library and the command line, importable without torch."""

from __future__ import annotations

import re
from typing import Literal

from .errors import ConfigError

__all__ = ["DEFAULT_MAX_PIXELS", "DEVICES", "AlphaMode", "Precision", "parse_device"]

#: inference precision; ``auto`` = fp16/bf16 on CUDA only, fp32 elsewhere
Precision = Literal["auto", "fp32", "fp16", "bf16"]
#: how an alpha channel is upscaled
AlphaMode = Literal["model", "bicubic"]

DEFAULT_MAX_PIXELS = 256_000_000
"""Decompression-bomb limit of :func:`~sruscale.image.read_image` (width * height of the source), 256 MP."""

#: accepted ``--device`` forms (``cuda:N`` is also accepted)
DEVICES = ("auto", "cpu", "cuda", "mps")
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(?::\d+)?")


def parse_device(spec: str) -> str:
    """The normalised spelling of a device string (syntax only; availability is not checked, see
    :func:`sruscale.device.resolve_device`). Here, without torch, so parsing ``--device`` imports no torch.

    Raises:
        ConfigError: not one of ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
    """
    s = spec.strip().lower()
    if _DEVICE_RE.fullmatch(s) is None:
        raise ConfigError(f"unknown device {spec!r}; expected one of auto, cpu, cuda, cuda:N, mps")
    return s
