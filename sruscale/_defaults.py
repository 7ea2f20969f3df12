"""Defaults shared by the library and the command line, importable without torch."""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_MAX_PIXELS", "AlphaMode", "Precision"]

#: inference precision; ``auto`` = fp16/bf16 on CUDA only, fp32 elsewhere
Precision = Literal["auto", "fp32", "fp16", "bf16"]
#: how an alpha channel is upscaled
AlphaMode = Literal["model", "bicubic"]

DEFAULT_MAX_PIXELS = 256_000_000
"""Decompression-bomb limit of :func:`~sruscale.image.read_image` (width * height of the source), 256 MP."""
