"""The Python API: load a model by name or file, upscale one image. No CLI needed.

Example:
    >>> import sruscale
    >>> from sruscale.image import write_image
    >>> model = sruscale.load_model(scale=2)                  # best bundled x2 model
    >>> img = sruscale.upscale_image("photo.png", model)      # ImageData, 2x larger
    >>> write_image("photo_x2.png", img)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import overload

import torch

from ._defaults import AlphaMode, Precision
from .device import resolve_device
from .errors import ConfigError, ImageError
from .image import ImageData, read_image
from .models import SRModel
from .models.bicubic import Bicubic
from .resize import imresize
from .tiling import upscale_tensor
from .weights import DEFAULT_SCALE, load_model, model_scale

__all__ = ["DEFAULT_SCALE", "load_model", "model_scale", "upscale_image"]

#: ``_upscale_planes`` with its options bound: (model, colour planes, alpha or None) -> (out, alpha out)
_Planes = Callable[[SRModel, torch.Tensor, "torch.Tensor | None"], "tuple[torch.Tensor, torch.Tensor | None]"]


def _model_device(model: SRModel) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _out_size(h: int, w: int, factor: float) -> tuple[int, int]:
    return max(1, math.floor(h * factor + 0.5)), max(1, math.floor(w * factor + 0.5))


def _upscale_planes(
    model: SRModel,
    x: torch.Tensor,
    alpha: torch.Tensor | None,
    *,
    outscale: float | None,
    alpha_mode: AlphaMode,
    tile: int | None,
    overlap: int | None,
    precision: Precision,
    device: torch.device,
    self_ensemble: bool,
    wrap: bool = False,
    progress: Callable[[int, int], None] | None = None,
    final8: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``x`` (B, C, H, W) in [0, 1] or uint8, ``alpha`` (B, 1, H, W) or None -> upscaled, clamped, on CPU;
    with ``final8`` (no alpha, no resize after the model) the colour planes come as final uint8 values."""
    h, w = x.shape[-2:]
    size = _out_size(h, w, outscale) if outscale is not None else (h * model.scale, w * model.scale)
    direct = isinstance(model, Bicubic) and outscale is not None and not wrap  # one resize instead of two
    final8 = final8 and alpha is None and not direct and size == (h * model.scale, w * model.scale)

    def run(t: torch.Tensor) -> torch.Tensor:
        if direct:
            t = t.cpu().float().div_(255) if t.dtype == torch.uint8 else t.float().cpu()
            return imresize(t, size=size).clamp_(0, 1)
        out = upscale_tensor(
            model,
            t,
            tile=tile,
            overlap=overlap,
            precision=precision,
            device=device,
            self_ensemble=self_ensemble,
            out_dtype=torch.uint8 if final8 else torch.float32,
            wrap=wrap,
            progress=progress,
        )
        if tuple(out.shape[-2:]) != size:
            out = imresize(out, size=size).clamp_(0, 1)
        return out

    out = run(x)
    if alpha is None:
        return out, None
    if bool((alpha >= 1).all()):  # fully opaque: nothing to upscale
        return out, torch.ones((alpha.shape[0], 1, *size), dtype=torch.float32)
    if alpha_mode == "model":
        return out, run(alpha)
    if alpha_mode == "bicubic":
        return out, imresize(alpha.float().cpu(), size=size).clamp_(0, 1)
    raise ConfigError(f"alpha must be 'model' or 'bicubic', got {alpha_mode!r}")


