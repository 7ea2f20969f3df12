"""A PNG encoder that takes the image in bands of rows, so no whole-image copy is made while writing.

Pillow converts an RGB array to its own 4-byte-per-pixel image before encoding (for a 12000x8000
output that is a 384 MB copy beside the 288 MB array) and cannot write 16-bit colour; OpenCV needs
BGR (another copy). This writer filters each band with the per-row filter choice libpng and Pillow
use (the filter whose output has the smallest sum of absolute signed bytes), deflates it with zlib
and writes IDAT chunks as they fill, so its working memory is a few bands whatever the image size.
8 and 16 bits, gray / gray+alpha / RGB / RGBA (PNG colour types 0, 4, 2, 6), optional iCCP and eXIf.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np

__all__ = ["band_rows", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_IDAT_BYTES = 1 << 20  # deflated bytes per IDAT chunk


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def band_rows(width: int, channels: int, depth: int, target_bytes: int = 1 << 20) -> int:
    """Rows per band for about ``target_bytes`` of samples (at least 1)."""
    return max(1, target_bytes // max(1, width * channels * depth // 8))


def _filtered(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """``(n, stride)`` uint8 scanlines -> ``(n, 1 + stride)``: each row as its best filter, type byte first.

    ``prev`` is the scanline above the first row (zeros for the image's first row). The choice per row
    is the filter minimising the sum of ``|b|`` over its bytes read as signed (the PNG specification's
    recommended heuristic, as in libpng and Pillow). uint8 arithmetic wraps modulo 256, as PNG's does.
    """
    n, stride = rows.shape
    up = np.empty_like(rows)
    up[0], up[1:] = prev, rows[:-1]
    left, upleft = np.zeros_like(rows), np.zeros_like(rows)
    left[:, bpp:], upleft[:, bpp:] = rows[:, :-bpp], up[:, :-bpp]
    cand = np.empty((5, n, stride), dtype=np.uint8)  # None, Sub, Up, Average, Paeth
    cand[0] = rows
    np.subtract(rows, left, out=cand[1])
    np.subtract(rows, up, out=cand[2])
    np.subtract(rows, (left >> 1) + (up >> 1) + (left & up & 1), out=cand[3])  # floor((left + up) / 2)
    a, b, c = (v.astype(np.int16) for v in (left, up, upleft))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)  # Paeth: nearest of left, up, upper-left
    del a, b, c
    np.subtract(rows, np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft)), out=cand[4])
    del pa, pb, pc
    cost = np.stack([np.abs(f.view(np.int8), dtype=np.int16).sum(axis=1, dtype=np.int64) for f in cand])
    best = cost.argmin(axis=0)
    out = np.empty((n, 1 + stride), dtype=np.uint8)
    out[:, 0] = best
    out[:, 1:] = cand[best, np.arange(n)]
    return out


def write_png(
    fp: BinaryIO,
    bands: Iterable[np.ndarray],
    *,
    width: int,
    height: int,
    channels: int,
    depth: int,
    icc: bytes | None = None,
    exif: bytes | None = None,
    level: int = 6,
) -> None:
    """Write a PNG from ``bands``: ``(rows, width, channels)`` (or ``(rows, width)`` for gray) arrays, top to bottom.

    Args:
        fp: binary file open for writing.
        bands: uint8 (``depth`` 8) or uint16 (``depth`` 16) arrays whose rows total ``height``.
        width, height: image size in pixels (>= 1).
        channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
        depth: 8 or 16 bits per sample.
        icc: ICC profile to embed (iCCP chunk), or None.
        exif: EXIF block (with or without the ``Exif\\0\\0`` header) for an eXIf chunk, or None.
        level: zlib level (6, as Pillow's default).

    Raises:
        ValueError: a band of the wrong shape or dtype, or rows that do not total ``height``.
    """
    if channels not in _COLOUR_TYPES or depth not in (8, 16) or width < 1 or height < 1:
        raise ValueError(f"cannot write {width}x{height} x{channels} channels at {depth} bits as PNG")
    dtype = np.dtype(np.uint8 if depth == 8 else ">u2")
    stride = width * channels * depth // 8
    fp.write(_SIGNATURE)
    fp.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _COLOUR_TYPES[channels], 0, 0, 0)))
    if icc:
        fp.write(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        fp.write(_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    deflate, pending, prev, done = zlib.compressobj(level), bytearray(), np.zeros(stride, np.uint8), 0
    for band in bands:
        if band.ndim == 2:
            band = band[:, :, None]
        if band.shape[1:] != (width, channels) or band.dtype.kind != "u" or band.dtype.itemsize * 8 != depth:
            raise ValueError(f"band: expected (rows, {width}, {channels}) uint{depth}, got {band.shape} {band.dtype}")
        done += band.shape[0]
        if done > height:
            raise ValueError(f"bands hold more than the {height} rows of the image")
        rows = np.ascontiguousarray(band, dtype=dtype).view(np.uint8).reshape(band.shape[0], stride)
        if rows.shape[0] == 0:
            continue
        pending += deflate.compress(_filtered(rows, prev, channels * depth // 8).tobytes())
        prev = rows[-1].copy()
        while len(pending) >= _IDAT_BYTES:
            fp.write(_chunk(b"IDAT", bytes(pending[:_IDAT_BYTES])))
            del pending[:_IDAT_BYTES]
    if done != height:
        raise ValueError(f"bands hold {done} rows, expected {height}")
    pending += deflate.flush()
    for i in range(0, len(pending), _IDAT_BYTES):
        fp.write(_chunk(b"IDAT", bytes(pending[i : i + _IDAT_BYTES])))
    fp.write(_chunk(b"IEND", b""))
