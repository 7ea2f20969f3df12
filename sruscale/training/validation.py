"""Validation during training: the benchmark protocol of :mod:`sruscale.evaluation.protocol`, nothing else.

The scores logged to ``val.csv`` (``psnr``, ``ssim``) are exactly what ``sruscale evaluate`` reports for
the same weights and images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..data import match_by_stem
from ..degradations import Pipeline, degrade_seeded, image_seed
from ..errors import ConfigError
from ..evaluation.protocol import BenchmarkImage, Protocol, evaluate_images, modcrop, prepare_image
from ..image import list_images, read_image
from ..models import SRModel

__all__ = ["VAL_METRICS", "load_val_images", "validate"]

#: the scores :func:`validate` returns (the names ``evaluate`` uses)
VAL_METRICS: tuple[str, ...] = ("psnr", "ssim")


def load_val_images(
    hr: str | os.PathLike[str] | Sequence[Path],
    *,
    scale: int,
    lr_dir: str | os.PathLike[str] = "",
    max_images: int = 0,
    degradation: Pipeline | None = None,
    seed: int = 0,
) -> list[BenchmarkImage]:
    """Validation inputs prepared by the protocol: modcropped HR and its LR.

    Args:
        hr: HR folder, or the HR files themselves (held-out training images).
        scale: SR factor.
        lr_dir: paired LR folder (files matched by stem); else the LR is made from HR.
        max_images: use only the first N images (0 = all).
        degradation: a pipeline that makes the LR, seeded per image by ``(seed, file name)`` exactly
            like ``sruscale degrade --seed`` (:func:`~sruscale.degradations.degrade_seeded`); ``None``
            = the protocol's bicubic LR.

    Raises:
        ImageError: a missing or empty folder, an unreadable image, an LR file of the wrong size.
        ConfigError: LR files that do not pair with the HR files by stem.
    """
    if isinstance(hr, (str, os.PathLike)):
        folder: str | os.PathLike[str] | None = hr
        files = list_images(hr)
    else:
        folder, files = None, [Path(p) for p in hr]
    lr_files = None
    if lr_dir:
        if folder is None:
            raise ConfigError("val.lr: paired LR files need an HR folder, got a list of files")
        lr_files = match_by_stem(files, list_images(lr_dir), hr_dir=folder, lr_dir=lr_dir)
    if max_images:
        files = files[:max_images]
    images = []
    for i, path in enumerate(files):
        img = read_image(path)
        lr = read_image(lr_files[i]) if lr_files is not None else None
        if degradation is not None:
            hr_px = modcrop(img.pixels, scale)
            lr = img.with_pixels(degrade_seeded(degradation, hr_px, image_seed(seed, path.name))[0], None)
        images.append(prepare_image(img, scale, lr=lr, name=path.stem, path=path))
    return images


def validate(
    model: nn.Module, images: Sequence[BenchmarkImage], *, scale: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Paper-protocol scores of ``model`` on ``images`` (from :func:`load_val_images`), averaged.

    Runs :func:`~sruscale.evaluation.protocol.evaluate_images`: the model sees the RGB LR image as
    ``upscale`` gives it (a Y network gets the Y plane, Cb/Cr bicubic), the output is rounded to
    8 bits, PSNR/SSIM are measured on MATLAB ``rgb2ycbcr`` Y with ``scale`` pixels cropped.
    The model's training mode is restored.

    Returns:
        ``{"psnr": dB, "ssim": [0, 1]}``.

    Raises:
        ConfigError: ``model`` is not an :class:`~sruscale.models.SRModel`.
    """
    if not isinstance(model, SRModel):
        raise ConfigError(f"validation needs an SRModel, got {type(model).__name__}")
    protocol = Protocol.make("paper", scale=scale, metrics=VAL_METRICS)
    return evaluate_images(model, images, protocol, device=device).means()
