"""PIQE: cross-check with pypiqe (a port tested against MATLAB), hand-checked cases, properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sruscale.errors import ImageError
from sruscale.image import read_image
from sruscale.metrics._nr import luma_planes
from sruscale.metrics.piqe import PIQE, piqe, piqe_score


def _plane(x: torch.Tensor) -> np.ndarray:
    return luma_planes(x, data_range=1.0, y_channel=False, round_8bit=True, crop_border=0, min_side=16, metric="")[0]


@pytest.mark.parametrize("shape", [(64, 64), (50, 37), (33, 100), (16, 16)])
def test_matches_pypiqe_random(shape: tuple[int, int]) -> None:
    ref = pytest.importorskip("pypiqe", reason="pypiqe not installed (.ci/run installs it with --no-deps)")
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape).astype(np.float64)
    img[: shape[0] // 2] = np.round(img[: shape[0] // 2] / 8) * 8  # a smoother half: mixed block types
    assert piqe_score(img)[0] == pytest.approx(ref.piqe(img)[0], abs=1e-9)


@pytest.mark.data
@pytest.mark.parametrize("name", ["Set14/baboon.png", "Set14/lenna.png", "Set5/butterfly.png"])
def test_matches_pypiqe_images(shared_data: Path, name: str) -> None:
    ref = pytest.importorskip("pypiqe", reason="pypiqe not installed (.ci/run installs it with --no-deps)")
    plane = _plane(read_image(shared_data / name).pixels)
    assert piqe_score(plane)[0] == pytest.approx(ref.piqe(plane)[0], abs=1e-9)


def test_flat_image_is_100() -> None:
    # no block has variance > 0.1: score = (0 + 1) / (0 + 1) * 100
    assert float(piqe(torch.full((1, 1, 48, 48), 0.5))[0]) == 100.0


def test_hand_checked_noise_block() -> None:
    # one active 16x16 block with white noise: its edges are never flat, so no artifact term;
    # the noise criterion fires (sigma ~ 1 > 2 * |sigma - csd| / max ~ 0), so the score is
    # 100 * (var + 1) / (1 + 1) with var the block variance of the MSCN coefficients
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (16, 16)).astype(np.float64)
    score, masks = piqe_score(img)
    assert masks["activity"].all() and masks["noise"].all() and not masks["artifacts"].any()
    from sruscale.metrics._nss import fspecial_gaussian, mscn

    norm, _ = mscn(np.round(255 * img / img.max()), fspecial_gaussian(7, 7 / 6))
    assert score == pytest.approx(100 * (norm.var(ddof=1) + 1) / 2)


def test_blocky_scores_worse_than_detail() -> None:
    g = torch.Generator().manual_seed(0)
    detail = torch.rand(1, 1, 128, 128, generator=g, dtype=torch.float64) * 0.2 + 0.4
    detail = torch.nn.functional.avg_pool2d(detail, 3, 1, 1)  # mild texture everywhere
    blocky = torch.nn.functional.interpolate(torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64), scale_factor=8)
    assert float(piqe(blocky)[0]) > float(piqe(detail)[0])


def test_rgb_is_rgb2gray_and_module() -> None:
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64)
    gray = (x * torch.tensor([0.298936021293775, 0.587043074451121, 0.114020904255103]).view(1, 3, 1, 1)).sum(1, True)
    torch.testing.assert_close(piqe(x), piqe(gray.round_(decimals=10)), atol=1e-9, rtol=0)
    assert torch.equal(PIQE(reduction="none")(x), piqe(x))
    with pytest.raises(ImageError, match="at least 16x16"):
        piqe(torch.rand(1, 1, 15, 40))
