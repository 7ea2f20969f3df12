"""Image I/O: bit depth, gray/alpha/palette/CMYK, EXIF orientation, ICC, bomb guard, bad files, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

from sruscale.errors import ConfigError, ImageError
from sruscale.image import (
    DEFAULT_MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageData,
    array_to_tensor,
    read_image,
    tensor_to_array,
    write_image,
)

RNG = np.random.default_rng(0)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def u16(*shape: int) -> np.ndarray:
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


def cv2_write(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB(A)/gray array with OpenCV (the only way to make 16-bit colour files here)."""
    if rgb.ndim == 3:
        rgb = rgb[:, :, [2, 1, 0, 3][: rgb.shape[2]]]
    ok, buf = cv2.imencode(path.suffix, rgb)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def cv2_read(path: Path) -> np.ndarray:
    arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    return arr if arr.ndim == 2 else arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]


def png16_raw(arr: np.ndarray, color_type: int) -> bytes:
    """A minimal 16-bit PNG (e.g. gray+alpha, color type 4, which neither Pillow nor OpenCV write)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\0" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def back(img: ImageData, bit_depth: int | None = None) -> np.ndarray:
    arr = tensor_to_array(img.pixels, bit_depth or img.bit_depth)
    if img.alpha is not None:
        arr = np.dstack([arr, tensor_to_array(img.alpha, bit_depth or img.bit_depth)])
    return arr


# ---------------------------------------------------------------- bit depth


@pytest.mark.parametrize("shape", [(9, 7, 3), (9, 7)])
def test_keep8_reads_the_decoded_bytes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    src = u8(*shape)
    Image.fromarray(src).save(tmp_path / "a.png")
    kept, ref = read_image(tmp_path / "a.png", keep8=True), read_image(tmp_path / "a.png")
    assert kept.pixels.dtype == torch.uint8 and kept.pixels.shape == ref.pixels.shape
    assert torch.equal(kept.floating().pixels, ref.pixels)
    kept.pixels[0, 0, 0, 0] ^= 1  # its own (writable) buffer, not Pillow's
    cv2_write(tmp_path / "d.png", u16(4, 5, 3))
    assert read_image(tmp_path / "d.png", keep8=True).pixels.dtype == torch.float32  # 16-bit stays float


def test_uint8_image_upscales_like_float(tmp_path: Path) -> None:
    from sruscale.api import upscale_image
    from sruscale.models import create_model

    model = create_model("fsrcnn", scale=2).eval()
    Image.fromarray(u8(30, 26, 3)).save(tmp_path / "a.png")
    kept, ref = read_image(tmp_path / "a.png", keep8=True), read_image(tmp_path / "a.png")
    for kw in ({"tile": 16, "overlap": 8}, {"outscale": 1.5}, {"final8": True}):
        a, b = upscale_image(kept, model, **kw), upscale_image(ref, model, **kw)  # type: ignore[arg-type]
        assert a.pixels.dtype == b.pixels.dtype and torch.equal(a.pixels, b.pixels), kw
    bicubic = create_model("bicubic", scale=2)
    a, b = upscale_image(kept, bicubic, outscale=1.5), upscale_image(ref, bicubic, outscale=1.5)
    assert torch.equal(a.pixels, b.pixels)


@pytest.mark.parametrize("mode_shape", [(20, 24), (20, 24, 3), (20, 24, 2), (20, 24, 4)])
def test_png_8bit_round_trip_exact(tmp_path: Path, mode_shape: tuple[int, ...]) -> None:
    src = u8(*mode_shape)
    Image.fromarray(src).save(tmp_path / "in.png")
    img = read_image(tmp_path / "in.png")
    assert img.bit_depth == 8 and img.format == "PNG" and img.size == (20, 24)
    gray = len(mode_shape) == 2 or mode_shape[2] == 2
    assert img.pixels.dtype == torch.float32 and img.channels == (1 if gray else 3)
    assert (img.alpha is not None) == (len(mode_shape) == 3 and mode_shape[2] in (2, 4))
    np.testing.assert_array_equal(back(img), src)
    assert write_image(tmp_path / "out.png", img) == []
    out = Image.open(tmp_path / "out.png")
    assert out.mode == Image.fromarray(src).mode
    np.testing.assert_array_equal(np.asarray(out), src)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_round_trip_exact(tmp_path: Path, suffix: str, channels: int) -> None:
    src = u16(18, 22) if channels == 1 else u16(18, 22, channels)
    cv2_write(tmp_path / f"in{suffix}", src)
    img = read_image(tmp_path / f"in{suffix}")
    assert img.bit_depth == 16 and img.channels == (1 if channels == 1 else 3)
    assert (img.alpha is not None) == (channels == 4)
    np.testing.assert_array_equal(back(img), src)
    assert write_image(tmp_path / f"out{suffix}", img) == []
    out = cv2_read(tmp_path / f"out{suffix}")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, src)


def test_16bit_decided_by_type_not_values(tmp_path: Path) -> None:
    src = u8(10, 12, 3).astype(np.uint16)  # every value < 256, still a 16-bit file
    cv2_write(tmp_path / "low.png", src)
    img = read_image(tmp_path / "low.png")
    assert img.bit_depth == 16
    write_image(tmp_path / "out.png", img)
    assert cv2_read(tmp_path / "out.png").dtype == np.uint16
    dark8 = np.zeros((10, 12, 3), np.uint8)
    Image.fromarray(dark8).save(tmp_path / "dark.png")
    assert read_image(tmp_path / "dark.png").bit_depth == 8


def test_16bit_gray_is_written_by_pillow_with_icc(tmp_path: Path) -> None:
    src = u16(12, 14)
    Image.fromarray(src).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.channels == 1 and img.bit_depth == 16
    gray_icc = SRGB[:16] + b"GRAY" + SRGB[20:]  # header says GRAY: valid for a gray image
    notes = write_image(tmp_path / "o.png", ImageData(img.pixels, None, 16, icc_profile=gray_icc))
    assert notes == []
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "I;16" and out.info["icc_profile"] == gray_icc
    np.testing.assert_array_equal(np.asarray(out), src)


def test_16bit_gray_alpha_png(tmp_path: Path) -> None:
    src = u16(6, 7, 2)
    (tmp_path / "la16.png").write_bytes(png16_raw(src, 4))
    img = read_image(tmp_path / "la16.png")
    assert img.channels == 1 and img.alpha is not None and img.bit_depth == 16
    np.testing.assert_array_equal(back(img), src)
    assert write_image(tmp_path / "o.png", img) == []  # kept as 16-bit gray+alpha (colour type 4)
    out = read_image(tmp_path / "o.png")
    assert out.channels == 1 and out.alpha is not None and out.bit_depth == 16
    np.testing.assert_array_equal(back(out), src)
    notes = write_image(tmp_path / "o.tif", img)
    assert notes == ["no 16-bit gray+alpha TIFF writer: saved as 16-bit RGBA"]
    tif = cv2_read(tmp_path / "o.tif")
    np.testing.assert_array_equal(tif[:, :, 1], src[:, :, 0])
    np.testing.assert_array_equal(tif[:, :, 3], src[:, :, 1])


def test_16bit_to_jpeg_is_reduced_with_note(tmp_path: Path) -> None:
    src = u16(16, 16, 3)
    cv2_write(tmp_path / "in.png", src)
    notes = write_image(tmp_path / "o.jpg", read_image(tmp_path / "in.png"), quality=100)
    assert notes == ["JPEG stores 8 bits per channel: 16-bit reduced to 8-bit"]
    assert np.asarray(Image.open(tmp_path / "o.jpg")).dtype == np.uint8


def test_16bit_ppm_and_float_tiff(tmp_path: Path) -> None:
    src = u16(8, 9, 3)
    cv2_write(tmp_path / "in.ppm", src)
    img = read_image(tmp_path / "in.ppm")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(back(img), src)
    gray = u16(8, 9)
    cv2_write(tmp_path / "in.pgm", gray)
    assert Image.open(tmp_path / "in.pgm").mode == "I"
    img = read_image(tmp_path / "in.pgm")
    assert img.bit_depth == 16 and img.channels == 1
    np.testing.assert_array_equal(back(img), gray)
    f = np.linspace(-0.5, 1.5, 72, dtype=np.float32).reshape(8, 9)
    Image.fromarray(f).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16 and img.channels == 1
    torch.testing.assert_close(img.pixels[0, 0], torch.from_numpy(np.clip(f, 0, 1)))


# ---------------------------------------------------------------- colour models


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    idx = (np.arange(8 * 10).reshape(8, 10) % 4).astype(np.uint8)
    pal = Image.frombytes("P", (10, 8), idx.tobytes())
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * (252 * 3))
    pal.save(tmp_path / "opaque.png")
    pal.save(tmp_path / "transparent.png", transparency=2)
    opaque = read_image(tmp_path / "opaque.png")
    assert opaque.channels == 3 and opaque.alpha is None and opaque.bit_depth == 8
    assert tuple(back(opaque)[0, 0]) == (255, 0, 0) and tuple(back(opaque)[0, 3]) == (9, 9, 9)
    trans = read_image(tmp_path / "transparent.png")
    assert trans.alpha is not None
    alpha = tensor_to_array(trans.alpha)
    np.testing.assert_array_equal(alpha, np.where(idx == 2, 0, 255))


def test_gif_palette_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    img = read_image(tmp_path / "a.gif")
    assert img.channels == 3 and img.size == (8, 8)
    assert abs(int(back(img)[0, 0, 0]) - 10) <= 2


def test_bilevel_is_gray(tmp_path: Path) -> None:
    Image.fromarray(u8(8, 8) > 127).save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png")
    assert img.channels == 1 and set(np.unique(back(img))) <= {0, 255}


def test_cmyk_jpeg_becomes_rgb_without_cmyk_profile(tmp_path: Path) -> None:
    rgb = Image.fromarray(np.repeat(np.repeat(u8(4, 4, 3), 4, 0), 4, 1))
    cmyk_icc = SRGB[:16] + b"CMYK" + SRGB[20:]  # a (fake) CMYK profile: it must not follow the RGB pixels
    rgb.convert("CMYK").save(tmp_path / "c.jpg", quality=100, icc_profile=cmyk_icc)
    assert Image.open(tmp_path / "c.jpg").info["icc_profile"] == cmyk_icc
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    img = read_image(tmp_path / "c.jpg")
    assert img.channels == 3 and img.alpha is None and img.icc_profile is None
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB")).astype(int)
    assert np.abs(back(img).astype(int) - expected).max() <= 1


# ---------------------------------------------------------------- EXIF and ICC


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    src = u8(6, 10, 4)
    Image.fromarray(src).save(tmp_path / "o.png", exif=_exif(orientation))
    img = read_image(tmp_path / "o.png")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(back(img), expected)
    ex = Image.Exif()
    ex.load(img.exif)
    assert ex.get(0x0112) == 1 and ex.get(0x010F) == "TestCam"


def test_exif_orientation_stored_as_long_is_dropped_not_kept() -> None:
    from sruscale.image import _exif_without_orientation

    entry = struct.pack("<HHII", 0x0112, 4, 1, 6)  # Orientation as LONG: cannot be patched in place
    raw = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + b"\0\0\0\0"
    assert _exif_without_orientation(raw) is None
    short = b"Exif\x00\x00II*\x00" + struct.pack("<IHHHIHH", 8, 1, 0x0112, 3, 1, 6, 0) + b"\0\0\0\0"
    assert _exif_without_orientation(short) == short.replace(struct.pack("<HH", 6, 0), struct.pack("<HH", 1, 0))
    assert _exif_without_orientation(b"garbage") is None


def test_exif_rotated_jpeg_swaps_dims_and_keeps_exif(tmp_path: Path) -> None:
    Image.fromarray(u8(16, 32, 3)).save(tmp_path / "r.jpg", exif=_exif(6))
    img = read_image(tmp_path / "r.jpg")
    assert img.size == (32, 16)
    assert write_image(tmp_path / "o.jpg", img) == []
    out = Image.open(tmp_path / "o.jpg")
    assert out.size == (16, 32)  # PIL size is (W, H): stored upright
    assert out.getexif().get(0x0112) == 1 and out.getexif().get(0x010F) == "TestCam"


def test_exif_rotated_16bit_png(tmp_path: Path) -> None:
    src = u16(6, 10, 3)
    png = cv2.imencode(".png", src[:, :, ::-1])[1].tobytes()
    body = _exif(8).removeprefix(b"Exif\x00\x00")
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    (tmp_path / "r.png").write_bytes(png[:33] + chunk + png[33:])
    img = read_image(tmp_path / "r.png")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(back(img), np.rot90(src, 1))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_carried(tmp_path: Path, suffix: str) -> None:
    Image.fromarray(u8(12, 12, 3)).save(tmp_path / "in.png", icc_profile=SRGB)
    img = read_image(tmp_path / "in.png")
    assert img.icc_profile == SRGB
    assert write_image(tmp_path / f"out{suffix}", img) == []
    assert Image.open(tmp_path / f"out{suffix}").info["icc_profile"] == SRGB
    assert read_image(tmp_path / f"out{suffix}").icc_profile == SRGB


def test_icc_and_exif_in_16bit_colour_png(tmp_path: Path) -> None:
    img = ImageData(array_to_tensor(u16(8, 8, 3)), None, 16, icc_profile=SRGB, exif=_exif(1))
    assert write_image(tmp_path / "o.png", img) == []
    out = Image.open(tmp_path / "o.png")
    assert out.info["icc_profile"] == SRGB and out.getexif().get(0x010F) == "TestCam"
    again = read_image(tmp_path / "o.png")
    assert again.bit_depth == 16 and again.icc_profile == SRGB
    notes = write_image(tmp_path / "o.tif", img)
    assert notes == [
        "16-bit colour TIFF is written without ICC profile: profile dropped",
        "16-bit colour TIFF is written without EXIF: EXIF dropped",
    ]


def test_icc_dropped_where_impossible_or_mismatched(tmp_path: Path) -> None:
    rgb = ImageData(array_to_tensor(u8(8, 8, 3)), None, 8, icc_profile=SRGB)
    assert write_image(tmp_path / "o.bmp", rgb) == ["BMP is written without ICC profile: profile dropped"]
    gray = ImageData(array_to_tensor(u8(8, 8)), None, 8, icc_profile=SRGB)
    assert write_image(tmp_path / "g.png", gray) == ["ICC profile describes RGB, not GRAY pixels: profile dropped"]
    assert "icc_profile" not in Image.open(tmp_path / "g.png").info


# ---------------------------------------------------------------- other formats, alpha notes, quality


def test_webp_and_bmp(tmp_path: Path) -> None:
    src = u8(16, 20, 3)
    Image.fromarray(src).save(tmp_path / "a.bmp")
    bmp = read_image(tmp_path / "a.bmp")
    np.testing.assert_array_equal(back(bmp), src)
    smooth = torch.linspace(0, 1, 16 * 20).reshape(1, 1, 16, 20)
    rgba = ImageData(torch.cat([smooth, smooth.flip(3), smooth * 0.5], 1), smooth.flip(2), 8)
    assert write_image(tmp_path / "a.webp", rgba, quality=100) == []
    webp = read_image(tmp_path / "a.webp")
    assert webp.format == "WEBP" and webp.alpha is not None and webp.channels == 3
    assert np.abs(back(webp).astype(int) - back(rgba).astype(int)).mean() < 3
    rgba = ImageData(bmp.pixels, array_to_tensor(u8(16, 20)), 8)
    gray = ImageData(array_to_tensor(u8(16, 20)), None, 8)
    assert write_image(tmp_path / "g.webp", gray) == ["WEBP has no grayscale mode: saved as RGB"]
    assert write_image(tmp_path / "a.bmp", rgba) == ["BMP has no alpha channel: alpha dropped"]


def test_jpeg_drops_alpha_and_quality_matters(tmp_path: Path) -> None:
    src = u8(32, 32, 4)
    Image.fromarray(src).save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert write_image(tmp_path / "hi.jpg", img, quality=95) == ["JPEG has no alpha channel: alpha dropped"]
    write_image(tmp_path / "lo.jpg", img, quality=10)
    assert Image.open(tmp_path / "hi.jpg").mode == "RGB"
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size
    with pytest.raises(ConfigError, match="quality"):
        write_image(tmp_path / "x.jpg", img, quality=0)
    with pytest.raises(ImageError, match="cannot write '.xyz'"):
        write_image(tmp_path / "x.xyz", img)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_unicode_and_space_paths(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "dossier été ß 写真"
    folder.mkdir()
    src = u16(10, 12, 3)
    cv2_write(tmp_path / f"plain{suffix}", src)
    (folder / f"ünï cödé {suffix}").write_bytes((tmp_path / f"plain{suffix}").read_bytes())
    img = read_image(folder / f"ünï cödé {suffix}")
    np.testing.assert_array_equal(back(img), src)
    write_image(folder / f"out ✓{suffix}", img)
    np.testing.assert_array_equal(cv2_read(folder / f"out ✓{suffix}"), src)
    write_image(folder / "8 bit é.jpg", img)
    assert read_image(folder / "8 bit é.jpg").size == (10, 12)


def test_supported_suffixes() -> None:
    assert set(".png .jpg .jpeg .webp .tif .tiff .bmp .gif .ppm .pgm .tga".split()) <= SUPPORTED_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)


# ---------------------------------------------------------------- bomb guard


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims ``w x h`` but carries 11 bytes of pixel data (a decompression bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 3)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_bomb_guard_message_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))  # no pixel data at all: only the header is read
    assert DEFAULT_MAX_PIXELS == 256_000_000
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert str(info.value) == (
        f"{path}: 30000x30000 = 900.0 MP exceeds the --max-pixels limit of 256.0 MP; raise it with --max-pixels N"
    )
    path.write_bytes(_png_header_only(2000, 1000))
    with pytest.raises(ImageError, match="2000x1000 = 2.0 MP exceeds the --max-pixels limit of 1.0 MP"):
        read_image(path, max_pixels=1_000_000)
    with pytest.raises(ImageError, match="corrupt or truncated"):  # no limit: it decodes (and finds no data)
        read_image(path, max_pixels=None)


def test_bomb_guard_limit_and_pillow_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(u8(40, 50, 3)).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="50x40 = 0.0 MP exceeds the --max-pixels limit"):
        read_image(tmp_path / "a.png", max_pixels=1999)
    assert read_image(tmp_path / "a.png", max_pixels=2000).size == (40, 50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow's own guard must not pre-empt ours
    assert read_image(tmp_path / "a.png").size == (40, 50)
    assert Image.MAX_IMAGE_PIXELS == 10  # and is restored afterwards
    with pytest.raises(ConfigError):
        read_image(tmp_path / "a.png", max_pixels=0)


# ---------------------------------------------------------------- bad input


def _assert_one_line(exc: ImageError, path: Path, reason: str) -> None:
    msg = str(exc)
    assert msg.startswith(f"{path}: ") and path.name in msg and "\n" not in msg
    assert reason in msg, msg


def test_bad_files(tmp_path: Path) -> None:
    Image.fromarray(u8(32, 32, 3)).save(tmp_path / "good.png")
    Image.fromarray(u8(32, 32, 3)).save(tmp_path / "good.jpg")
    cv2_write(tmp_path / "good16.png", u16(32, 32, 3))
    cases = {
        "missing.png": (None, "file not found"),
        "empty.png": (b"", "empty file (0 bytes)"),
        "garbage.jpg": (os.urandom(300), "not an image"),
        "text.png": (b"hello, I am not an image\n" * 5, "not an image"),
        "trunc.png": ((tmp_path / "good.png").read_bytes()[:1500], "truncated"),
        "trunc.jpg": ((tmp_path / "good.jpg").read_bytes()[:1200], "truncated"),
        "header.jpg": ((tmp_path / "good.jpg").read_bytes()[:300], "truncated"),
        "header.png": ((tmp_path / "good.png").read_bytes()[:20], "corrupt or truncated image header"),
        "trunc16.png": ((tmp_path / "good16.png").read_bytes()[:2000], "truncated"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ImageError) as info:
            read_image(path)
        _assert_one_line(info.value, path, reason)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "folder.png")
    _assert_one_line(info.value, tmp_path / "folder.png", "is a directory")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    Image.fromarray(u8(4, 4)).save(path)
    path.chmod(0)
    try:
        with pytest.raises(ImageError) as info:
            read_image(path)
        _assert_one_line(info.value, path, "permission denied")
    finally:
        path.chmod(0o644)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_only_the_output(tmp_path: Path) -> None:
    img = ImageData(array_to_tensor(u8(8, 8, 3)), None, 8)
    write_image(tmp_path / "sub" / "o.png", img)  # creates the folder
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["o.png"]
    mode = (tmp_path / "sub" / "o.png").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize(("suffix", "deep"), [(".png", False), (".png", True), (".tif", True), (".jpg", False)])
def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, deep: bool
) -> None:
    img = ImageData(array_to_tensor(u16(40, 8, 3) if deep else u8(40, 8, 3)), None, 16 if deep else 8)
    old = tmp_path / f"old{suffix}"
    old.write_bytes(b"previous output")

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"partial")  # type: ignore[arg-type]
        raise OSError("disk full")

    def broken_band(*args: object) -> object:  # the PNG writer fails after its header is written
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    monkeypatch.setattr("sruscale._png._filtered", broken_band)
    fmt = {".png": "PNG", ".tif": "TIFF", ".jpg": "JPEG"}[suffix]
    for name in (f"new{suffix}", old.name):
        with pytest.raises(ImageError, match=rf"cannot write {fmt} \(disk full\)") as info:
            write_image(tmp_path / name, img)
        assert str(info.value).startswith(str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]
    assert old.read_bytes() == b"previous output"


def test_interrupted_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"half")  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "o.jpg", ImageData(array_to_tensor(u8(8, 8, 3)), None, 8))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- tensors and the dataclass


def test_tensor_array_helpers() -> None:
    x = torch.tensor([[[[-0.2, 0.0, 0.5 / 255, 1.49 / 255], [0.5, 1.0, 1.7, float("nan")]]]])
    np.testing.assert_array_equal(tensor_to_array(x, 8), [[0, 0, 0, 1], [128, 255, 255, 0]])
    assert tensor_to_array(x, 16).dtype == np.uint16 and tensor_to_array(x, 16)[1, 1] == 65535
    assert tensor_to_array(torch.zeros(1, 3, 2, 5)).shape == (2, 5, 3)
    src16 = u16(3, 4, 3)
    t = array_to_tensor(src16)
    assert t.shape == (1, 3, 3, 4) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    np.testing.assert_array_equal(tensor_to_array(t, 16), src16)
    with pytest.raises(ImageError, match="expected a uint8, uint16 or float array"):
        array_to_tensor(np.zeros((2, 2), np.int64))
    with pytest.raises(ImageError, match="bit_depth"):
        tensor_to_array(t, 12)


def test_imagedata_validation_and_with_pixels() -> None:
    with pytest.raises(ImageError, match=r"expected float \(1, C, H, W\)"):
        ImageData(torch.zeros(1, 4, 2, 2), None, 8)
    with pytest.raises(ImageError, match=r"alpha: expected shape \(1, 1, 2, 2\)"):
        ImageData(torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 3, 3), 8)
    with pytest.raises(ImageError, match="bit_depth"):
        ImageData(torch.zeros(1, 3, 2, 2), None, 12)
    img = ImageData(torch.zeros(1, 3, 2, 2), torch.ones(1, 1, 2, 2), 16, icc_profile=SRGB, format="PNG", exif=b"x")
    big = img.with_pixels(torch.zeros(1, 3, 4, 4), torch.ones(1, 1, 4, 4))
    assert big.size == (4, 4) and big.bit_depth == 16 and big.icc_profile == SRGB and big.format == "PNG"
    assert big.exif == b"x" and img.size == (2, 2)


def test_reads_from_bytes_not_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(u8(5, 5, 3)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    assert read_image("a.png").size == (5, 5)
    buf = io.BytesIO()
    Image.fromarray(u8(5, 5, 3)).save(buf, format="TGA")
    (tmp_path / "a.tga").write_bytes(buf.getvalue())
    assert read_image(Path("a.tga")).channels == 3
