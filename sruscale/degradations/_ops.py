"""Degradation operations as pure, batched tensor functions (CPU or GPU).

Every function takes ``x`` of shape ``(B, C, H, W)``, float, values nominally in ``[0, 1]``,
and returns a new tensor of the same dtype and device. Random functions take an optional
``torch.Generator``; noise is drawn on the generator's device and moved to ``x``'s, so a CPU
generator gives the same noise whether ``x`` lives on the CPU or a GPU.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .._checks import check_image
from ..errors import ConfigError, ImageError
from ..resize import Kernel, imresize

__all__ = [
    "RESIZE_MODES",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "decimate",
    "jpeg",
    "quantize",
    "resize",
]

ResizeMode = Literal["bicubic", "bilinear", "nearest", "area", "lanczos2", "lanczos3"]
Padding = Literal["reflect", "replicate", "symmetric"]

#: resize mode -> ``imresize`` kernel (``area`` is MATLAB's box kernel, which averages when downscaling)
RESIZE_MODES: dict[str, Kernel] = {
    "bicubic": "bicubic",
    "bilinear": "bilinear",
    "nearest": "nearest",
    "area": "box",
    "lanczos2": "lanczos2",
    "lanczos3": "lanczos3",
}


def _per_image(value: float | Sequence[float] | torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar or one value per image -> ``(B, 1, 1, 1)`` tensor on ``x``'s device and dtype."""
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(x.shape[0])
    if t.numel() != x.shape[0]:
        raise ConfigError(f"{name}: expected a scalar or {x.shape[0]} values (one per image), got {t.numel()}")
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def resize(
    x: torch.Tensor,
    *,
    scale: float | None = None,
    size: tuple[int, ...] | None = None,
    mode: ResizeMode = "bicubic",
) -> torch.Tensor:
    """Resize with MATLAB ``imresize`` semantics (antialiased when downscaling).

    Args:
        x: ``(B, C, H, W)`` float tensor.
        scale: output/input factor (integer or fractional); output is ``ceil(H * scale)``.
        size: ``(H_out, W_out)`` instead of ``scale``.
        mode: one of :data:`RESIZE_MODES`; ``area`` is the box kernel (pixel averaging when shrinking).

    Returns:
        ``(B, C, H_out, W_out)``, not clipped (bicubic and Lanczos overshoot).

    Raises:
        ConfigError: unknown mode. ImageError: bad tensor, scale or size.

    Example:
        >>> lr = resize(hr, scale=1 / 4)  # the "BI" benchmark degradation
    """
    check_image(x)
    if mode not in RESIZE_MODES:
        raise ConfigError(f"unknown resize mode {mode!r}; choose from {sorted(RESIZE_MODES)}")
    return imresize(x, scale, size=size, kernel=RESIZE_MODES[mode], antialias=True)


def decimate(x: torch.Tensor, scale: int, *, offset: int | None = None) -> torch.Tensor:
    """Keep every ``scale``-th pixel in each direction (no filtering): ``(B, C, H, W) -> (B, C, H//s, W//s)``.

    Args:
        x: ``(B, C, H, W)`` tensor.
        scale: integer factor ``s >= 1``.
        offset: index of the first kept row/column, in ``[0, s)``; default ``(s - 1) // 2``, the
            pixel nearest the centre of each ``s x s`` block. This is RDN's BD convention
            (``Prepare_TestData_HR_LR.m``: MATLAB ``imresize(.., 1/s, 'nearest')`` for odd ``s``
            and ``HR(s/2:s:end, ...)`` for even ``s``, both 0-based ``(s - 1) // 2``).

    Raises:
        ConfigError: for a bad scale or offset. ImageError: bad tensor or image smaller than ``s``.
    """
    check_image(x)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"decimation scale must be a positive integer, got {scale!r}")
    off = (scale - 1) // 2 if offset is None else offset
    if not 0 <= off < scale:
        raise ConfigError(f"decimation offset must be in [0, {scale}), got {off}")
    h, w = x.shape[-2] // scale, x.shape[-1] // scale
    if h < 1 or w < 1:
        raise ImageError(f"image {tuple(x.shape[-2:])} is smaller than the scale {scale}")
    return x[..., off : off + h * scale : scale, off : off + w * scale : scale].contiguous()


