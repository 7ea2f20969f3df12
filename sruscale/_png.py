"""A PNG encoder that takes the image in bands of rows, so no whole-image copy is made while writing.

Pillow converts an RGB array to its own 4-byte-per-pixel image before encoding (for a 12000x8000
output that is a 384 MB copy beside the 288 MB array) and cannot write 16-bit colour; OpenCV needs
BGR (another copy). This writer filters each row with the filter choice libpng and Pillow use (the
filter whose output has the smallest sum of absolute signed bytes) and writes IDAT chunks as they
fill, so its working memory is a few segments of about 1 MB whatever the image size.

Deflate runs on segments of about 1 MB of rows, each on its own in a thread pool (as pigz does), and
keeps the shorter of two encodings per segment: zlib level 2, and run-length matches only (``Z_RLE``,
which suits the small filtered residuals of photographs and upscaled images and is what OpenCV's PNG
writer uses). On Set14 upscaled x2 that is 0.99x the size of zlib level 6 (Pillow's default) at about
a third of its CPU time, and the segments deflate in parallel (``benchmarks/png.py``).
8 and 16 bits, gray / gray+alpha / RGB / RGBA (PNG colour types 0, 4, 2, 6), optional iCCP and eXIf.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import numpy as np

__all__ = ["band_rows", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_IDAT_BYTES = 1 << 20  # deflated bytes per IDAT chunk
_SEGMENT_BYTES = 1 << 20  # samples deflated as one independent segment (whole rows, at least one)
_FILTER_BYTES = 1 << 18  # samples filtered at a time within a segment (its temporaries: about 30x this)
_TRIALS = ((2, zlib.Z_DEFAULT_STRATEGY), (1, zlib.Z_RLE))  # (level, strategy) per segment; the shorter is kept
_ADLER_BASE = 65521


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
    pa, pb = b - c, a - c  # Paeth: the nearest of left, up, upper-left to left + up - upper-left
    pc = np.abs(pa + pb)
    np.abs(pa, out=pa)
    np.abs(pb, out=pb)
    del a, b, c
    nearest = np.where(pb <= pc, up, upleft)
    np.copyto(nearest, left, where=(pa <= pb) & (pa <= pc))
    np.subtract(rows, nearest, out=cand[4])
    del pa, pb, pc, nearest
    # |b| of a signed byte: int8 abs maps -128 to -128, which reads back as 128 unsigned
    total = np.uint32 if stride < 1 << 24 else np.uint64  # 128 * stride fits
    cost = np.abs(cand.view(np.int8)).view(np.uint8).sum(axis=2, dtype=total)
    best = cost.argmin(axis=0)
    out = np.empty((n, 1 + stride), dtype=np.uint8)
    out[:, 0] = best
    out[:, 1:] = cand[best, np.arange(n)]
    return out


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of ``A + B`` from those of ``A`` and ``B`` (RFC 1950: A sums bytes, B sums the A's)."""
    a1, b1, a2, b2 = first & 0xFFFF, first >> 16, second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return a | b << 16


