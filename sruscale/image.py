"""Image files <-> tensors, keeping what photographers care about.

Reading gives an :class:`ImageData`: pixels ``(1, C, H, W)`` float32 in ``[0, 1]`` with
``C = 1`` (gray) or ``3`` (RGB), the alpha plane separately, the bit depth of the source
pixel type (8 or 16), its ICC profile and its EXIF block. EXIF orientation is applied on
read (and reset to 1 in the carried EXIF). 16-bit colour PNG/TIFF/PPM, which Pillow would
silently reduce to 8 bits, are decoded with OpenCV. Writing is atomic (temporary sibling
file, then ``os.replace``) and reports what the target format could not keep.

Inputs are regular files only: every read goes through one gate (:func:`open_input`) that
refuses a symbolic link loop, a FIFO, a device or a socket by name before anything opens it,
and a file larger than any image of ``max_pixels`` pixels can be (:func:`max_file_bytes`)
before anything reads it.
"""

from __future__ import annotations

import errno
import functools
import io
import os
import re
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch
from PIL import Image, ImageFile, TiffImagePlugin, UnidentifiedImageError

from ._defaults import DEFAULT_MAX_PIXELS
from ._fs import atomic_write
from ._png import band_rows, write_png
from .errors import ConfigError, ImageError, WriteError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SUPPORTED_SUFFIXES",
    "ImageData",
    "array_to_tensor",
    "from_srgb",
    "image_size",
    "is_image_entry",
    "is_image_name",
    "list_images",
    "max_file_bytes",
    "open_input",
    "read_image",
    "tensor_to_array",
    "to_srgb",
    "write_image",
]


_CANDIDATE_SUFFIXES = (
    ".png .apng .jpg .jpeg .jpe .jfif .webp .tif .tiff .bmp .dib .gif .ppm .pgm .pbm .pnm "
    ".tga .avif .qoi .pcx .sgi .jp2 .j2k .psd"
).split()
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(s for s in _CANDIDATE_SUFFIXES if s in Image.registered_extensions())
"""Lowercase suffixes (with the dot) that folder scans treat as images; only those this Pillow can read."""


def is_image_name(name: str) -> bool:
    """Whether a folder scan takes a file of this name: not hidden, suffix in :data:`SUPPORTED_SUFFIXES`."""
    return not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES


