"""The band-by-band PNG encoder: every colour type and depth decodes to the same samples in Pillow and OpenCV."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from sruscale._png import _adler32_combine, write_png

RNG = np.random.default_rng(0)


def _image(h: int, w: int, c: int, depth: int) -> np.ndarray:
    """Smooth gradients plus noise and flat runs, so that every filter type wins somewhere."""
    peak = 255 if depth == 8 else 65535
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 3 + y * 5)[:, :, None] * np.arange(1, c + 1) * (peak // 400)
    a = (base + RNG.integers(0, peak // 16, (h, w, c))) % (peak + 1)
    a[: h // 4] = peak // 3  # flat rows
    a[h // 2 :, : w // 3] = RNG.integers(0, peak + 1, (h - h // 2, w // 3, c))  # noise
    return a.astype(np.uint8 if depth == 8 else np.uint16)


def _encode(a: np.ndarray, rows: int, **kw: object) -> bytes:
    buf = io.BytesIO()
    h, w, c = a.shape
    bands = (a[y : y + rows] for y in range(0, h, rows))
    write_png(buf, bands, width=w, height=h, channels=c, depth=a.dtype.itemsize * 8, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, i = [], 8
    while i < len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        kind, body = png[i + 4 : i + 8], png[i + 8 : i + 8 + n]
        assert struct.unpack(">I", png[i + 8 + n : i + 12 + n])[0] == zlib.crc32(kind + body)
        out.append((kind, body))
        i += 12 + n
    return out


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_roundtrip_in_opencv(channels: int, depth: int) -> None:
    a = _image(37, 29, channels, depth)
    got = cv2.imdecode(np.frombuffer(_encode(a, 5), np.uint8), cv2.IMREAD_UNCHANGED)
    assert got is not None
    if channels == 1:
        np.testing.assert_array_equal(got, a[:, :, 0])
    elif channels == 2:  # OpenCV gives gray+alpha as BGRA
        np.testing.assert_array_equal(got[:, :, 0], a[:, :, 0])
        np.testing.assert_array_equal(got[:, :, 3], a[:, :, 1])
    else:
        np.testing.assert_array_equal(got[:, :, [2, 1, 0, 3][:channels]], a)


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_roundtrip_in_pillow_8bit(channels: int, mode: str) -> None:
    a = _image(23, 41, channels, 8)
    im = Image.open(io.BytesIO(_encode(a, 4)))
    assert im.mode == mode and im.size == (41, 23)
    np.testing.assert_array_equal(np.asarray(im).reshape(a.shape), a)


def test_band_split_does_not_change_the_stream() -> None:
    a = _image(50, 33, 3, 8)
    idat = [b"".join(b for k, b in _chunks(_encode(a, rows)) if k == b"IDAT") for rows in (1, 7, 50)]
    streams = {zlib.decompress(d) for d in idat}
    assert len(streams) == 1
    (raw,) = streams
    filters = {raw[i * (1 + 33 * 3)] for i in range(50)}
    assert filters == {0, 1, 2, 3, 4}, "the test image should exercise all five filter types"


def test_compresses_like_pillow() -> None:
    a = _image(64, 96, 3, 8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    assert len(_encode(a, 16)) <= 1.05 * len(buf.getvalue())


def test_metadata_chunks_and_order() -> None:
    icc, exif = b"fake-profile" * 10, b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"
    png = _encode(_image(8, 8, 3, 8), 8, icc=icc, exif=exif)
    kinds = [k for k, _ in _chunks(png)]
    assert kinds[:3] == [b"IHDR", b"iCCP", b"eXIf"] and kinds[-1] == b"IEND" and b"IDAT" in kinds
    bodies = dict(_chunks(png))
    assert zlib.decompress(bodies[b"iCCP"].split(b"\x00", 1)[1][1:]) == icc
    assert bodies[b"eXIf"] == exif[6:]
    assert Image.open(io.BytesIO(png)).info["icc_profile"] == icc


@pytest.mark.parametrize("split", [0, 1, 7, 65520, 65521, 200_000])
def test_adler32_combine(split: int) -> None:
    data = RNG.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    a, b = data[:split], data[split:]
    assert _adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(data)


def test_segments_deflate_in_parallel_to_the_same_file() -> None:
    """Several 1 MB segments: one stream (zlib checks its Adler-32), the same bytes with 1 or 3 threads."""
    a = np.concatenate([_image(300, 1500, 3, 8), RNG.integers(0, 256, (300, 1500, 3), dtype=np.uint8)])
    h, w, _ = a.shape
    one, three = (io.BytesIO(), io.BytesIO())
    for buf, workers in ((one, 1), (three, 3)):
        write_png(buf, (a[y : y + 50] for y in range(0, h, 50)), width=w, height=h, channels=3, depth=8,
                  workers=workers)  # fmt: skip
    assert one.getvalue() == three.getvalue()
    raw = zlib.decompress(b"".join(b for k, b in _chunks(one.getvalue()) if k == b"IDAT"))
    assert len(raw) == h * (1 + w * 3)
    np.testing.assert_array_equal(np.asarray(Image.open(one)), a)


def test_large_idat_is_split() -> None:
    a = RNG.integers(0, 256, (600, 800, 3), dtype=np.uint8)  # incompressible: about 1.4 MB deflated
    png = _encode(a, 100)
    assert sum(k == b"IDAT" for k, _ in _chunks(png)) >= 2
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), a)


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ([np.zeros((6, 5, 3), np.uint8)], r"expected \(rows, 6, 3\) uint8"),
        ([np.zeros((6, 6, 3), np.uint16)], r"expected \(rows, 6, 3\) uint8"),
        ([np.zeros((4, 6, 3), np.uint8)] * 2, "more than the 6 rows"),
        ([np.zeros((5, 6, 3), np.uint8)], "hold 5 rows, expected 6"),
    ],
)
def test_bad_bands_are_refused(bands: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_png(io.BytesIO(), bands, width=6, height=6, channels=3, depth=8)


def test_bad_format_is_refused() -> None:
    with pytest.raises(ValueError, match="5 channels at 8 bits"):
        write_png(io.BytesIO(), [], width=6, height=6, channels=5, depth=8)
