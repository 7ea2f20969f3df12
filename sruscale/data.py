"""Training data: images cached in memory as ``uint8``, scale-aligned random crops, dihedral augmentation.

Two sources of (LR, HR) pairs:

* **paired folders** (``lr_dirs``): LR and HR files matched by file stem (``0001.png`` pairs with
  ``0001.png`` or, DIV2K style, ``0001x2.png`` at x2), never by sorted position; the HR size must
  be ``scale`` times the LR size (after a modcrop of the HR);
* **HR folders degraded on the fly**: the default ``"bicubic"`` degradation is deterministic, so
  the LR images are computed once, as in the papers: ``LR = round(imresize(modcrop(HR), 1 / s))``
  on 8-bit RGB. Any other degradation (a :class:`sruscale.degradations.Pipeline` preset name or
  dict) is random and is applied to every HR crop.

For Y-channel networks the cache holds the 8-bit Y planes (MATLAB ``rgb2ycbcr`` on ``uint8``) of
HR and LR, so a training step touches one third of the pixels of RGB training.

Batches are a pure function of ``(seed, rank, index)``: :class:`PatchBatches` is a map-style
dataset whose item ``i`` is the whole batch of iteration ``i``. Resuming at iteration ``i`` or
running with DataLoader workers therefore draws exactly the same crops.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .color import rgb_to_y
from .errors import ConfigError
from .evaluation.pairing import pairing_key
from .evaluation.protocol import modcrop, prepare_image, quantize
from .image import ImageData, list_images, read_image

__all__ = [
    "ImagePair",
    "PatchBatches",
    "augment",
    "load_pairs",
    "load_rgb",
    "match_by_stem",
    "to_y",
]

log = logging.getLogger(__name__)

Color = Literal["y", "rgb"]


@dataclass(frozen=True)
class ImagePair:
    """One cached training or validation image: ``uint8`` arrays of shape ``(H, W, C)``.

    ``lr`` is ``None`` when the LR image is produced per crop by a random degradation.
    """

    name: str
    hr: np.ndarray
    lr: np.ndarray | None


def _read_8bit_rgb(path: str | os.PathLike[str]) -> ImageData:
    """:func:`~sruscale.image.read_image`, then RGB (gray repeated) rounded to 8 bits."""
    img = read_image(path)
    pixels = img.pixels.expand(-1, 3, -1, -1) if img.pixels.shape[1] == 1 else img.pixels
    return replace(img, pixels=quantize(pixels, img.bit_depth).float(), alpha=None, bit_depth=8)


def _to_u8(x: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` float in ``[0, 1]`` -> ``(H, W, C)`` uint8 (rounded, clipped)."""
    return (x[0].double() * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` ``uint8`` RGB (gray repeated, alpha dropped, 16 bits rounded to 8).

    Raises:
        ImageError: unreadable file (named in the message).
    """
    return _to_u8(_read_8bit_rgb(path).pixels)


def to_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` Y plane of a ``uint8`` RGB image: ``(H, W, 3)`` -> ``(H, W, 1)`` uint8."""
    x = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1)[None].double() / 255.0
    return _to_u8(rgb_to_y(x, round_8bit=True))


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def match_by_stem(
    hr_files: Sequence[Path],
    lr_files: Sequence[Path],
    *,
    hr_dir: str | os.PathLike[str],
    lr_dir: str | os.PathLike[str],
) -> list[Path]:
    """The LR file of each HR file, by the one pairing rule of :func:`~sruscale.evaluation.pairing.pairing_key`
    (``0001x4.png``, ``baby_x4.png`` and ``baby_LR.png``-free names all pair with their HR stem).

    Raises:
        ConfigError: a file of either folder has no partner, two LR files share the key of an HR
            file, or one LR file would serve two HR files; the message names the files.
    """
    by_key: dict[str, list[Path]] = {}
    for f in lr_files:
        by_key.setdefault(pairing_key(f.stem), []).append(f)
    partner: dict[Path, Path] = {}
    for hr in hr_files:
        candidates = by_key.get(pairing_key(hr.stem), [])
        if len(candidates) > 1:
            raise ConfigError(f"{lr_dir}: several LR files match HR {hr.name}: {_names(candidates)}")
        if candidates:
            partner[hr] = candidates[0]
    owners: dict[Path, list[Path]] = {}
    for hr, lr in partner.items():
        owners.setdefault(lr, []).append(hr)
    for lr, hrs in owners.items():
        if len(hrs) > 1:
            raise ConfigError(f"{lr_dir}: LR {lr.name} matches several HR files: {_names(hrs)}")
    missing = [hr for hr in hr_files if hr not in partner]
    extra = [lr for lr in lr_files if lr not in owners]
    if missing or extra:
        head = (
            f"expected {len(hr_files)} LR images to match {hr_dir}, got {len(lr_files)}"
            if len(lr_files) != len(hr_files)
            else f"LR files must match the HR files of {hr_dir} by stem"
        )
        problems = ([f"no LR file for HR {_names(missing)}"] if missing else []) + (
            [f"no HR file for LR {_names(extra)}"] if extra else []
        )
        raise ConfigError(f"{lr_dir}: {head}; " + "; ".join(problems))
    return [partner[hr] for hr in hr_files]


def load_pairs(
    hr_dirs: Sequence[str | os.PathLike[str]],
    *,
    scale: int,
    color: Color,
    lr_dirs: Sequence[str | os.PathLike[str]] = (),
    precompute_bicubic: bool = True,
    exclude: Collection[Path] = (),
) -> list[ImagePair]:
    """Read every image once into memory as ``uint8``.

    Args:
        hr_dirs: HR folders.
        scale: SR factor; HR images are modcropped to a multiple of it.
        color: ``"y"`` caches 8-bit Y planes ``(H, W, 1)``; ``"rgb"`` caches ``(H, W, 3)``.
        lr_dirs: paired LR folders, one per HR folder, or empty. Files pair up by stem: the LR file
            of ``name.png`` is ``name.*`` or ``name + "x" + scale`` (DIV2K: ``0001x2.png``).
            Every file of both folders must have its partner.
        precompute_bicubic: without ``lr_dirs``, compute the bicubic LR images now; when false,
            ``lr`` is ``None`` (a random degradation runs per crop; then ``color`` must be
            ``"rgb"``-cached and converted after degradation, so the HR stays RGB here).
        exclude: HR files to leave out (held out for validation).

    Raises:
        ConfigError: missing folders, files without a partner (named in the message), ambiguous
            stems, or mismatched sizes.
    """
    if lr_dirs and len(lr_dirs) != len(hr_dirs):
        raise ConfigError(f"expected one LR folder per HR folder ({len(hr_dirs)}), got {len(lr_dirs)}")
    pairs: list[ImagePair] = []
    for k, hr_dir in enumerate(hr_dirs):
        hr_files = list_images(hr_dir)
        lr_files: list[Path] | None = None
        if lr_dirs:
            lr_files = match_by_stem(hr_files, list_images(lr_dirs[k]), hr_dir=hr_dir, lr_dir=lr_dirs[k])
        for i, path in enumerate(hr_files):
            if path in exclude:
                continue
            hr_img = _read_8bit_rgb(path)
            lr: np.ndarray | None = None
            if lr_files is not None:
                lr_img = _read_8bit_rgb(lr_files[i])
                (h, w), (lh, lw) = modcrop(hr_img.pixels, scale).shape[-2:], lr_img.pixels.shape[-2:]
                if lh * scale != h or lw * scale != w:
                    raise ConfigError(
                        f"{lr_files[i]}: expected LR size {w // scale}x{h // scale} "
                        f"for HR {path.name} at x{scale}, got {lw}x{lh}"
                    )
                bench = prepare_image(hr_img, scale, lr=lr_img)
                hr, lr = _to_u8(bench.hr), _to_u8(bench.lr)
            elif precompute_bicubic:
                bench = prepare_image(hr_img, scale)  # the benchmark LR: round(imresize(modcrop(HR), 1/s))
                hr, lr = _to_u8(bench.hr), _to_u8(bench.lr)
            else:
                hr = _to_u8(modcrop(hr_img.pixels, scale))
            if color == "y" and lr is not None:
                hr, lr = to_y(hr), to_y(lr)
            pairs.append(ImagePair(name=path.name, hr=hr, lr=lr))
    return pairs


def augment(img: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 dihedral transforms of an ``(H, W, C)`` array: bit 0 h-flip, bits 1-2 rot90 count."""
    if code & 1:
        img = img[:, ::-1]
    k = (code >> 1) & 3
    if k:
        img = np.rot90(img, k, axes=(0, 1))
    return img


class PatchBatches(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Map-style dataset whose item ``i`` is the whole training batch of iteration ``i``.

    Each sample picks an image uniformly, an LR crop position uniformly (HR position = LR position
    times ``scale``, so the pair stays aligned), and one of the allowed dihedral transforms. The
    random numbers come from ``numpy.random.default_rng([seed, rank, i])``: deterministic per
    iteration and rank, independent of workers and resumption.

    Items are ``{"lr": (B, C, p, p), "hr": (B, C, p*s, p*s)}`` float32 in ``[0, 1]``.

    Args:
        pairs: cached images from :func:`load_pairs`.
        scale: SR factor.
        patch_size: LR crop side ``p``.
        batch_size: samples per batch ``B``.
        seed, rank: sampling seed and process rank (DDP ranks draw different crops).
        flip, rot90: allowed augmentations.
        color: ``"y"`` or ``"rgb"`` (only used with ``degradation``: Y is taken after degrading).
        degradation: a callable ``pipeline(hr, *, generator=...) -> (lr, ops)`` applied to each HR
            crop ``(1, 3, p*s, p*s)`` when the pairs have no cached LR.

    Raises:
        ConfigError: no image is large enough for one crop.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        *,
        scale: int,
        patch_size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        flip: bool = True,
        rot90: bool = True,
        color: Color = "rgb",
        degradation: Any = None,
        length: int | None = None,
    ) -> None:
        hp = patch_size * scale
        usable = [p for p in pairs if p.hr.shape[0] >= hp and p.hr.shape[1] >= hp]
        if not usable:
            raise ConfigError(f"no training image is at least {hp}x{hp} (patch_size {patch_size} x{scale})")
        if len(usable) < len(pairs):
            skipped = len(pairs) - len(usable)
            log.warning("%d of %d images are smaller than %dx%d and are skipped", skipped, len(pairs), hp, hp)
        if any(p.lr is None for p in usable) and degradation is None:
            raise ConfigError("images without cached LR need a degradation pipeline")
        self.pairs = usable
        self.scale = scale
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.codes = [c for c in range(8) if (flip or not c & 1) and (rot90 or c < 2)]
        self.color = color
        self.degradation = degradation
        self.length = length if length is not None else 2**62

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, int(index)])
        s, p = self.scale, self.patch_size
        lrs: list[np.ndarray] = []
        hrs: list[np.ndarray] = []
        for _ in range(self.batch_size):
            pair = self.pairs[int(rng.integers(len(self.pairs)))]
            h, w = pair.hr.shape[0] // s, pair.hr.shape[1] // s
            y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            code = self.codes[int(rng.integers(len(self.codes)))]
            hrs.append(augment(pair.hr[y * s : (y + p) * s, x * s : (x + p) * s], code))
            if pair.lr is not None:
                lrs.append(augment(pair.lr[y : y + p, x : x + p], code))
        hr = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float().div_(255.0)
        if lrs:
            lr = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float().div_(255.0)
            return {"lr": lr.contiguous(), "hr": hr.contiguous()}
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out = [self.degradation(hr[i : i + 1], generator=gen)[0] for i in range(hr.shape[0])]
        lr = torch.cat(out).clamp_(0, 1)
        if self.color == "y":
            hr = rgb_to_y(hr, round_8bit=True)
            lr = rgb_to_y(lr, round_8bit=True)
        return {"lr": lr.contiguous(), "hr": hr.contiguous()}