def _segment(rows: np.ndarray, prev: np.ndarray, bpp: int) -> tuple[bytes, int, int]:
    """Filter and deflate ``(n, stride)`` scanlines on their own: (raw deflate ending in a sync flush,
    Adler-32 of the filtered bytes, their count). Any number of segments concatenate into one stream.
    Rows are filtered about 256 KB at a time, so a segment's temporaries stay a few MB."""
    deflates = [zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy) for level, strategy in _TRIALS]
    outs: list[list[bytes]] = [[] for _ in deflates]
    step, adler, length = max(1, _FILTER_BYTES // rows.shape[1]), 1, 0
    for y in range(0, rows.shape[0], step):
        data = _filtered(rows[y : y + step], prev, bpp)
        prev = rows[min(y + step, rows.shape[0]) - 1]
        adler, length = zlib.adler32(data.data, adler), length + data.nbytes
        for deflate, out in zip(deflates, outs, strict=True):
            out.append(deflate.compress(data.data))
    for deflate, out in zip(deflates, outs, strict=True):
        out.append(deflate.flush(zlib.Z_SYNC_FLUSH))
    return min((b"".join(out) for out in outs), key=len), adler, length


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


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
    workers: int | None = None,
) -> None:
    """Write a PNG from ``bands``: ``(rows, width, channels)`` (or ``(rows, width)`` for gray) arrays, top to bottom.

    Args:
        fp: binary file open for writing.
        bands: uint8 (``depth`` 8) or uint16 (``depth`` 16) arrays whose rows total ``height``; threads
            read them after later ones are taken, so a band must not change once it is yielded.
        width, height: image size in pixels (>= 1).
        channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
        depth: 8 or 16 bits per sample.
        icc: ICC profile to embed (iCCP chunk), or None.
        exif: EXIF block (with or without the ``Exif\\0\\0`` header) for an eXIf chunk, or None.
        workers: threads that filter and deflate segments (default: the CPUs this process may use, at most 8).

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
    bpp, done, prev = channels * depth // 8, 0, np.zeros(stride, np.uint8)
    segment: list[np.ndarray] = []  # rows gathered for the next segment (views of the bands)
    per_segment, gathered = max(1, _SEGMENT_BYTES // stride), 0
    pending, adler = bytearray(b"\x78\x01"), 1  # zlib header (deflate, 32 KiB window); Adler-32 of nothing
    queued: deque[Future[tuple[bytes, int, int]]] = deque()
    workers = workers or _default_workers()

    def collect(until: int) -> None:
        nonlocal adler
        while len(queued) > until:
            deflated, part, length = queued.popleft().result()
            adler = _adler32_combine(adler, part, length)
            pending.extend(deflated)
            while len(pending) >= _IDAT_BYTES:
                fp.write(_chunk(b"IDAT", bytes(pending[:_IDAT_BYTES])))
                del pending[:_IDAT_BYTES]

    def submit(pool: ThreadPoolExecutor) -> None:
        nonlocal prev, gathered
        rows = segment[0] if len(segment) == 1 else np.concatenate(segment)
        segment.clear()
        gathered = 0
        queued.append(pool.submit(_segment, rows, prev, bpp))
        prev = rows[-1]
        collect(2 * workers)  # bounded: at most about 2 MB per worker in flight

    with ThreadPoolExecutor(workers, thread_name_prefix="png") as pool:
        for band in bands:
            if band.ndim == 2:
                band = band[:, :, None]
            if band.shape[1:] != (width, channels) or band.dtype.kind != "u" or band.dtype.itemsize * 8 != depth:
                raise ValueError(
                    f"band: expected (rows, {width}, {channels}) uint{depth}, got {band.shape} {band.dtype}"
                )
            done += band.shape[0]
            if done > height:
                raise ValueError(f"bands hold more than the {height} rows of the image")
            if band.shape[0]:
                rows = np.ascontiguousarray(band, dtype=dtype).view(np.uint8).reshape(band.shape[0], stride)
                while len(rows):  # cut into segments of ``per_segment`` rows, whatever the bands' heights
                    segment.append(rows[: per_segment - gathered])
                    gathered, rows = gathered + len(segment[-1]), rows[len(segment[-1]) :]
                    if gathered == per_segment:
                        submit(pool)
        if done != height:
            raise ValueError(f"bands hold {done} rows, expected {height}")
        if segment:
            submit(pool)
        collect(0)
    pending += zlib.compressobj(1, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty final block
    pending += struct.pack(">I", adler)
    for i in range(0, len(pending), _IDAT_BYTES):
        fp.write(_chunk(b"IDAT", bytes(pending[i : i + _IDAT_BYTES])))
    fp.write(_chunk(b"IEND", b""))
