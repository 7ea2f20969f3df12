"""MATLAB rgb2ycbcr / ycbcr2rgb conventions, and the plane-wise inverse the Y networks use."""

from __future__ import annotations

import pytest
import torch

from sruscale.color import planes_to_rgb, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from sruscale.errors import ImageError


def test_matlab_values() -> None:
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=torch.float64).T.reshape(1, 3, 1, 3)
    ycc = rgb_to_ycbcr(rgb) * 255
    want = torch.tensor([[235, 128, 128], [16, 128, 128], [81.481, 90.203, 240]], dtype=torch.float64)
    torch.testing.assert_close(ycc.reshape(3, 3).T, want, atol=1e-9, rtol=0)
    torch.testing.assert_close(rgb_to_y(rgb), ycc[:, :1] / 255)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inverse(dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 9, 11, dtype=dtype, generator=torch.Generator().manual_seed(0))
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=tol, rtol=0)


def test_planes_equal_the_joined_inverse_in_any_layout() -> None:
    ycc = torch.rand(1, 3, 16, 12, generator=torch.Generator().manual_seed(1))
    want = ycbcr_to_rgb(ycc)
    y, cbcr = ycc[:, :1].contiguous(memory_format=torch.channels_last), ycc[:, 1:].contiguous()
    torch.testing.assert_close(planes_to_rgb(y, cbcr), want, atol=1e-6, rtol=0)
    with torch.inference_mode():
        torch.testing.assert_close(planes_to_rgb(y, cbcr), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("y", "cbcr"), [((1, 2, 4, 4), (1, 2, 4, 4)), ((1, 1, 4, 4), (1, 2, 4, 5)), ((1, 1, 4, 4), (1, 3, 4, 4))]
)
def test_planes_shape_errors(y: tuple[int, ...], cbcr: tuple[int, ...]) -> None:
    with pytest.raises(ImageError, match=r"expected Y \(B, 1, H, W\) and CbCr \(B, 2, H, W\)"):
        planes_to_rgb(torch.zeros(y), torch.zeros(cbcr))
