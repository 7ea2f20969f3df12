"""What an input photo went through: its JPEG quality (from the quantisation tables) and its noise level.

Used to choose a model per file when none is named (clean inputs to the clean default, compressed or
noisy ones to the real-photo family, with ``--denoise`` from the estimates). Both estimates are cheap:
the JPEG quality is read from the file header, the noise from one high-pass of the luma.

* JPEG quality: libjpeg (IJG) scales its standard luminance table by ``5000 / q`` (``q < 50``) or
  ``200 - 2 q`` (percent), rounds and clamps to 1..255. The quality is the ``q`` in 1..100 whose
  table is nearest (mean absolute difference) to the file's first table; encoders with other tables
  (some cameras) get the nearest IJG quality, which is what matters here: how coarse the steps are.
* Noise: Immerkaer's estimator (1996), ``sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) * sum |I * N|``
  with the Laplacian-difference mask ``N``, on luma in 0..255, over the flattest tenth of the image
  (smallest Sobel response) so texture counts less. Measured on Set14 + 10 BSD100 images with added
  Gaussian noise: median estimate 1.1 / 2.5 / 3.8 / 6.9 / 10.1 for sigma 0 / 3 / 5 / 10 / 15
  (clean images up to 6.5 where all is texture).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .image import open_input

__all__ = ["InputQuality", "Route", "estimate_noise", "input_quality", "jpeg_quality", "route"]

#: the IJG standard luminance quantisation table (ITU-T T.81 Annex K), in zig-zag-free row order
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    dtype=np.float64,
)  # fmt: skip


@lru_cache(maxsize=1)
def _ijg_tables() -> np.ndarray:
    """``(100, 64)``: the IJG luminance table at quality 1..100."""
    q = np.arange(1, 101, dtype=np.float64)[:, None]
    scale = np.where(q < 50, 5000 / q, 200 - 2 * q)
    return np.clip(np.floor((_IJG_LUMA[None] * scale + 50) / 100), 1, 255)


def jpeg_quality(path: str | os.PathLike[str]) -> float | None:
    """The IJG quality (1..100) a JPEG was saved at, from its luminance table; None for other formats.

    Raises:
        ImageError: the file cannot be opened (as for any input).
    """
    with open_input(path) as f, Image.open(f) as im:
        tables = getattr(im, "quantization", None) if im.format == "JPEG" else None
        if not tables:
            return None
        first = np.asarray(sorted(tables.items())[0][1], dtype=np.float64)
    if first.size != 64:
        return None
    err = np.abs(_ijg_tables() - first[None]).mean(axis=1)  # Pillow gives the table in natural order
    return float(np.argmin(err) + 1)


def estimate_noise(pixels: torch.Tensor) -> float:
    """Gaussian noise sigma (0..255 scale) of an image, ``(1, C, H, W)`` in [0, 1] (luma of RGB).

    Returns 0 for images smaller than 8x8.
    """
    x = pixels.double()
    if x.shape[1] == 3:
        x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) * 255
    else:
        x = x[:, :1] * 255
    if min(x.shape[-2:]) < 8:
        return 0.0
    mask = torch.tensor([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=x.dtype).view(1, 1, 3, 3)
    lap = F.conv2d(x, mask).abs()
    sobel_x = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=x.dtype).view(1, 1, 3, 3)
    grad = F.conv2d(x, sobel_x).abs() + F.conv2d(x, sobel_x.transpose(-1, -2)).abs()
    flat = grad <= torch.quantile(grad.flatten()[:: max(1, grad.numel() // 200_000)], 0.1)
    if int(flat.sum()) < 64:
        return 0.0
    return float(math.sqrt(math.pi / 2) * lap[flat].mean() / 6)


@dataclass(frozen=True)
class InputQuality:
    """What an input went through: ``jpeg`` quality (None: not a JPEG) and ``noise`` sigma (0..255)."""

    jpeg: float | None
    noise: float

    def describe(self) -> str:
        parts = [f"JPEG q{self.jpeg:.0f}" if self.jpeg is not None else "not JPEG", f"noise {self.noise:.1f}"]
        return ", ".join(parts)


def input_quality(path: str | os.PathLike[str], pixels: torch.Tensor) -> InputQuality:
    """Both estimates for one input file and its decoded ``(1, C, H, W)`` pixels in [0, 1]."""
    return InputQuality(jpeg_quality(path), estimate_noise(pixels))


@dataclass(frozen=True)
class Route:
    """Where one input goes: ``model`` None (the clean default) or a family, its ``denoise``, and why."""

    model: str | None
    denoise: float | None
    reason: str


#: JPEG inputs of a quality below each bound go to ``realworld`` at that ``--denoise`` (first match); at
#: or above the last bound they go to the clean default. Chosen on validation only (Set5 + the first
#: Urban100 images, x4, ``python train/auto_choice_eval.py validate``; ``train/logs/auto_choice_validation.csv``).
#: Mean Y-PSNR there over 10 images (clean default / realworld at its best --denoise): q30 23.73 / 24.37
#: (d 0.75 and 1), q50 24.53 / 24.95 (d 0.75), q70 25.41 / 25.37 (d 0.5), q90 27.13 / 25.83, PNG
#: 28.18 / 25.93: realworld wins up to about quality 65, the clean default above.
JPEG_ROUTES: tuple[tuple[float, float], ...] = ((40, 1.0), (65, 0.75))
#: a non-JPEG (or high-quality JPEG) input whose estimated noise sigma (0..255) is at least the bound goes
#: to ``realworld`` at that ``--denoise``: estimates of 4 and 7 are what added Gaussian noise of sigma
#: 5 and 10 gives on typical photos (see :func:`estimate_noise`), clean photos estimate about 1
NOISE_ROUTES: tuple[tuple[float, float], ...] = ((7.0, 1.0), (4.0, 0.75))


def route(quality: InputQuality) -> Route:
    """The model for one input: a compressed or noisy photo to ``realworld`` (with ``--denoise`` from
    the estimate), anything else to the clean default."""
    if quality.jpeg is not None:
        for bound, denoise in JPEG_ROUTES:
            if quality.jpeg < bound:
                return Route("realworld", denoise, f"JPEG quality {quality.jpeg:.0f} < {bound:g}")
    for bound, denoise in NOISE_ROUTES:
        if quality.noise >= bound:
            return Route("realworld", denoise, f"noise {quality.noise:.1f} >= {bound:g}")
    return Route(None, None, "clean" if quality.jpeg is None else f"JPEG quality {quality.jpeg:.0f}")
