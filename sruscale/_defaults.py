"""Defaults shared by the library and the command line, importable without torch."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_PIXELS = 256_000_000
"""Decompression-bomb limit of :func:`~sruscale.image.read_image` (width * height of the source), 256 MP."""