@overload
def upscale_image(
    image: ImageData | str | os.PathLike[str],
    model: SRModel | None = ...,
    *,
    scale: int | None = ...,
    outscale: float | None = ...,
    tile: int | None = ...,
    overlap: int | None = ...,
    precision: Precision = ...,
    device: str | torch.device | None = ...,
    self_ensemble: bool = ...,
    alpha: AlphaMode = ...,
    wrap: bool = ...,
    progress: Callable[[int, int], None] | None = ...,
    final8: bool = ...,
) -> ImageData: ...
@overload
def upscale_image(
    image: torch.Tensor,
    model: SRModel | None = ...,
    *,
    scale: int | None = ...,
    outscale: float | None = ...,
    tile: int | None = ...,
    overlap: int | None = ...,
    precision: Precision = ...,
    device: str | torch.device | None = ...,
    self_ensemble: bool = ...,
    alpha: AlphaMode = ...,
    wrap: bool = ...,
    progress: Callable[[int, int], None] | None = ...,
    final8: bool = ...,
) -> torch.Tensor: ...
def upscale_image(
    image: ImageData | str | os.PathLike[str] | torch.Tensor,
    model: SRModel | None = None,
    *,
    scale: int | None = None,
    outscale: float | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    precision: Precision = "auto",
    device: str | torch.device | None = None,
    self_ensemble: bool = False,
    alpha: AlphaMode = "model",
    wrap: bool = False,
    progress: Callable[[int, int], None] | None = None,
    final8: bool = False,
) -> ImageData | torch.Tensor:
    """Upscale one image (tiled, any size) with ``model``.

    The colour planes go through the model; an alpha plane is upscaled separately, by
    the model as a gray image (``alpha="model"``) or by MATLAB bicubic (``"bicubic"``).
    With ``outscale`` the model output is resized (MATLAB bicubic) to
    ``round(H * outscale) x round(W * outscale)``.

    Args:
        image: an :class:`~sruscale.image.ImageData` (returns one, same bit depth, ICC
            profile and format), a path (read with :func:`~sruscale.image.read_image`),
            or a float tensor ``(B, C, H, W)`` / ``(C, H, W)`` in ``[0, 1]`` with ``C`` in
            {1, 3} or, with alpha as the last channel, {2, 4} (returns a tensor of the same
            layout on the CPU).
        model: from :func:`load_model`; ``None`` loads the default model for ``scale``.
            Moved to ``device`` when one is given.
        scale: only used when ``model`` is None; must match ``model.scale`` otherwise.
        outscale: final size factor (any positive float), default ``model.scale``.
        tile, overlap: tile size / overlap in input pixels (None = auto, tile 0 = whole image).
        precision: ``"auto"`` (fp16/bf16 on CUDA, fp32 elsewhere), ``"fp32"``, ``"fp16"``, ``"bf16"``.
        device: where to run; default the model's device (``"auto"`` when loading one).
        self_ensemble: average the 8 flips/rotations.
        alpha: how to upscale the alpha plane.
        wrap: treat the image as a tileable texture (circular padding; the output tiles seamlessly).
        progress: ``progress(done_tiles, total_tiles)`` after each tile.
        final8: for an 8-bit image without alpha upscaled by the model's own factor, return its final
            ``uint8`` values (stored channels-last, what an encoder takes) instead of float pixels:
            the same bytes when written, without a float copy of the output (4x its final size).
            Tensors always come back as float.

    Returns:
        The upscaled image, values clamped to ``[0, 1]``.

    Raises:
        ImageError: unreadable path or a tensor of the wrong shape/dtype.
        ConfigError: bad ``outscale``, ``alpha`` or a ``scale`` that contradicts ``model``.
    """
    if outscale is not None and not (math.isfinite(outscale) and outscale > 0):
        raise ConfigError(f"outscale must be a positive number, got {outscale}")
    if alpha not in ("model", "bicubic"):
        raise ConfigError(f"alpha must be 'model' or 'bicubic', got {alpha!r}")
    if model is None:
        model = load_model(scale=scale, device=device if device is not None else "auto")
    elif scale is not None and scale != model.scale:
        raise ConfigError(f"scale {scale} requested but the model is x{model.scale}")
    if device is None:
        dev = _model_device(model)
    else:
        dev = resolve_device(device)
        model.to(dev)
    if isinstance(image, str | os.PathLike):
        image = read_image(Path(image))
    planes: _Planes = functools.partial(
        _upscale_planes,
        final8=final8 and isinstance(image, ImageData) and image.bit_depth == 8,
        outscale=outscale,
        alpha_mode=alpha,
        tile=tile,
        overlap=overlap,
        precision=precision,
        device=dev,
        self_ensemble=self_ensemble,
        wrap=wrap,
        progress=progress,
    )

    if isinstance(image, torch.Tensor):
        return _upscale_tensor_image(model, image, planes)
    if not isinstance(image, ImageData):
        raise ImageError(f"expected ImageData, a path or a tensor, got {type(image).__name__}")
    pixels, a = planes(model, image.pixels, image.alpha)  # uint8 pixels are read tile by tile
    return image.with_pixels(pixels, a)


def _upscale_tensor_image(model: SRModel, x: torch.Tensor, planes: _Planes) -> torch.Tensor:
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 2, 3, 4):
        raise ImageError(f"expected (B, C, H, W) or (C, H, W) with C in 1..4, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"expected a float tensor in [0, 1], got {x.dtype}")
    batched = x.ndim == 4
    x4 = x if batched else x.unsqueeze(0)
    c = x4.shape[1]
    color, a = (x4[:, : c - 1], x4[:, c - 1 :]) if c in (2, 4) else (x4, None)
    out, a_out = planes(model, color, a)
    if a_out is not None:
        out = torch.cat([out, a_out], dim=1)
    return out if batched else out.squeeze(0)
