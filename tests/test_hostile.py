"""Hostile inputs: special files in input folders, size caps, broken ICC profiles, odd pixel formats,
memory exhaustion on one file, deeply nested weights metadata. Each must fail one file with a
one-line reason (or be decoded correctly), never hang, never abort the batch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from sruscale.cli import main
from sruscale.errors import CheckpointError, ImageError
from sruscale.image import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    array_to_tensor,
    image_size,
    list_images,
    max_file_bytes,
    read_image,
    to_srgb,
    write_image,
)

OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. Error code 12"


def _png(path: Path, value: int = 128, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    arr = np.clip(value + 3 * xx - 2 * yy, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([arr, arr[::-1], 255 - arr])).save(path)
    return path


def _run(argv: list[str]) -> tuple[int, str]:
    """``sruscale.cli.main`` in-process; (exit code, stdout + stderr)."""
    out = io.StringIO()
    old = sys.argv
    sys.argv = ["sruscale", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    code = info.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), " ".join(out.getvalue().split())


def _unblock(fifo: Path) -> None:
    """Open the write end of ``fifo`` once, so a reader blocked on it sees end of file."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@contextlib.contextmanager
def _no_hang(fifos: list[Path], seconds: float = 60.0) -> Iterator[None]:
    """Fail (instead of hanging forever) when the body blocks on one of ``fifos``."""
    timer = threading.Timer(seconds, lambda: [_unblock(f) for f in fifos])
    start = time.monotonic()
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        for f in fifos:
            _unblock(f)
    assert time.monotonic() - start < seconds, "blocked on a FIFO"


