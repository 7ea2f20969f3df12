"""Each building block: shapes, the property it exists for, and its failure modes."""

from __future__ import annotations

import pytest
import torch

from sruscale.models.blocks import (
    BicubicUpsampler,
    ChannelAttention,
    DenseBlock,
    DenseResidualBlock,
    MeanShift,
    NearestConvUpsampler,
    PixelShuffleUpsampler,
    ResBlock,
    SpatialPyramidPooling,
    bicubic_upsample,
    conv,
    transposed_conv_upsampler,
)
from sruscale.resize import imresize


def _impulse_radius(module: torch.nn.Module, size: int = 21) -> int:
    """Radius of the output footprint of a centred impulse (the receptive-field radius)."""
    x = torch.zeros(1, module.in_channels, size, size)
    x[..., size // 2, size // 2] = 1.0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.ones_like(p) if p.ndim > 1 else torch.zeros_like(p))
        hit = module(x).abs().sum(dim=(0, 1)) > 0
    rows = hit.any(dim=1).nonzero()
    return int(rows.max() - size // 2)


@pytest.mark.parametrize(("kernel", "dilation", "radius"), [(3, 1, 1), (5, 1, 2), (3, 2, 2), (3, 4, 4)])
def test_conv_keeps_size_and_dilation_widens_receptive_field(kernel: int, dilation: int, radius: int) -> None:
    layer = conv(2, 3, kernel, dilation=dilation)
    assert layer(torch.rand(1, 2, 9, 11)).shape == (1, 3, 9, 11)
    assert _impulse_radius(layer) == radius


def test_conv_rejects_even_kernel_and_bad_dilation() -> None:
    with pytest.raises(ValueError, match="odd"):
        conv(1, 1, 4)
    with pytest.raises(ValueError, match="dilation"):
        conv(1, 1, 3, dilation=0)


def test_resblock_scales_the_residual() -> None:
    block = ResBlock(4, res_scale=0.1)
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        residual = block.conv2(torch.relu(block.conv1(x)))
        assert torch.allclose(block(x), x + 0.1 * residual, atol=1e-6)
        torch.nn.init.zeros_(block.conv2.weight)
        torch.nn.init.zeros_(block.conv2.bias)
        assert torch.equal(block(x), x)  # identity when the branch is off


def test_channel_attention_rescales_channels_by_global_gates() -> None:
    ca = ChannelAttention(8, reduction=4)
    x = torch.rand(2, 8, 5, 7)
    y = ca(x)
    gate = y / x
    assert y.shape == x.shape
    assert torch.allclose(gate, gate[..., :1, :1].expand_as(gate), atol=1e-5)  # one gate per (B, C)
    assert ((gate > 0) & (gate < 1)).all()
    with pytest.raises(ValueError, match="reduction"):
        ChannelAttention(4, reduction=8)


def test_dense_block_concatenates_growth() -> None:
    block = DenseBlock(6, growth=4, layers=3, bottleneck=2)
    x = torch.rand(1, 6, 5, 5)
    y = block(x)
    assert y.shape == (1, 6 + 3 * 4, 5, 5) and block.out_features == 18
    assert torch.equal(y[:, :6], x)  # the input is passed through unchanged


def test_dense_residual_block_keeps_channels_and_scales_residual() -> None:
    block = DenseResidualBlock(6, growth=4, layers=2, res_scale=0.2)
    x = torch.rand(1, 6, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), x + 0.2 * block.compress(block.dense(x)), atol=1e-6)
    assert block.compress.bias is None


def test_spatial_pyramid_pooling_shape_and_global_context() -> None:
    spp = SpatialPyramidPooling(8, bins=(1, 2))
    x = torch.rand(1, 8, 9, 10)
    y = spp(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[..., 0, 0] += 1.0  # a change in one corner reaches the opposite corner
    assert not torch.equal(spp(x2)[..., -1, -1], y[..., -1, -1])
    with pytest.raises(ValueError, match="bins"):
        SpatialPyramidPooling(8, bins=())


def test_mean_shift_round_trip_and_buffer_not_in_state_dict() -> None:
    mean = (0.4, 0.5, 0.6)
    sub, add = MeanShift(mean, sign=-1, rgb_range=255), MeanShift(mean, sign=1, rgb_range=255)
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(sub(x)[:, 1], (x[:, 1] - 0.5) * 255)
    assert torch.allclose(add(sub(x)), x, atol=1e-6)
    assert sub.state_dict() == {} and "mean" in dict(sub.named_buffers())
    assert sub.to(torch.float64)(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="sign"):
        MeanShift(mean, sign=0)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_pixel_shuffle_upsampler(scale: int) -> None:
    up = PixelShuffleUpsampler(4, scale)
    assert up(torch.rand(1, 4, 3, 5)).shape == (1, 4, 3 * scale, 5 * scale)
    convs = [m for m in up if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == (1 if scale in (2, 3) else int(scale).bit_length() - 1)


def test_pixel_shuffle_upsampler_rejects_other_scales() -> None:
    with pytest.raises(ValueError, match="scales"):
        PixelShuffleUpsampler(4, 5)
    with pytest.raises(ValueError, match="scales"):
        NearestConvUpsampler(4, 6)


@pytest.mark.parametrize(("scale", "kernel"), [(2, 4), (2, 9), (3, 9), (4, 8), (4, 9), (8, 9), (8, 12)])
def test_transposed_conv_upsampler_exact_size(scale: int, kernel: int) -> None:
    up = transposed_conv_upsampler(3, 2, scale, kernel)
    assert up(torch.rand(1, 3, 5, 7)).shape == (1, 2, 5 * scale, 7 * scale)


def test_transposed_conv_upsampler_rejects_small_kernel() -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        transposed_conv_upsampler(1, 1, 4, 3)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_nearest_conv_upsampler(scale: int) -> None:
    assert NearestConvUpsampler(4, scale)(torch.rand(1, 4, 3, 5)).shape == (1, 4, 3 * scale, 5 * scale)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("size", [(1, 1), (1, 4), (2, 2), (3, 5), (17, 12)])
def test_bicubic_upsample_equals_matlab_imresize(scale: int, size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    assert torch.allclose(bicubic_upsample(x, scale), imresize(x, scale), atol=1e-12)
    x32 = x.float()
    assert torch.allclose(BicubicUpsampler(scale)(x32), imresize(x32, scale), atol=1e-5)


def test_bicubic_upsampler_rejects_fractional_scale() -> None:
    with pytest.raises(ValueError, match="integer"):
        BicubicUpsampler(1.5)  # type: ignore[arg-type]
    assert torch.equal(bicubic_upsample(torch.ones(1, 1, 2, 2), 1), torch.ones(1, 1, 2, 2))
