"""Validation with the paper protocol: modcropped HR, 8-bit bicubic LR, PSNR/SSIM on Y with ``scale`` crop."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..color import rgb_to_y
from ..data import ImagePair, bicubic_lr, list_images, load_rgb, match_by_stem, modcrop, to_y
from ..metrics import ssim

__all__ = ["load_val_images", "validate"]


def load_val_images(
    hr_dir: str | os.PathLike[str], *, scale: int, lr_dir: str | os.PathLike[str] = "", max_images: int = 0
) -> list[ImagePair]:
    """Validation pairs as ``uint8`` RGB: modcropped HR and LR = ``round(imresize(HR, 1/s))``
    (or the paired LR file)."""
    files = list_images(hr_dir)
    lr_files = (
        match_by_stem(files, list_images(lr_dir), scale=scale, hr_dir=hr_dir, lr_dir=lr_dir) if lr_dir else None
    )
    if max_images:
        files = files[:max_images]
    pairs = []
    for i, path in enumerate(files):
        hr = modcrop(load_rgb(path), scale)
        lr = load_rgb(lr_files[i]) if lr_files is not None else bicubic_lr(hr, scale)
        pairs.append(ImagePair(name=path.name, hr=hr, lr=lr))
    return pairs


def _to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    arr = np.require(img, requirements=["C", "W"])
    return torch.from_numpy(arr).permute(2, 0, 1)[None].to(device, torch.float32) / 255.0


def _run_padded(model: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
    """Run ``model`` on ``x`` padded (replicate) to its size requirements, cropped back."""
    m = getattr(model, "multiple_of", 1)
    minimum = getattr(model, "minimum", 1)
    h, w = x.shape[-2:]
    ph = max(minimum, math.ceil(h / m) * m) - h
    pw = max(minimum, math.ceil(w / m) * m) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return model(x)[..., : h * scale, : w * scale]


def _psnr_255(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).square().mean().item()
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim_y(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """SSIM of two ``(1, 1, H, W)`` Y planes on the 0..255 scale (:func:`sruscale.metrics.ssim`)."""
    value = ssim(a / 255.0, b / 255.0, crop_border=0, y_channel=False, data_range=1.0)
    return float(value.mean().item())


@torch.no_grad()
def validate(
    model: nn.Module,
    pairs: Sequence[ImagePair],
    *,
    scale: int,
    color: Literal["y", "rgb"],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Paper-protocol scores of ``model`` on ``pairs`` (from :func:`load_val_images`).

    The LR image is the 8-bit RGB bicubic downscale; a Y network gets its 8-bit Y plane
    (MATLAB ``rgb2ycbcr``), an RGB network the RGB image. The output is clamped and
    rounded to 8 bits; PSNR and SSIM are measured on Y (rounded to 8 bits) with ``scale``
    pixels cropped from each border, and averaged over the images.

    Returns:
        ``{"psnr_y": dB, "ssim_y": [0, 1]}`` (``ssim_y`` only when :mod:`sruscale.metrics` is available).
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    psnrs: list[float] = []
    ssims: list[float] = []
    try:
        for pair in pairs:
            assert pair.lr is not None
            if color == "y":
                x = _to_tensor(to_y(pair.lr), device)
                target = torch.from_numpy(to_y(pair.hr)[..., 0]).double()
            else:
                x = _to_tensor(pair.lr, device)
                target = rgb_to_y(_to_tensor(pair.hr, torch.device("cpu")).double(), round_8bit=True)[0, 0] * 255
            sr = _run_padded(model, x, scale).float().clamp(0, 1).mul(255).round().cpu().double()
            sr_y = sr[0, 0] if color == "y" else rgb_to_y(sr / 255.0, round_8bit=True)[0, 0] * 255
            c = scale
            a, b = sr_y[c:-c, c:-c], target[c:-c, c:-c]
            psnrs.append(_psnr_255(a, b))
            s = _ssim_y(a[None, None], b[None, None])
            if s is not None:
                ssims.append(s)
    finally:
        model.train(was_training)
    out = {"psnr_y": float(np.mean(psnrs))}
    if ssims:
        out["ssim_y"] = float(np.mean(ssims))
    return out