def _specials(folder: Path) -> dict[str, str]:
    """A symlink loop, a FIFO, a link to /dev/zero and a socket, all with image names: name -> expected reason."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop.png").symlink_to("loop.png")
    os.mkfifo(folder / "fifo.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    made = {"loop.png": "symbolic link loop", "fifo.png": "FIFO", "zero.png": "character device"}
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(folder / "sock.png"))
        made["sock.png"] = "socket"
    except OSError:  # path too long for AF_UNIX
        pass
    finally:
        sock.close()
    return made


needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and symlinks need POSIX")


# ------------------------------------------------------------------------------------- special files


@needs_posix
def test_special_files_are_listed_and_refused_by_name_without_reading(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "good.png")
    made = _specials(tmp_path / "in")
    listed = {p.name for p in list_images(tmp_path / "in")}
    assert listed == {"good.png", *made}
    with _no_hang([tmp_path / "in" / "fifo.png"]):
        for name, reason in made.items():
            for read in (read_image, image_size):
                with pytest.raises(ImageError) as info:
                    read(tmp_path / "in" / name)
                msg = str(info.value)
                assert msg.startswith(str(tmp_path / "in" / name)) and reason in msg and "\n" not in msg


@needs_posix
def test_symlink_loop_with_exclude_and_recursive_scan(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "sub" / "a.png")
    (tmp_path / "in" / "sub" / "loop.png").symlink_to("loop.png")
    (tmp_path / "in" / "dirloop").symlink_to("dirloop")  # a looping link without an image name
    names = [p.relative_to(tmp_path / "in").as_posix() for p in list_images(tmp_path / "in", recursive=True,
                                                                             exclude=tmp_path / "out")]
    assert names == ["sub/a.png", "sub/loop.png"]


@needs_posix
def test_upscale_batch_goes_past_special_files(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "in" / f"good{i}.png", value=40 * i)
    made = _specials(tmp_path / "in")
    with _no_hang([tmp_path / "in" / "fifo.png"]):
        code, text = _run(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2"])
    assert code == 1 and "Traceback" not in text
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["good0_x2.png", "good1_x2.png", "good2_x2.png"]
    for name, reason in made.items():
        assert re.search(re.escape(name) + r": [^:]*" + reason, text), name


@needs_posix
def test_upscale_glob_and_explicit_special_files_fail_per_file(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "good.png")
    _specials(tmp_path / "in")
    fifo = tmp_path / "in" / "fifo.png"
    with _no_hang([fifo]):
        code, text = _run(["upscale", str(tmp_path / "in" / "*.png"), str(tmp_path / "in" / "loop.png"),
                           "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2", "--progress", "json"])
    assert code == 1 and "Traceback" not in text
    assert (tmp_path / "out" / "good_x2.png").is_file()
    assert "symbolic link loop" in text and "FIFO" in text


@needs_posix
def test_degrade_goes_past_special_files(tmp_path: Path) -> None:
    _png(tmp_path / "hr" / "good.png", size=(16, 16))
    made = _specials(tmp_path / "hr")
    with _no_hang([tmp_path / "hr" / "fifo.png"]):
        code, text = _run(["degrade", str(tmp_path / "hr"), str(tmp_path / "out"), "--scale", "2"])
    assert code == 1 and "Traceback" not in text
    assert (tmp_path / "out" / "LR_x2" / "good.png").is_file() and "1 pairs written" in text
    for name, reason in made.items():
        assert re.search(re.escape(name) + r": [^:]*" + reason, text), name


@needs_posix
@pytest.mark.parametrize("mode", ["pairs", "model"])
def test_evaluate_goes_past_special_files(tmp_path: Path, mode: str) -> None:
    for d in ("sr", "gt"):
        _png(tmp_path / d / "a.png", size=(16, 16))
        _specials(tmp_path / d)
    args = [str(tmp_path / "sr"), str(tmp_path / "gt")] if mode == "pairs" else ["-m", "bicubic", str(tmp_path / "gt")]
    with _no_hang([tmp_path / "sr" / "fifo.png", tmp_path / "gt" / "fifo.png"]):
        code, text = _run(["evaluate", *args, "--scale", "2", "--out", str(tmp_path / "r.json"), "-q"])
    assert code == 1 and "Traceback" not in text and "could not be scored" in text
    data = json.loads((tmp_path / "r.json").read_text())["datasets"][0]
    assert [p["image"] for p in data["per_image"]] == ["a"]
    assert {Path(f["file"]).name for f in data["failed"]} >= {"loop.png", "fifo.png", "zero.png"}


@needs_posix
def test_degrade_lossy_sniffing_never_opens_a_fifo(tmp_path: Path) -> None:
    from sruscale.degradations import is_lossy

    os.mkfifo(tmp_path / "x.jpg")
    with _no_hang([tmp_path / "x.jpg"], seconds=20):
        assert is_lossy(tmp_path / "x.jpg") is None


# ------------------------------------------------------------------------------------- size cap


def test_read_cap_rule() -> None:
    assert max_file_bytes(None) is None
    assert max_file_bytes(1000) == 1000 * 32 + (64 << 20)
    assert max_file_bytes(DEFAULT_MAX_PIXELS) == DEFAULT_MAX_PIXELS * 32 + (64 << 20)


def test_file_over_the_cap_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    head = _png(tmp_path / "small.png").read_bytes()
    with big.open("wb") as fh:  # a valid header, then a sparse 80 MiB tail: nothing needs to be read
        fh.write(head)
        fh.truncate(80 << 20)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    with pytest.raises(ImageError) as info:
        read_image(big, max_pixels=1000)
    msg = str(info.value)
    assert msg.startswith(str(big)) and "--max-pixels" in msg and str(80 << 20) in msg and "\n" not in msg
    assert sum(reads) < 1 << 20
    assert read_image(tmp_path / "small.png", max_pixels=1000).size == (12, 10)  # under the cap: read
    assert read_image(big, max_pixels=None).size == (12, 10)  # no limit, no cap


def test_upscale_reports_a_file_over_the_cap(tmp_path: Path) -> None:
    _png(tmp_path / "in" / "a.png")
    with (tmp_path / "in" / "huge.png").open("wb") as fh:
        fh.truncate(70 << 20)
    code, text = _run(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2",
                       "--max-pixels", "1000"])
    assert code == 1 and (tmp_path / "out" / "a_x2.png").is_file() and "huge.png" in text and "--max-pixels" in text


# ------------------------------------------------------------------------------------- ICC


def _truncated_icc() -> bytes:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return srgb[: len(srgb) // 2]  # the header opens; LittleCMS cannot build a transform from it


def test_truncated_icc_profile_is_dropped_with_a_note(tmp_path: Path) -> None:
    bad = _truncated_icc()
    with pytest.raises(ImageCms.PyCMSError):  # the case this test is about
        ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(bad)), ImageCms.createProfile("sRGB"), "RGB", "RGB")
    arr = np.full((8, 8, 3), 90, np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95, icc_profile=bad)
    img = read_image(tmp_path / "a.jpg")
    assert img.icc_profile == bad
    work, profile = to_srgb(img)
    assert profile is None and torch.equal(work.pixels, img.pixels)
    notes = write_image(tmp_path / "o.jpg", work)
    assert len(notes) == 1 and "ICC profile cannot be used" in notes[0] and "profile dropped" in notes[0]
    assert "icc_profile" not in Image.open(tmp_path / "o.jpg").info
    junk = b"\0" * 16 + b"GRAY" + b"\0" * 108  # a gray profile header, nothing LittleCMS can open behind it
    gray = ImageData(array_to_tensor(arr[..., 0]), None, 8, icc_profile=junk)
    assert any("cannot be used" in n for n in write_image(tmp_path / "g.png", gray))


def test_upscale_batch_with_a_truncated_icc_profile_writes_every_file(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for i in range(3):  # small images share one forward: one bad profile must not sink the others
        arr = np.full((8, 8, 3), 60 + 40 * i, np.uint8)
        Image.fromarray(arr).save(tmp_path / "in" / f"{i}.jpg", quality=95,
                                  icc_profile=_truncated_icc() if i == 1 else None)
    code, text = _run(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2"])
    assert code == 0, text
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["0_x2.jpg", "1_x2.jpg", "2_x2.jpg"]
    assert "ICC profile cannot be used" in text


# ------------------------------------------------------------------------------------- pixel formats


def test_ppm_with_maxval_1000_is_scaled_by_maxval(tmp_path: Path) -> None:
    raw = np.array([[[1000, 500, 0], [250, 999, 1]], [[0, 0, 0], [1000, 1000, 1000]]], dtype=">u2")
    (tmp_path / "a.ppm").write_bytes(b"P6\n2 2\n1000\n" + raw.tobytes())
    img = read_image(tmp_path / "a.ppm")
    assert img.bit_depth == 16 and img.channels == 3
    want = torch.from_numpy(raw.astype(np.float32) / 1000).permute(2, 0, 1)[None]
    torch.testing.assert_close(img.pixels, want, atol=1e-6, rtol=0)
    plain = " ".join(str(v) for v in raw.reshape(-1))  # the same image as plain (ASCII) P3
    (tmp_path / "p.ppm").write_bytes(f"P3\n2 2\n1000\n{plain}\n".encode())
    torch.testing.assert_close(read_image(tmp_path / "p.ppm").pixels, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("maxval", [1000, 4095, 65535])
def test_pgm_with_deep_maxval_is_scaled_by_maxval(tmp_path: Path, maxval: int) -> None:
    raw = np.array([[maxval, maxval // 2], [0, 1]], dtype=">u2")
    (tmp_path / "a.pgm").write_bytes(f"P5\n2 2\n{maxval}\n".encode() + raw.tobytes())
    img = read_image(tmp_path / "a.pgm")
    assert img.bit_depth == 16 and img.channels == 1
    want = torch.from_numpy(raw.astype(np.float32) / maxval)[None, None]
    torch.testing.assert_close(img.pixels, want, atol=1 / 65535, rtol=0)


def _patch_tiff_tag(data: bytes, tag: int, value: int) -> bytes:
    """Set the first SHORT value of ``tag`` in the first IFD of a little-endian TIFF."""
    out = bytearray(data)
    ifd = struct.unpack_from("<I", out, 4)[0]
    for i in range(struct.unpack_from("<H", out, ifd)[0]):
        off = ifd + 2 + 12 * i
        if struct.unpack_from("<H", out, off)[0] == tag:
            struct.pack_into("<H", out, off + 8, value)
            return bytes(out)
    raise AssertionError(f"tag {tag} not found")


def _tiff(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="TIFF")
    return buf.getvalue()


def test_int32_tiff_is_scaled_by_the_int32_range(tmp_path: Path) -> None:
    vals = np.array([[0, 2**30, 2**31 - 1, -5, 65535]], dtype=np.int32)
    (tmp_path / "i.tif").write_bytes(_tiff(Image.fromarray(vals)))
    assert Image.open(tmp_path / "i.tif").mode == "I"
    img = read_image(tmp_path / "i.tif")
    want = np.clip(vals, 0, None) / (2**31 - 1)
    assert img.bit_depth == 16 and img.channels == 1
    np.testing.assert_allclose(img.pixels[0, 0, 0].numpy(), want[0], atol=1e-6)


def test_uint32_and_int16_tiffs_are_scaled_by_their_type(tmp_path: Path) -> None:
    vals = np.array([[0, 2**31, 2**32 - 1, 1000]], dtype=np.uint32)  # stored by Pillow as int32, then relabelled
    (tmp_path / "u.tif").write_bytes(_patch_tiff_tag(_tiff(Image.fromarray(vals.view(np.int32))), 339, 1))
    img = read_image(tmp_path / "u.tif")
    np.testing.assert_allclose(img.pixels[0, 0, 0].numpy(), vals[0] / (2**32 - 1), atol=1e-6)
    v16 = np.array([[0, 16384, 32767, 40000]], dtype=np.uint16)  # 40000 is negative as int16
    Image.fromarray(v16).save(tmp_path / "s.tif", tiffinfo={339: 2})  # SampleFormat: signed integer
    assert Image.open(tmp_path / "s.tif").mode == "I"
    img = read_image(tmp_path / "s.tif")
    np.testing.assert_allclose(img.pixels[0, 0, 0].numpy(), [0, 16384 / 32767, 1, 0], atol=1e-6)


def test_float_tiff_is_taken_as_0_to_1(tmp_path: Path) -> None:
    vals = np.array([[0.0, 0.25, 1.5, -1.0, np.nan, np.inf]], dtype=np.float32)
    Image.fromarray(vals).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.pixels[0, 0, 0].numpy(), [0.0, 0.25, 1.0, 0.0, 0.0, 1.0])


def _lab(rgb: np.ndarray) -> Image.Image:
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    return ImageCms.applyTransform(Image.fromarray(rgb), ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))


def test_lab_tiff_is_converted_to_srgb_without_alpha(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [120, 80, 200]]], np.uint8)
    lab = _lab(rgb)
    lab.save(tmp_path / "lab.tif")
    img = read_image(tmp_path / "lab.tif")
    assert img.alpha is None and img.channels == 3 and img.icc_profile is None
    back = ImageCms.applyTransform(  # Pillow's own LAB -> sRGB
        Image.open(tmp_path / "lab.tif"),
        ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB",
                                ImageCms.Intent.RELATIVE_COLORIMETRIC))
    got = (img.pixels[0].permute(1, 2, 0).numpy() * 255).round().astype(int)
    np.testing.assert_array_equal(got, np.asarray(back))
    assert np.abs(got - rgb.astype(int))[0, 3:].max() <= 2  # unsaturated colours come back (8-bit Lab is coarse)


def test_lab_hand_values(tmp_path: Path) -> None:
    # L* = 100 * v / 255, a* and b* = v - 128: white, black, and sRGB red (L*a*b* D50 = 54.3, 80.8, 69.9)
    planes = np.array([[[255, 128, 128], [0, 128, 128], [138, 209, 198]]], np.uint8)
    lab = Image.merge("LAB", [Image.fromarray(planes[..., c]) for c in range(3)])
    lab.save(tmp_path / "lab.tif")
    got = (read_image(tmp_path / "lab.tif").pixels[0].permute(1, 2, 0).numpy() * 255).round()
    # 8-bit L*a*b* steps (0.39 L*, 1 a*/b*) cannot hit red's exact L*a*b*: up to 5 levels off
    np.testing.assert_allclose(got, [[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], atol=5)


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "RGBX", "1", "P", "LA", "I;16", "I;16B"])
def test_other_modes_match_pillows_own_conversion(tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    src = base.convert(mode) if mode not in ("I;16", "I;16B") else Image.fromarray(
        rng.integers(0, 65536, (6, 7), dtype=np.uint16)).convert(mode)
    src.save(tmp_path / "m.tif")
    opened = Image.open(tmp_path / "m.tif")
    img = read_image(tmp_path / "m.tif")
    if mode.startswith("I;16"):
        want = np.asarray(opened).astype(np.float32) / 65535
        np.testing.assert_allclose(img.pixels[0, 0].numpy(), want, atol=1e-6)
        return
    ref = opened.convert({"1": "L", "L": "L", "LA": "LA", "PA": "RGBA", "RGBA": "RGBA"}.get(opened.mode, "RGB"))
    arr = np.asarray(ref)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]
    got = (img.pixels[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got.squeeze(-1) if arr.ndim == 2 else got, arr)


def test_every_mode_pillow_writes_to_tiff_is_decoded_or_refused_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    tried = 0
    for mode in ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
                 "I", "F", "I;16", "I;16L", "I;16B"):
        try:
            base.convert(mode).save(tmp_path / f"{mode.replace(';', '_')}.tif")
        except (ValueError, OSError, KeyError):
            continue  # Pillow cannot write this mode as TIFF
        tried += 1
        path = tmp_path / f"{mode.replace(';', '_')}.tif"
        try:
            img = read_image(path)
        except ImageError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)
            continue
        assert img.pixels.min() >= 0 and img.pixels.max() <= 1 and torch.isfinite(img.pixels).all()
        assert img.alpha is None or Image.open(path).mode in ("LA", "La", "PA", "RGBA", "RGBa")
    assert tried >= 12


# ------------------------------------------------------------------------------------- memory exhaustion


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(OOM)])
def test_degrade_out_of_memory_fails_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               error: BaseException) -> None:
    from sruscale.degradations import _batch

    for name in ("a", "b", "c"):
        _png(tmp_path / "hr" / f"{name}.png", size=(16, 16))
    real = _batch.read_image

    def read(path: Path, **kw: object) -> ImageData:
        if Path(path).name == "b.png":
            raise error
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_batch, "read_image", read)
    code, text = _run(["degrade", str(tmp_path / "hr"), str(tmp_path / "out"), "--scale", "2"])
    assert code == 1 and "Traceback" not in text and "2 pairs written" in text and "out of memory" in text
    assert sorted(p.name for p in (tmp_path / "out" / "LR_x2").iterdir()) == ["a.png", "c.png"]


@pytest.mark.parametrize("mode", ["pairs", "model"])
@pytest.mark.parametrize("error", [MemoryError(), RuntimeError(OOM)])
def test_evaluate_out_of_memory_fails_one_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                                error: BaseException) -> None:
    from sruscale.evaluation import protocol

    for d in ("sr", "gt"):
        for name in ("a", "b", "c"):
            _png(tmp_path / d / f"{name}.png", size=(16, 16), value=30 * len(name + d))
    real = protocol.score_pair
    calls = [0]

    def score(*args: object, **kw: object) -> dict[str, float]:
        calls[0] += 1
        if calls[0] == 2:
            raise error
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(protocol, "score_pair", score)
    args = [str(tmp_path / "sr"), str(tmp_path / "gt")] if mode == "pairs" else ["-m", "bicubic", str(tmp_path / "gt")]
    code, text = _run(["evaluate", *args, "--scale", "2", "--out", str(tmp_path / "r.json"), "-q"])
    assert code == 1 and "Traceback" not in text and "out of memory" in text and "1 of 3 images" in text
    data = json.loads((tmp_path / "r.json").read_text())["datasets"][0]
    assert [p["image"] for p in data["per_image"]] == ["a", "c"]


def test_upscale_cpu_allocator_failure_fails_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale import upscaling

    for name in ("a", "b", "c"):
        _png(tmp_path / "in" / f"{name}.png", size=(300, 300))  # over the batching size: one forward each
    real = upscaling._forward
    calls = [0]

    def forward(*args: object, **kw: object) -> object:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError(OOM)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(upscaling, "_forward", forward)
    code, text = _run(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2"])
    assert code == 1 and "Traceback" not in text and "out of memory" in text
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a_x2.png", "c_x2.png"]


# ------------------------------------------------------------------------------------- evaluate pixel guard


def test_evaluate_refuses_a_pair_over_max_pixels_before_decoding(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.evaluation import protocol

    for d in ("sr", "gt"):
        _png(tmp_path / d / "a.png", size=(16, 16))
    _png(tmp_path / "sr" / "big.png", size=(16, 16))
    _png(tmp_path / "gt" / "big.png", size=(40, 40))  # 1600 px: over the limit
    real = protocol.read_image
    decoded: list[str] = []

    def read(path: Path, **kw: object) -> ImageData:
        decoded.append(Path(path).parent.name + "/" + Path(path).name)
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(protocol, "read_image", read)
    code, text = _run(["evaluate", str(tmp_path / "sr"), str(tmp_path / "gt"), "--scale", "2", "--max-pixels", "1000",
                       "--out", str(tmp_path / "r.json"), "-q"])
    assert code == 1 and "Traceback" not in text
    assert "big.png" in text and "exceeds the --max-pixels limit" in text
    assert not [d for d in decoded if d.endswith("big.png")]  # neither file of the pair was decoded
    data = json.loads((tmp_path / "r.json").read_text())["datasets"][0]
    assert [p["image"] for p in data["per_image"]] == ["a"]


# ------------------------------------------------------------------------------------- weights metadata


@pytest.mark.parametrize("depth", [100_000, 200])
def test_deeply_nested_weights_metadata_is_a_checkpoint_error(tmp_path: Path, depth: int) -> None:
    from safetensors.torch import save_file

    from sruscale.weights._files import sruscale_metadata

    path = tmp_path / "deep.safetensors"
    meta = {"format": "sruscale", "arch": "fsrcnn", "scale": "2", "hparams": "[" * depth + "]" * depth}
    save_file({"w": torch.zeros(1)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as info:
        sruscale_metadata(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "nested" in msg and "\n" not in msg
    meta["hparams"] = json.dumps({"a": {"b": {"c": [1, 2]}}})  # ordinary nesting still reads
    save_file({"w": torch.zeros(1)}, str(path), metadata=meta)
    assert sruscale_metadata(path)["hparams"] == {"a": {"b": {"c": [1, 2]}}}  # type: ignore[index]
