"""Colour conversions with the conventions of SR papers (MATLAB ``rgb2ycbcr``, BT.601 studio range)."""

from __future__ import annotations

import torch

from .errors import ImageError

__all__ = ["planes_to_rgb", "rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]

# MATLAB rgb2ycbcr: [Y Cb Cr] = offset + M @ [R G B], R,G,B in [0, 1], outputs in [0, 255].
_M = torch.tensor(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=torch.float64,
)
_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)


def _check_rgb(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ImageError(f"expected an RGB tensor of shape (B, 3, H, W), got {tuple(x.shape)}")


def rgb_to_ycbcr(x: torch.Tensor, *, round_8bit: bool = False) -> torch.Tensor:
    """RGB to YCbCr as MATLAB's ``rgb2ycbcr`` (BT.601, studio range), scaled back to [0, 1].

    Args:
        x: ``(B, 3, H, W)`` RGB in ``[0, 1]``.
        round_8bit: round to integers on the 0..255 scale, as MATLAB does for ``uint8`` input.

    Returns:
        ``(B, 3, H, W)`` YCbCr; Y in ``[16/255, 235/255]``, Cb/Cr in ``[16/255, 240/255]``.
    """
    _check_rgb(x)
    m = _M.to(device=x.device, dtype=x.dtype)
    off = _OFFSET.to(device=x.device, dtype=x.dtype)
    out = torch.einsum("ij,bjhw->bihw", m, x) + off.view(1, 3, 1, 1)
    if round_8bit:
        out = out.round()
    return out / 255.0


def rgb_to_y(x: torch.Tensor, *, round_8bit: bool = False) -> torch.Tensor:
    """The Y plane of :func:`rgb_to_ycbcr`: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 1, H, W)``."""
    return rgb_to_ycbcr(x, round_8bit=round_8bit)[:, :1]


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (MATLAB ``ycbcr2rgb``): ``(B, 3, H, W)`` -> RGB, unclipped."""
    _check_rgb(x)
    return planes_to_rgb(x[:, :1], x[:, 1:])


def planes_to_rgb(y: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """:func:`ycbcr_to_rgb` of Y ``(B, 1, H, W)`` and CbCr ``(B, 2, H, W)`` planes, without joining them.

    Three broadcast multiply-adds into the result, its only full-size buffer (joining the planes and
    a matrix product held five RGB-sized temporaries per x4 tile; a 1x1 convolution converts layouts).
    """
    if y.ndim != 4 or cbcr.ndim != 4 or y.shape[1] != 1 or cbcr.shape[1] != 2 or y.shape[2:] != cbcr.shape[2:]:
        raise ImageError(f"expected Y (B, 1, H, W) and CbCr (B, 2, H, W), got {tuple(y.shape)} and {tuple(cbcr.shape)}")
    m_inv = torch.linalg.inv(_M)
    a = (255.0 * m_inv).to(device=y.device, dtype=cbcr.dtype)  # RGB = a @ YCbCr + b
    b = (-(m_inv @ _OFFSET)).to(device=y.device, dtype=cbcr.dtype)
    col = [a[:, j].view(1, 3, 1, 1) for j in range(3)]
    out = (cbcr[:, :1] * col[1]).add_(b.view(1, 3, 1, 1))
    return out.addcmul_(cbcr[:, 1:], col[2]).addcmul_(y.to(out.dtype), col[0])