def _pad_index(n: int, before: int, after: int, mode: str, device: torch.device) -> torch.Tensor:
    i = torch.arange(-before, n + after, device=device)
    if mode == "replicate" or n == 1:
        return i.clamp(0, n - 1)
    if mode == "symmetric":  # edge pixel repeated (MATLAB 'symmetric')
        j = torch.remainder(i, 2 * n)
        return torch.where(j < n, j, 2 * n - 1 - j)
    j = torch.remainder(i, 2 * n - 2)  # 'reflect': edge pixel not repeated
    return torch.where(j < n, j, 2 * n - 2 - j)


def blur(x: torch.Tensor, kernel: torch.Tensor, *, padding: Padding = "reflect") -> torch.Tensor:
    """Filter every channel with ``kernel`` (correlation, like MATLAB ``imfilter``), same output size.

    Args:
        x: ``(B, C, H, W)`` float tensor.
        kernel: ``(kh, kw)`` shared by the batch, or ``(B, kh, kw)`` one per image. Even sizes
            centre like ``imfilter``: the output pixel sits at tap ``(k - 1) // 2`` (0-based).
        padding: border extension: ``reflect`` (mirror without repeating the edge),
            ``replicate`` (repeat the edge) or ``symmetric`` (mirror with the edge). Any image
            size works, also one smaller than the kernel.

    Returns:
        ``(B, C, H, W)`` tensor (a kernel summing to 1 preserves the mean).

    Raises:
        ConfigError: unknown padding or kernel shape. ImageError: bad tensor.
    """
    check_image(x)
    if padding not in ("reflect", "replicate", "symmetric"):
        raise ConfigError(f"unknown padding {padding!r}; choose from ['reflect', 'replicate', 'symmetric']")
    if kernel.ndim not in (2, 3) or (kernel.ndim == 3 and kernel.shape[0] != x.shape[0]):
        raise ConfigError(f"expected a kernel of shape (kh, kw) or ({x.shape[0]}, kh, kw), got {tuple(kernel.shape)}")
    b, c, h, w = x.shape
    kh, kw = kernel.shape[-2:]
    ih = _pad_index(h, (kh - 1) // 2, kh // 2, padding, x.device)
    iw = _pad_index(w, (kw - 1) // 2, kw // 2, padding, x.device)
    xp = x.index_select(-2, ih).index_select(-1, iw)
    k = kernel.to(device=x.device, dtype=x.dtype)
    if k.ndim == 2:
        return F.conv2d(xp, k.expand(c, 1, kh, kw), groups=c)
    out = F.conv2d(xp.reshape(1, b * c, *xp.shape[-2:]), k.repeat_interleave(c, dim=0).unsqueeze(1), groups=b * c)
    return out.view(b, c, h, w)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    device = like.device if generator is None else generator.device
    t = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    return t.to(device=like.device, dtype=like.dtype)


def _finish(out: torch.Tensor, clip: bool) -> torch.Tensor:
    return out.clamp_(0.0, 1.0) if clip else out


def add_gaussian_noise(
    x: torch.Tensor,
    sigma: float | Sequence[float] | torch.Tensor,
    *,
    gray: bool = False,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add zero-mean Gaussian noise.

    Args:
        x: ``(B, C, H, W)`` float tensor in ``[0, 1]``.
        sigma: standard deviation on the ``[0, 1]`` scale (``30 / 255`` for "sigma 30"); a
            scalar or one value per image.
        gray: the same noise in every channel (luminance noise) instead of independent colour noise.
        clip: clamp the result to ``[0, 1]``.
        generator: source of randomness (``None``: torch's global generator).

    Returns:
        ``(B, C, H, W)`` noisy tensor.
    """
    check_image(x)
    s = _per_image(sigma, x, "sigma")
    b, c, h, w = x.shape
    noise = _randn((b, 1 if gray else c, h, w), generator, x)
    return _finish(x + noise * s, clip)


def _luma(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ImageError(f"gray noise needs 1 or 3 channels, got {x.shape[1]}")
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _poisson_levels(x8: torch.Tensor) -> torch.Tensor:
    """BasicSR's photon count per image: ``2 ** ceil(log2(number of distinct 8-bit levels))``."""
    levels = (x8 * 255).round().long().flatten(1)
    counts = torch.stack([(torch.bincount(row, minlength=256) > 0).sum() for row in levels])
    return torch.exp2(torch.ceil(torch.log2(counts.double().clamp(min=1))))


def add_poisson_noise(
    x: torch.Tensor,
    scale: float | Sequence[float] | torch.Tensor,
    *,
    peak: float | None = None,
    gray: bool = False,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add signal-dependent (shot) noise: ``x + scale * (Poisson(peak * x8) / peak - x8)``.

    ``x8`` is ``x`` rounded to 8 bits. With ``peak=None`` the photon count follows BasicSR /
    Real-ESRGAN: ``2 ** ceil(log2(number of distinct 8-bit levels))`` per image (256 for most
    photos), so the noise standard deviation is about ``scale * sqrt(x / 256)``.

    Args:
        x: ``(B, C, H, W)`` float tensor in ``[0, 1]``.
        scale: noise strength multiplier, scalar or one per image.
        peak: photon count at intensity 1; ``None`` for the rule above.
        gray: the same noise in every channel, computed on the luma ``0.2989 R + 0.587 G + 0.114 B``.
        clip: clamp the result to ``[0, 1]``.
        generator: source of randomness.

    Returns:
        ``(B, C, H, W)`` noisy tensor.
    """
    check_image(x)
    s = _per_image(scale, x, "scale")
    base = _luma(x) if gray else x
    x8 = (base.clamp(0, 1) * 255).round() / 255
    vals = _poisson_levels(x8) if peak is None else torch.full((x.shape[0],), float(peak), dtype=torch.float64)
    if not bool((vals > 0).all()):
        raise ConfigError(f"Poisson peak must be > 0, got {peak!r}")
    lam = (x8.double() * vals.to(x8.device).view(-1, 1, 1, 1)).float()
    dev = x.device if generator is None else generator.device
    counts = torch.poisson(lam.to(dev), generator=generator).to(device=x.device, dtype=torch.float64)
    noise = (counts / vals.to(x.device).view(-1, 1, 1, 1) - x8.double()).to(x.dtype)
    return _finish(x + noise * s, clip)


def jpeg(x: torch.Tensor, quality: int | Sequence[int]) -> torch.Tensor:
    """Round-trip through a real JPEG codec (Pillow / libjpeg, 4:2:0 chroma subsampling).

    The input is clamped to ``[0, 1]`` and rounded to 8 bits first, as any encoder does.

    Args:
        x: ``(B, C, H, W)`` float tensor with ``C`` = 1 (gray) or 3 (RGB).
        quality: JPEG quality in ``[1, 100]``, one for all images or one per image.

    Returns:
        ``(B, C, H, W)`` decoded image in ``[0, 1]`` (multiples of 1/255), on ``x``'s device.

    Raises:
        ConfigError: quality out of range. ImageError: unsupported channel count.
    """
    check_image(x)
    qs = [int(q) for q in (quality if isinstance(quality, Sequence) else [quality] * x.shape[0])]
    if len(qs) != x.shape[0]:
        raise ConfigError(f"quality: expected 1 or {x.shape[0]} values, got {len(qs)}")
    if any(not 1 <= q <= 100 for q in qs):
        raise ConfigError(f"JPEG quality must be in [1, 100], got {qs}")
    if x.shape[1] not in (1, 3):
        raise ImageError(f"JPEG needs 1 or 3 channels, got {x.shape[1]}")
    arr = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img, q in zip(arr, qs, strict=True):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img, mode="L" if img.shape[-1] == 1 else "RGB")
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        dec = np.asarray(Image.open(buf).convert(pil.mode))
        out.append(dec.reshape(img.shape))
    t = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return (t.to(device=x.device, dtype=x.dtype) / 255.0).contiguous()


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clamp to ``[0, 1]`` and round to ``2**bits`` levels (``bits=8``: what saving as 8-bit PNG does).

    Raises:
        ConfigError: ``bits`` not in ``[1, 16]``.
    """
    check_image(x)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in [1, 16], got {bits!r}")
    levels = float(2**bits - 1)
    return (x.clamp(0.0, 1.0) * levels).round_() / levels