def is_image_entry(path: str | os.PathLike[str]) -> bool:
    """Whether a folder scan or a glob takes ``path``: an image name (:func:`is_image_name`) that is not a
    folder once links are followed. Decided from the name and one ``stat``: nothing is opened.

    Anything else is taken, so that a broken link, a link loop, a FIFO, a device or a socket is
    reported by name (by :func:`open_input`, when it is read) where each command reports a bad file,
    rather than vanishing from the batch or stopping it.
    """
    return is_image_name(Path(path).name) and not os.path.isdir(path)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def list_images(
    folder: str | os.PathLike[str], *, recursive: bool = False, exclude: str | os.PathLike[str] | None = None,
    required: bool = True,
) -> list[Path]:
    """The image files of ``folder``: the one folder-scan rule of every command.

    An entry is taken when :func:`is_image_entry` accepts it (hidden files and, with ``recursive``,
    hidden folders are skipped); anything that is not a folder counts, so a broken link, a link
    loop, a FIFO, a device or a socket is listed and then refused by name, without being opened,
    when it is read (:func:`open_input`) rather than vanishing or stopping the scan. Folders are
    not followed through symbolic links.

    Args:
        folder: the folder to scan.
        recursive: also scan subfolders.
        exclude: a folder (typically the output folder) whose contents are never listed.
        required: raise when nothing is found instead of returning ``[]``.

    Returns:
        Paths ``folder / relative``, sorted by the relative path (POSIX form).

    Raises:
        ImageError: ``folder`` is not a folder, or (with ``required``) it holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"image folder not found: {root} (not a folder)")
    # os.path.realpath, not Path.resolve: a link loop must not stop the scan (resolve raises on one)
    skip = Path(os.path.realpath(exclude)) if exclude is not None else None

    def excluded(p: Path) -> bool:
        return _inside(Path(os.path.realpath(p)), skip)

    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        base = Path(dirpath)
        dirs[:] = [d for d in dirs if recursive and not d.startswith(".") and not excluded(base / d)]
        found += [base / f for f in files if is_image_entry(base / f) and not excluded(base / f)]
    if required and not found:
        raise ImageError(f"no image files in {root} (looked for {', '.join(sorted(SUPPORTED_SUFFIXES))})")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF", "TGA", "AVIF"}  # BMP/GIF alpha is unreliable across viewers
_RGB_ONLY_FORMATS = {"WEBP", "AVIF"}  # no grayscale mode
_ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "AVIF"}
_EXIF_FORMATS = {"PNG", "JPEG", "WEBP", "AVIF"}
_DEEP_FORMATS = {"PNG", "TIFF"}  # 16-bit output
_LOSSY_FORMATS = {"JPEG", "WEBP", "AVIF"}
DEFAULT_QUALITY = 95
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"GIF8", b"RIFF", b"BM")


@dataclass(frozen=True)
class ImageData:
    """A decoded image plus the metadata that should survive to the output file.

    Attributes:
        pixels: ``(1, C, H, W)`` float in ``[0, 1]``, ``C`` = 1 (gray) or 3 (RGB); no alpha. An 8-bit
            image about to be written may hold its final ``uint8`` values instead (``upscale`` keeps
            no float copy of a large output).
        alpha: ``(1, 1, H, W)`` float in ``[0, 1]``, or ``None``.
        bit_depth: 8 or 16, from the source pixel type (never from the values).
        icc_profile: raw ICC profile bytes, or ``None``.
        format: Pillow format name of the source (``"PNG"``, ``"JPEG"``, ...), or ``None``.
        exif: raw EXIF block (``b"Exif\\0\\0"`` + TIFF structure), orientation reset to 1, or ``None``.
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    icc_profile: bytes | None = None
    format: str | None = None
    exif: bytes | None = None

    def __post_init__(self) -> None:
        p = self.pixels
        final8 = p.dtype == torch.uint8 and self.bit_depth == 8
        if p.ndim != 4 or p.shape[0] != 1 or p.shape[1] not in (1, 3) or not (p.is_floating_point() or final8):
            raise ImageError(f"pixels: expected float (1, C, H, W) with C in (1, 3), got {p.dtype} {tuple(p.shape)}")
        if self.alpha is not None and tuple(self.alpha.shape) != (1, 1, *p.shape[2:]):
            raise ImageError(f"alpha: expected shape {(1, 1, *p.shape[2:])}, got {tuple(self.alpha.shape)}")
        if self.bit_depth not in (8, 16):
            raise ImageError(f"bit_depth: expected 8 or 16, got {self.bit_depth}")

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.pixels.shape[2]), int(self.pixels.shape[3])

    @property
    def channels(self) -> int:
        """1 (gray) or 3 (RGB), not counting alpha."""
        return int(self.pixels.shape[1])

    def floating(self) -> ImageData:
        """This image with float pixels in ``[0, 1]`` (a copy when it holds final ``uint8`` values)."""
        if self.pixels.is_floating_point():
            return self
        return replace(self, pixels=self.pixels.float().div_(255))

    def with_pixels(self, pixels: torch.Tensor, alpha: torch.Tensor | None) -> ImageData:
        """A copy with new (e.g. upscaled) pixels and alpha, keeping bit depth, ICC, EXIF and format."""
        return replace(self, pixels=pixels, alpha=alpha)


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` uint8 / uint16 / float array -> ``(1, C, H, W)`` float32 in ``[0, 1]``.

    uint8 is divided by 255, uint16 by 65535; float arrays are clipped to ``[0, 1]``.
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.dtype == np.uint8:
        x = torch.from_numpy(array.astype(np.float32)).div_(255.0)
    elif array.dtype == np.uint16:
        x = torch.from_numpy(array.astype(np.float32)).div_(65535.0)
    elif np.issubdtype(array.dtype, np.floating):
        x = torch.from_numpy(np.clip(array, 0.0, 1.0).astype(np.float32))
    else:
        raise ImageError(f"expected a uint8, uint16 or float array, got {array.dtype}")
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_array(x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """``(1, C, H, W)`` or ``(C, H, W)`` in ``[0, 1]`` -> ``(H, W)`` (C = 1) or ``(H, W, C)`` array.

    Values are scaled to ``2**bit_depth - 1``, rounded, clipped (NaN -> 0) and cast to uint8 (8) or uint16 (16).
    """
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ImageError(f"expected (1, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    if bit_depth not in (8, 16):
        raise ImageError(f"bit_depth: expected 8 or 16, got {bit_depth}")
    if x.dtype == torch.uint8 and bit_depth == 8:  # final values already (a view when stored channels-last)
        arr = x.detach().cpu().permute(1, 2, 0).numpy()
        return arr[:, :, 0] if arr.shape[2] == 1 else np.ascontiguousarray(arr)
    peak = 255.0 if bit_depth == 8 else 65535.0
    c, h, w = x.shape
    out = np.empty((h, w, c), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    rows = max(1, (1 << 24) // max(1, c * w))  # about 64 MB of float at a time, not a copy of the image
    for y0 in range(0, h, rows):
        band = torch.nan_to_num(x[:, y0 : y0 + rows].detach().float().cpu(), nan=0.0)
        out[y0 : y0 + rows] = band.mul_(peak).round_().clamp_(0, peak).permute(1, 2, 0).numpy()
    return out[:, :, 0] if c == 1 else out


# ---------------------------------------------------------------- reading

_guard_lock = threading.Lock()
_guard_users = 0
_guard_saved: int | None = None


@contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    """Disable Pillow's own MAX_IMAGE_PIXELS check (ours replaces it), thread-safely, then restore it."""
    global _guard_users, _guard_saved
    with _guard_lock:
        if _guard_users == 0:
            _guard_saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        _guard_users += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_users -= 1
            if _guard_users == 0:
                Image.MAX_IMAGE_PIXELS = _guard_saved


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


#: bytes per pixel in the read cap: 4 channels x 8 bytes, the widest raw layout (float64 RGBA)
_CAP_BYTES_PER_PIXEL = 32
#: bytes the read cap adds for headers, metadata (ICC, EXIF, XMP, thumbnails) and container overhead
_CAP_SLACK = 64 << 20


def max_file_bytes(max_pixels: int | None) -> int | None:
    """The largest input file :func:`read_image` reads for a ``max_pixels`` limit (None: no limit).

    Rule: ``max_pixels * 32 + 64 MiB``. 32 bytes per pixel is 4 channels of 8 bytes, the widest
    raw layout an image file can have (float64 RGBA), so no image within ``max_pixels`` needs
    more, stored raw or with a compressor's worst-case growth (LZW on noisy 16-bit RGBA: about
    12 bytes per pixel); 64 MiB covers headers and metadata. The file size is checked from
    ``stat`` before any byte is read. With the default limit (256 MP) the cap is 8.26 GB.
    """
    return None if max_pixels is None else max_pixels * _CAP_BYTES_PER_PIXEL + _CAP_SLACK


_KINDS = (
    (stat.S_ISDIR, "is a directory, not an image file"),
    (stat.S_ISFIFO, "a FIFO (named pipe), not a regular file: not read"),
    (stat.S_ISCHR, "a character device, not a regular file: not read"),
    (stat.S_ISBLK, "a block device, not a regular file: not read"),
    (stat.S_ISSOCK, "a socket, not a regular file: not read"),
)


def _os_error(path: Path, exc: OSError) -> ImageError:
    """The one-line :class:`ImageError` for an input that cannot be stat-ed, opened or read."""
    if isinstance(exc, FileNotFoundError):
        broken = os.path.islink(path)
        return ImageError(f"{path}: file not found{' (broken symbolic link)' if broken else ''}")
    if isinstance(exc, PermissionError):
        return ImageError(f"{path}: permission denied")
    if exc.errno == errno.ELOOP:
        return ImageError(f"{path}: symbolic link loop (too many levels of symbolic links): not read")
    return ImageError(f"{path}: cannot read file ({exc.strerror or _one_line(exc)})")


def _regular(path: Path, mode: int) -> None:
    for test, what in _KINDS:
        if test(mode):
            raise ImageError(f"{path}: {what}")
    if not stat.S_ISREG(mode):
        raise ImageError(f"{path}: not a regular file: not read")


@contextmanager
def open_input(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Iterator[BinaryIO]:
    """Open an input image for reading: the one gate every read of an input file goes through.

    Only regular files pass (links followed). ``os.stat`` decides before anything is opened, so a
    FIFO, a device or a socket is never opened or read and a link loop never followed; the file
    is then opened with ``O_NONBLOCK`` and checked again (it may have been swapped meanwhile).

    Args:
        path: the file.
        max_pixels: refuse a file larger than :func:`max_file_bytes` of it (None: no size limit).

    Yields:
        The open binary file, positioned at 0.

    Raises:
        ImageError: missing (or a broken link), a link loop, permission denied, not a regular
            file (folder, FIFO, device, socket), or over the size cap; one line starting with the path.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _os_error(path, exc) from None
    _regular(path, info.st_mode)
    cap = max_file_bytes(max_pixels)
    if cap is not None and info.st_size > cap:
        raise ImageError(
            f"{path}: {info.st_size} bytes is more than any image within --max-pixels {max_pixels} can take "
            f"({cap} bytes = 32 per pixel + 64 MiB); not read (raise --max-pixels to read it)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _os_error(path, exc) from None
    with os.fdopen(fd, "rb") as fh:
        _regular(path, os.fstat(fd).st_mode)
        yield fh


def _read_bytes(path: Path, max_pixels: int | None) -> bytes:
    """The whole file, through :func:`open_input` (at most :func:`max_file_bytes` of ``max_pixels``)."""
    cap = max_file_bytes(max_pixels)
    with open_input(path, max_pixels=max_pixels) as fh:
        try:
            data = fh.read() if cap is None else fh.read(cap + 1)
        except OSError as exc:
            raise _os_error(path, exc) from None
    if cap is not None and len(data) > cap:
        raise ImageError(f"{path}: grew past the read cap of {cap} bytes while it was read; not read")
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return data


def _identify(fp: BinaryIO, path: Path) -> Image.Image:
    """``Image.open`` on ``fp`` (header only); failures are one-line ImageErrors. Call it with the bomb check off."""
    try:
        return Image.open(fp)
    except UnidentifiedImageError:
        fp.seek(0)
        if fp.read(8).startswith(_MAGIC):
            raise ImageError(f"{path}: corrupt or truncated image header (cannot be identified)") from None
        raise ImageError(f"{path}: not an image, or a format Pillow cannot read") from None
    except Exception as exc:  # noqa: BLE001 - any header failure is a corrupt file
        raise ImageError(f"{path}: corrupt or truncated image header ({_one_line(exc)})") from None


def _check_limit(max_pixels: int | None) -> None:
    if max_pixels is not None and max_pixels <= 0:
        raise ConfigError(f"max_pixels: expected a positive number or None, got {max_pixels}")


def _check_pixels(path: Path, w: int, h: int, max_pixels: int | None) -> None:
    """The decompression-bomb guard: ``w * h`` from the header against ``max_pixels``."""
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the --max-pixels limit of "
            f"{max_pixels / 1e6:.1f} MP; raise it with --max-pixels N"
        )


def image_size(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> tuple[int, int]:
    """``(H, W)`` of an image file as displayed (after EXIF orientation), from its header only.

    Args:
        path: the file, read through :func:`open_input` (regular files only; no pixel decoded).
        max_pixels: also apply :func:`read_image`'s pixel limit (None: no limit).

    Raises:
        ImageError: as :func:`open_input`, a header that cannot be identified, or more than ``max_pixels``.
    """
    _check_limit(max_pixels)
    path = Path(path)
    with open_input(path) as fh, _pillow_bomb_check_off():
        im = _identify(fh, path)
        w, h = im.size
        _check_pixels(path, w, h, max_pixels)
        try:
            orientation = im.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001 - an unreadable EXIF block leaves the image as stored
            orientation = 1
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _tile_args(im: Image.Image) -> tuple[str, int | None]:
    """The raw mode of the first tile and, for the PPM family, its maxval; read before decoding ("" / None)."""
    if not isinstance(im, ImageFile.ImageFile) or not im.tile:
        return "", None
    args = im.tile[0].args
    first = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
    maxval = args[1] if isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) else None
    return (first if isinstance(first, str) else ""), (maxval if im.format == "PPM" else None)


def _deep_source(im: Image.Image, raw: str, maxval: int | None) -> bool:
    """True for 16-bit-per-channel colour sources that Pillow would decode to 8 bits."""
    return im.mode in ("RGB", "RGBA", "LA") and (";16" in raw or (maxval is not None and maxval > 255))


def _gray_source(im: Image.Image, data: bytes) -> bool:
    if im.format == "PNG":
        return data[25] in (0, 4)
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        return im.tag_v2.get(262) in (0, 1)
    return im.mode in ("L", "LA", "I;16")


def _decode_cv2(data: bytes, im: Image.Image, path: Path, maxval: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit colour through OpenCV; PPM samples (which OpenCV leaves unscaled) divided by their maxval."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != (im.height, im.width):
        raise ImageError(f"{path}: corrupt or truncated 16-bit image data (OpenCV could not decode it)")
    if maxval is not None and maxval != 65535:
        arr = arr.astype(np.float32) / np.float32(maxval)  # values above maxval (invalid) clip to 1
    if arr.ndim == 2:
        return arr, None
    alpha = arr[:, :, -1] if arr.shape[2] in (2, 4) else None
    if _gray_source(im, data):
        return arr[:, :, 0], alpha
    return arr[:, :, 2::-1], alpha  # BGR(A) -> RGB


#: Pillow raw modes of integer samples stored in mode ``I``: bits, byte order, signedness
_INT_RAW = re.compile(r"I;(?P<bits>16|32)[BLN]?(?P<signed>S?)$")
#: Pillow raw modes of floating-point samples stored in mode ``F``
_FLOAT_RAW = re.compile(r"F;(32|64)[BLN]?F$")


def _int_samples(im: Image.Image, raw: str, path: Path) -> np.ndarray:
    """Mode ``I`` (32-bit integer storage) as float32 in ``[0, 1]``, scaled by the range of the stored type.

    Rule: an unsigned ``b``-bit sample ``v`` becomes ``v / (2**b - 1)``; a signed one becomes
    ``max(v, 0) / (2**(b-1) - 1)`` (negative values are below black). This is the rule of 8- and
    16-bit images (``/255``, ``/65535``) carried to the type the file declares, as ImageMagick does
    for integer TIFFs; it never looks at the values, so every file of a sequence gets the same
    mapping (a 32-bit file holding 0..4095 comes out dark: convert it to 16-bit first to keep its
    contrast). PGM/PPM samples arrive already scaled by Pillow from ``maxval`` to 0..65535.

    Raises:
        ImageError: an integer layout this rule does not cover, naming the file.
    """
    if im.format == "PPM":
        bits, signed = 16, False
    else:
        m = _INT_RAW.match(raw)
        if m is None:
            raise ImageError(f"{path}: unsupported integer pixel layout {raw or 'unknown'!r} (mode I)")
        bits, signed = int(m["bits"]), m["signed"] == "S"
    a = np.asarray(im)
    if signed:
        return (np.clip(a, 0, None) / float(2 ** (bits - 1) - 1)).astype(np.float32)
    if bits == 32:
        a = a.view(np.uint32)  # Pillow keeps unsigned 32-bit samples in int32 storage
    return (a / float(2**bits - 1)).astype(np.float32)


def _float_samples(im: Image.Image, raw: str, path: Path) -> np.ndarray:
    """Mode ``F`` as float32 in ``[0, 1]``: samples are taken as ``[0, 1]`` (the convention of float TIFF,
    PFM and OpenCV's float images); outside values are clipped, NaN becomes 0, +inf 1 and -inf 0.

    Raises:
        ImageError: mode ``F`` decoded from integer samples (no range can be assumed), naming the file.
    """
    if raw and not _FLOAT_RAW.match(raw):
        raise ImageError(f"{path}: unsupported floating-point pixel layout {raw!r} (mode F)")
    return np.clip(np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _lab_to_srgb(im: Image.Image, path: Path) -> Image.Image:
    """CIELAB (mode ``LAB``: L* 0..100 as 0..255, a* b* offset by 128) -> sRGB by LittleCMS.

    The Lab values are taken relative to D50, the ICC connection space (what Photoshop and
    LittleCMS write), and converted with the relative colorimetric intent: L* 100 is white.
    """
    from PIL import ImageCms

    try:
        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB",
            ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )  # fmt: skip
        out = ImageCms.applyTransform(im, transform)
    except (OSError, ImageCms.PyCMSError) as exc:
        raise ImageError(f"{path}: cannot convert CIELAB to sRGB ({_one_line(exc)})") from None
    if out is None:
        raise ImageError(f"{path}: cannot convert CIELAB to sRGB")
    return out


def _decode_pillow(im: Image.Image, path: Path, raw: str) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """Decoded colour array, alpha array, bit depth, and whether the colour model was converted.

    ``raw`` is the tile's raw mode read before decoding (:func:`_tile_args`). Integer and float
    samples: :func:`_int_samples`, :func:`_float_samples` (16-bit output); LAB: :func:`_lab_to_srgb`;
    CMYK, YCbCr, HSV: Pillow's own conversion to RGB.
    """
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), None, 16, False
    if mode == "I":
        return _int_samples(im, raw, path), None, 16, False
    if mode == "F":
        return _float_samples(im, raw, path), None, 16, False
    if mode in ("L", "LA", "RGB", "RGBA"):
        converted = False
    elif mode == "1":
        im, converted = im.convert("L"), False
    elif mode == "La":
        im, converted = im.convert("LA"), False
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or (im.palette is not None and "A" in im.palette.mode)
        im, converted = im.convert("RGBA" if has_alpha else "RGB"), False
    elif mode == "LAB":
        im, converted = _lab_to_srgb(im, path), True
    else:  # CMYK, YCbCr, HSV, RGBX, RGBa (premultiplied alpha: the one with alpha)
        try:
            im, converted = im.convert("RGBA" if mode == "RGBa" else "RGB"), mode not in ("RGBX", "RGBa")
        except ValueError:
            raise ImageError(f"{path}: unsupported pixel mode {mode!r}") from None
    arr = np.asarray(im)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        return arr[:, :, :-1], arr[:, :, -1], 8, converted
    return arr, None, 8, converted


_TRANSFORMS = {  # EXIF orientation -> numpy ops on (H, W[, C]) that display the image upright
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _exif_without_orientation(raw: bytes | None) -> bytes | None:
    """Raw EXIF with the IFD0 Orientation patched to 1 in place (so maker-note offsets stay valid)."""
    if not raw:
        return None
    body = bytearray(raw[6:] if raw.startswith(b"Exif\x00\x00") else raw)
    if bytes(body[:4]) not in (b"II*\x00", b"MM\x00*"):
        return None
    e = "<" if body[:2] == b"II" else ">"
    try:
        ifd = struct.unpack_from(e + "I", body, 4)[0]
        for i in range(struct.unpack_from(e + "H", body, ifd)[0]):
            off = ifd + 2 + 12 * i
            tag, kind = struct.unpack_from(e + "HH", body, off)
            if tag == 0x0112 and kind != 3:
                return None  # cannot patch it: better no EXIF than a viewer rotating the image twice
            if tag == 0x0112:
                struct.pack_into(e + "H", body, off + 8, 1)
    except struct.error:
        return None
    return b"Exif\x00\x00" + bytes(body)


def read_image(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS, keep8: bool = False
) -> ImageData:
    """Read any image Pillow can open (16-bit colour via OpenCV) into an :class:`ImageData`.

    Pixel formats: 1/L/P/RGB(A) as stored (8-bit); 16-bit PNG/TIFF/PGM/PPM at 16 bits, PGM/PPM
    scaled by their maxval; 32-bit integer samples scaled by the range of their type
    (:func:`_int_samples`), float samples taken as ``[0, 1]`` (:func:`_float_samples`), both
    16-bit on output; CIELAB converted to sRGB by LittleCMS; CMYK, YCbCr, HSV by Pillow's own
    conversion (their ICC profile is dropped). Anything else is refused by name.

    Args:
        path: the file, read through :func:`open_input` (regular files only, at most
            :func:`max_file_bytes` of ``max_pixels``); Unicode and spaces are fine.
        max_pixels: refuse images with more than this many pixels (width * height), checked
            from the header before any pixel is decoded; ``None`` disables the check (and the size cap).
        keep8: keep 8-bit colour as its decoded ``uint8`` values (stored channels-last, no copy)
            instead of float: a quarter of the memory, for callers that take uint8 pixels
            (:func:`~sruscale.api.upscale_image`); :meth:`ImageData.floating` gives floats.

    Returns:
        ImageData with pixels ``(1, C, H, W)`` float32 in ``[0, 1]`` (C = 1 or 3), alpha
        ``(1, 1, H, W)`` or ``None``, upright per EXIF orientation. Multi-frame files give frame 0.

    Raises:
        ImageError: missing, not a regular file (link loop, FIFO, device, socket), unreadable, empty,
            truncated, corrupt, too large, an unsupported pixel format or not an image; the message
            starts with the path and gives the reason in one line.

    Example:
        >>> img = read_image("photo.jpg")  # doctest: +SKIP
        >>> img.pixels.shape, img.bit_depth  # doctest: +SKIP
        (torch.Size([1, 3, 3000, 4000]), 8)
    """
    _check_limit(max_pixels)
    path = Path(path)
    data = _read_bytes(path, max_pixels)
    with _pillow_bomb_check_off():
        im = _identify(io.BytesIO(data), path)
        w, h = im.size
        _check_pixels(path, w, h, max_pixels)
        raw, maxval = _tile_args(im)
        try:
            if _deep_source(im, raw, maxval):
                color, alpha = _decode_cv2(data, im, path, maxval)
                depth, converted = 16, False
            else:
                im.load()
                color, alpha, depth, converted = _decode_pillow(im, path, raw)
            exif = im.getexif()
        except ImageError:
            raise
        except MemoryError:
            raise ImageError(f"{path}: not enough memory to decode {w}x{h} pixels") from None
        except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, zlib.error...
            raise ImageError(f"{path}: corrupt or truncated image data ({_one_line(exc)})") from None
    orientation = exif.get(0x0112, 1)
    if orientation in _TRANSFORMS:
        color = _TRANSFORMS[orientation](color)
        alpha = None if alpha is None else _TRANSFORMS[orientation](alpha)
    icc = im.info.get("icc_profile") or None
    color = np.ascontiguousarray(color)
    if keep8 and depth == 8 and color.dtype == np.uint8:
        color = color if color.flags.writeable else color.copy()  # Pillow's own buffer is read-only
        pixels = torch.from_numpy(color.reshape(*color.shape[:2], -1)).permute(2, 0, 1).unsqueeze(0)
    else:
        pixels = array_to_tensor(color)
    return ImageData(
        pixels=pixels,
        alpha=None if alpha is None else array_to_tensor(np.ascontiguousarray(alpha)),
        bit_depth=depth,
        icc_profile=None if converted else icc,  # a CMYK/LAB profile does not describe RGB pixels
        format=im.format,
        exif=_exif_without_orientation(im.info.get("exif")),
    )


# ---------------------------------------------------------------- writing


def _format_for(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(
            f"{path}: cannot write {path.suffix or 'a file without suffix'!r}; use .png, .jpg, .webp, .tif"
        )
    return fmt


def _icc_space(icc: bytes) -> str:
    """The ICC header's data colour space: ``"RGB"``, ``"GRAY"``, ``"CMYK"``, ..."""
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else "unknown"


def _save_options(fmt: str, quality: int | None, icc: bytes | None, exif: bytes | None) -> dict[str, object]:
    opts: dict[str, object] = {}
    if icc:
        opts["icc_profile"] = icc
    if exif:
        opts["exif"] = exif.removeprefix(b"Exif\x00\x00") if fmt == "WEBP" else exif
    if fmt in _LOSSY_FORMATS:
        opts["quality"] = q = DEFAULT_QUALITY if quality is None else quality
        if fmt == "JPEG" and q >= 90:
            opts["subsampling"] = 0  # 4:4:4 chroma at high quality
    if fmt == "TIFF":
        opts["compression"] = "tiff_lzw"
    return opts


def _band(pixels: torch.Tensor, alpha: torch.Tensor | None, depth: int, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` as the ``(rows, W)`` / ``(rows, W, C)`` array an encoder takes, alpha last."""
    arr = tensor_to_array(pixels[..., y0:y1, :], depth)
    return arr if alpha is None else np.dstack([arr, tensor_to_array(alpha[..., y0:y1, :], depth)])


def write_image(path: str | os.PathLike[str], image: ImageData, *, quality: int | None = None) -> list[str]:
    """Write ``image`` atomically in the format its suffix names; report what could not be kept.

    16-bit is kept for PNG and TIFF (16-bit colour TIFF through OpenCV, without ICC/EXIF), alpha
    for PNG/WebP/TIFF/TGA/AVIF, ICC for PNG/JPEG/WebP/TIFF/AVIF (a profile LittleCMS cannot use is
    dropped), EXIF for PNG/JPEG/WebP/AVIF. PNG is encoded band by band (:mod:`sruscale._png`: no copy
    of the whole image, segments deflated in parallel, about Pillow's file size in under half its
    time). The file appears complete or not at all; missing folders are created.

    Args:
        path: output file; its suffix picks the format (``.png``, ``.jpg``, ``.webp``, ``.tif``, ...).
        image: what to write; values outside ``[0, 1]`` are clipped.
        quality: 1..100 for JPEG/WebP/AVIF (default 95; JPEG uses 4:4:4 chroma at >= 90); ignored otherwise.

    Returns:
        One human-readable note per thing lost, e.g. ``"JPEG has no alpha channel: alpha dropped"``.

    Raises:
        ImageError: unknown suffix, or the file cannot be encoded or written (message starts with the path).
        ConfigError: ``quality`` outside 1..100.
    """
    path = Path(path)
    fmt = _format_for(path)
    if quality is not None and not 1 <= quality <= 100:
        raise ConfigError(f"quality: expected 1..100, got {quality}")
    notes: list[str] = []
    pixels, alpha, depth, icc, exif = image.pixels, image.alpha, image.bit_depth, image.icc_profile, image.exif
    if depth == 16 and fmt not in _DEEP_FORMATS:
        notes.append(f"{fmt} stores 8 bits per channel: 16-bit reduced to 8-bit")
        depth = 8
    if alpha is not None and fmt not in _ALPHA_FORMATS:
        notes.append(f"{fmt} has no alpha channel: alpha dropped")
        alpha = None
    if pixels.shape[1] == 1 and fmt in _RGB_ONLY_FORMATS:
        notes.append(f"{fmt} has no grayscale mode: saved as RGB")
        pixels = pixels.expand(-1, 3, -1, -1)
    use_cv2 = depth == 16 and fmt == "TIFF" and (pixels.shape[1] == 3 or alpha is not None)  # not Pillow's
    if use_cv2 and pixels.shape[1] == 1:
        notes.append("no 16-bit gray+alpha TIFF writer: saved as 16-bit RGBA")
        pixels = pixels.expand(-1, 3, -1, -1)
    if icc is not None:
        space, want = _icc_space(icc), ("GRAY" if pixels.shape[1] == 1 else "RGB")
        if space != want:
            notes.append(f"ICC profile describes {space}, not {want} pixels: profile dropped")
            icc = None
        elif fmt not in _ICC_FORMATS or use_cv2:
            notes.append(f"{'16-bit colour ' if use_cv2 else ''}{fmt} is written without ICC profile: profile dropped")
            icc = None
        elif (problem := _icc_problem(icc)) is not None:
            notes.append(f"ICC profile cannot be used ({problem}): profile dropped")
            icc = None
    if exif is not None and (fmt not in _EXIF_FORMATS or use_cv2):
        notes.append(f"{'16-bit colour ' if use_cv2 else ''}{fmt} is written without EXIF: EXIF dropped")
        exif = None
    try:
        with atomic_write(path) as tmp:
            if fmt == "PNG":
                (h, w), channels = pixels.shape[-2:], pixels.shape[1] + (alpha is not None)
                rows = band_rows(w, channels, depth)
                bands = (_band(pixels, alpha, depth, y, y + rows) for y in range(0, h, rows))
                with open(tmp, "wb") as f:
                    write_png(f, bands, width=w, height=h, channels=channels, depth=depth, icc=icc, exif=exif)
            else:
                arr = _band(pixels, alpha, depth, 0, pixels.shape[-2])
                if use_cv2:
                    ok, buf = cv2.imencode(".tif", arr[:, :, [2, 1, 0, 3][: arr.shape[2]]])
                    if not ok:
                        raise ImageError(f"{path}: OpenCV could not encode a 16-bit {fmt}")
                    tmp.write_bytes(buf.tobytes())
                else:
                    Image.fromarray(arr).save(tmp, format=fmt, **_save_options(fmt, quality, icc, exif))
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - encoder and file-system errors become one-line messages
        reason = exc.reason if isinstance(exc, WriteError) else _one_line(exc)
        raise ImageError(f"{path}: cannot write {fmt} ({reason})") from None
    return notes


# --- colour management: wide-gamut RGB <-> sRGB around the network ---------------------------

_LUT_LEVELS = 52  # 0, 5, ..., 255: every grid node is an exact 8-bit value


@functools.lru_cache(maxsize=16)
def _icc_problem(icc: bytes) -> str | None:
    """Why LittleCMS cannot use ``icc`` (one line), or None when it can.

    A profile must open; an RGB profile must also give transforms to and from sRGB (a truncated
    one often opens but gives none). Such a profile is never applied: the pixels are left as
    they are (:func:`to_srgb`) and :func:`write_image` drops it with a note.
    """
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if _icc_space(icc) == "RGB":
            srgb = ImageCms.createProfile("sRGB")
            ImageCms.buildTransform(profile, srgb, "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)
            ImageCms.buildTransform(srgb, profile, "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except (OSError, ValueError, ImageCms.PyCMSError) as exc:
        return f"LittleCMS: {_one_line(exc)}; truncated or damaged?"
    return None


def _is_srgb(icc: bytes) -> bool:
    from PIL import ImageCms

    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (OSError, ImageCms.PyCMSError):
        return True  # no readable description: leave the pixels as they are
    return "srgb" in desc.lower().replace(" ", "")


def _cms(x: torch.Tensor, src: bytes | None, dst: bytes | None, *, exact8: bool) -> torch.Tensor:
    """Convert ``(1, 3, H, W)`` floats in ``[0, 1]`` between ICC profiles (None = sRGB), relative colorimetric.

    8-bit sources go through LittleCMS pixel by pixel (what viewers do); others through a
    52^3 LUT of the same transform, interpolated trilinearly (error < 1/255 on smooth profiles).
    """
    from PIL import ImageCms

    def profile(icc: bytes | None) -> ImageCms.ImageCmsProfile:
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB") if icc is None else io.BytesIO(icc))

    transform = ImageCms.buildTransform(profile(src), profile(dst), "RGB", "RGB", ImageCms.Intent.RELATIVE_COLORIMETRIC)
    if exact8:
        arr = (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        conv = np.asarray(ImageCms.applyTransform(Image.fromarray(arr, "RGB"), transform))
        return torch.from_numpy(conv.copy()).permute(2, 0, 1)[None].float().div_(255)
    n = _LUT_LEVELS
    levels = np.linspace(0, 255, n).round().astype(np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")  # grid[r, g, b]
    grid = np.stack([r, g, b], -1).reshape(n * n, n, 3)
    lut = np.asarray(ImageCms.applyTransform(Image.fromarray(grid, "RGB"), transform)).reshape(n, n, n, 3)
    lut_t = torch.from_numpy(lut.astype(np.float32) / 255).permute(3, 0, 1, 2)[None]  # (1, 3, R, G, B)
    # grid_sample's last coordinate indexes the last volume axis (B), the first the depth axis (R)
    coords = (x[0].clamp(0, 1) * 2 - 1).permute(1, 2, 0)  # (H, W, 3) as (r, g, b)
    coords = coords.flip(-1)[None, None]  # (1, 1, H, W, 3) as (b, g, r) = (x, y, z)
    out = torch.nn.functional.grid_sample(lut_t, coords.float(), mode="bilinear", align_corners=True)
    return out[:, :, 0].to(x.dtype)


def to_srgb(image: ImageData) -> tuple[ImageData, bytes | None]:
    """The image in sRGB for the network, plus the profile to convert back with (None: nothing to undo).

    RGB images tagged with a non-sRGB profile (Display P3, Adobe RGB, ProPhoto, ...) are
    converted; untagged, sRGB-tagged and gray images pass through, and so do images whose
    profile LittleCMS cannot use (truncated, damaged): never an error, so one such file cannot
    stop a batch; :func:`write_image` then drops that profile with a note. The returned image
    keeps the original profile bytes, so :func:`from_srgb` then :func:`write_image` re-embed it.
    """
    icc = image.icc_profile
    if icc is None or image.channels != 3 or _icc_space(icc) != "RGB" or _icc_problem(icc) or _is_srgb(icc):
        return image, None
    image = image.floating()
    return image.with_pixels(_cms(image.pixels, icc, None, exact8=image.bit_depth == 8), image.alpha), icc


def converts_back(profile: bytes | None) -> bool:
    """Whether :func:`from_srgb` changes pixels for ``profile`` (a usable profile), so needs float pixels."""
    return profile is not None and not _icc_problem(profile)


def from_srgb(image: ImageData, profile: bytes | None) -> ImageData:
    """Undo :func:`to_srgb`: convert sRGB pixels back to ``profile`` (no-op for None or an unusable profile)."""
    if not converts_back(profile):
        return image
    image = image.floating()
    return image.with_pixels(_cms(image.pixels, None, profile, exact8=image.bit_depth == 8), image.alpha)
