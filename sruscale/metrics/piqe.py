"""PIQE, the Perception-based Image Quality Evaluator (Venkatanath N. et al., NCC 2015).

"Blind image quality evaluation using perception based features". No model, no reference: the
image (MATLAB ``rgb2gray``, scaled so its maximum is 255 and rounded) is padded symmetrically to
multiples of 16, MSCN-normalised (7x7 Gaussian, sigma 7/6, replicated borders, ``C = 1``) and cut
into 16x16 blocks. Blocks with variance > 0.1 are "active"; an active block is distorted by
noticeable artifacts when some 6-pixel segment of one of its edges has a standard deviation < 0.1
(weight ``1 - var``), and by noise when its standard deviation exceeds twice the
centre/surround deviation criterion (weight ``var``). Score in ``[0, 100]``, lower is better:

    PIQE = 100 * (sum of distorted-block weights + 1) / (number of active blocks + 1)

Follows MATLAB's ``piqe`` (Image Processing Toolbox), including its centre/surround split (the
columns 8 and 10 of a block are taken out of the surround after deleting column 8, as MATLAB's
successive ``Block(:, c) = []`` do).
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import torch

from ._common import MetricOptions, Reduction, check_reduction, reduce
from ._nr import NoReferenceModule, luma_planes
from ._nss import fspecial_gaussian, mscn

__all__ = ["PIQE", "piqe", "piqe_score"]

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def _edge_segments_std(edges: np.ndarray) -> np.ndarray:
    """``(N, 16)`` edges -> ``(N, 11)`` sample std of each 6-pixel sliding segment."""
    win = np.lib.stride_tricks.sliding_window_view(edges, SEGMENT, axis=-1)
    return win.std(axis=-1, ddof=1)


def piqe_score(plane: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """PIQE of one ``(H, W)`` gray plane (any positive scale; it is rescaled to max 255 and rounded).

    Returns:
        ``(score, masks)``: score in ``[0, 100]`` and the per-block boolean maps ``activity``,
        ``artifacts`` and ``noise`` of shape ``(ceil(H/16), ceil(W/16))``.
    """
    h, w = plane.shape
    pad_h, pad_w = (-h) % BLOCK, (-w) % BLOCK
    img = np.pad(plane.astype(np.float64), ((0, pad_h), (0, pad_w)), mode="symmetric")
    peak = img.max()
    img = np.round(255.0 * img / peak) if peak > 0 else img
    norm, _ = mscn(img, fspecial_gaussian(7, 7 / 6))
    nh, nw = img.shape[0] // BLOCK, img.shape[1] // BLOCK
    blocks = norm.reshape(nh, BLOCK, nw, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK, BLOCK)

    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD

    edges = [blocks[:, 0, :], blocks[:, :, BLOCK - 1], blocks[:, BLOCK - 1, :], blocks[:, :, 0]]
    impaired = np.zeros(len(blocks), dtype=bool)
    for e in edges:
        impaired |= (_edge_segments_std(e) < IMPAIRED_THRESHOLD).any(axis=1)

    # centre/surround deviation (MATLAB centerSurDev with blockSize-1 = 15: centre columns 8 and 9, 1-based)
    c1 = BLOCK // 2  # 8 (1-based)
    center = np.concatenate([blocks[:, :, c1 - 1], blocks[:, :, c1]], axis=1)
    surround = np.delete(np.delete(blocks, c1 - 1, axis=2), c1, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        csd = center.std(axis=1, ddof=1) / surround.reshape(len(blocks), -1).std(axis=1, ddof=1)
        csd = np.nan_to_num(csd, nan=0.0)
        sigma = np.sqrt(var)
        beta = np.abs(sigma - csd) / np.maximum(sigma, csd)
    noise = sigma > 2 * beta

    dist = active * impaired * (1 - var) + active * noise * var
    score = float((dist.sum() + 1) / (active.sum() + 1) * 100)
    shape = (nh, nw)
    masks = {"activity": active.reshape(shape), "artifacts": (active & impaired).reshape(shape),
             "noise": (active & noise).reshape(shape)}  # fmt: skip
    return score, masks


def piqe(
    x: torch.Tensor,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = True,
    crop_border: int = 0,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """PIQE of each image (no reference, no model; ``[0, 100]``, lower is better).

    Args:
        x: ``(B, C, H, W)`` in ``[0, data_range]``, ``C`` = 1 or 3, at least 16x16 after cropping.
        y_channel: use the Y of MATLAB ``rgb2ycbcr`` instead of MATLAB's ``rgb2gray`` (the default, as ``piqe.m``).
        round_8bit: round the gray plane to integers first (MATLAB ``rgb2gray`` on ``uint8``).
        crop_border: pixels shaved off every side first.

    Returns:
        ``(B,)`` float64 (or its mean/sum).

    Example:
        >>> piqe(torch.full((1, 1, 64, 64), 0.5))  # flat: no active block -> tensor([100.])
    """
    check_reduction(reduction)
    planes = luma_planes(
        x, data_range=data_range, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border,
        min_side=BLOCK, metric="PIQE",
    )  # fmt: skip
    return reduce(torch.tensor([piqe_score(p)[0] for p in planes], dtype=torch.float64), reduction)


class PIQE(NoReferenceModule):
    """:func:`piqe` as a module. Options (keyword-only, defaults as in :func:`piqe` but
    ``reduction="mean"``): ``data_range``, ``y_channel``, ``round_8bit``, ``crop_border``, ``reduction``."""

    _metric = staticmethod(piqe)

    def __init__(self, **options: Unpack[MetricOptions]) -> None:
        super().__init__(**options)
