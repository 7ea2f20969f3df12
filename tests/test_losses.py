"""Losses: smoke, exception, cardinality, gradient and function == module tests for each one,
plus build_loss / CombinedLoss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _torchvision_fakes import fake_state
from torch.autograd import gradcheck

import sruscale.losses as L
from sruscale.errors import CheckpointError, ConfigError

# --------------------------------------------------------------------------- pixel losses

PIXEL = [
    # (function, module class, kwargs, independent reference)
    (L.l1_loss, L.L1Loss, {}, lambda p, t: (p - t).abs()),
    (L.mse_loss, L.MSELoss, {}, lambda p, t: (p - t) ** 2),
    (L.smooth_l1_loss, L.SmoothL1Loss, {"beta": 0.5},
     lambda p, t: torch.where((p - t).abs() < 0.5, 0.5 * (p - t) ** 2 / 0.5, (p - t).abs() - 0.25)),
    (L.huber_loss, L.HuberLoss, {"delta": 0.5},
     lambda p, t: torch.where((p - t).abs() <= 0.5, 0.5 * (p - t) ** 2, 0.5 * ((p - t).abs() - 0.25))),
    (L.charbonnier_loss, L.CharbonnierLoss, {"eps": 1e-2}, lambda p, t: torch.sqrt((p - t) ** 2 + 1e-4)),
]  # fmt: skip
PIXEL_IDS = ["l1", "mse", "smooth_l1", "huber", "charbonnier"]


@pytest.mark.parametrize(("fn", "cls", "kw", "ref"), PIXEL, ids=PIXEL_IDS)
def test_pixel_smoke_matches_reference(fn, cls, kw, ref) -> None:
    p, t = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(fn(p, t, **kw), ref(p, t).mean())
    assert float(fn(t, t, **kw)) == pytest.approx(float(ref(t, t).mean()))


def test_pixel_hand_computed() -> None:
    zero, half = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.3)
    assert float(L.charbonnier_loss(zero, half, eps=0.4)) == pytest.approx(0.5)  # sqrt(0.09 + 0.16)
    assert float(L.charbonnier_loss(zero, zero)) == pytest.approx(1e-3)
    assert float(L.l1_loss(zero, half, reduction="sum")) == pytest.approx(1.2)
    assert float(L.mse_loss(zero, half)) == pytest.approx(0.09)
    assert float(L.huber_loss(zero, torch.full((1, 1, 2, 2), 3.0), delta=1.0)) == pytest.approx(2.5)
    assert float(L.smooth_l1_loss(zero, half, beta=1.0)) == pytest.approx(0.045)


@pytest.mark.parametrize(("fn", "cls", "kw", "ref"), PIXEL, ids=PIXEL_IDS)
def test_pixel_exceptions(fn, cls, kw, ref) -> None:
    with pytest.raises(ValueError, match=r"target is \(1, 3, 8, 8\), pred is \(1, 3, 4, 4\)"):
        fn(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8), **kw)
    with pytest.raises(ValueError, match=r"expected 4 dims \(B, C, H, W\), got shape \(3, 4, 4\)"):
        fn(torch.rand(3, 4, 4), torch.rand(3, 4, 4), **kw)
    with pytest.raises(ValueError, match="floating-point"):
        fn(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.zeros(1, 1, 2, 2, dtype=torch.long), **kw)
    with pytest.raises(ValueError, match=r"reduction must be one of \['none', 'mean', 'sum'\], got 'avg'"):
        fn(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), reduction="avg", **kw)


@pytest.mark.parametrize(
    ("fn", "param"), [(L.smooth_l1_loss, "beta"), (L.huber_loss, "delta"), (L.charbonnier_loss, "eps")]
)
def test_pixel_bad_parameter(fn, param) -> None:
    with pytest.raises(ValueError, match=f"{param} must be > 0, got 0"):
        fn(torch.rand(1, 1, 2, 2), torch.rand(1, 1, 2, 2), **{param: 0})


@pytest.mark.parametrize(("fn", "cls", "kw", "ref"), PIXEL, ids=PIXEL_IDS)
def test_pixel_cardinality(fn, cls, kw, ref) -> None:
    p, t = torch.rand(2, 3, 5, 4), torch.rand(2, 3, 5, 4)
    none = fn(p, t, reduction="none", **kw)
    assert none.shape == (2, 3, 5, 4)
    assert fn(p, t, reduction="mean", **kw).shape == ()
    assert fn(p, t, reduction="sum", **kw).shape == ()
    torch.testing.assert_close(fn(p, t, reduction="sum", **kw), none.sum())
    torch.testing.assert_close(fn(p, t, reduction="mean", **kw), none.mean())


@pytest.mark.parametrize(("fn", "cls", "kw", "ref"), PIXEL, ids=PIXEL_IDS)
def test_pixel_gradcheck(fn, cls, kw, ref) -> None:
    p = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    assert gradcheck(lambda x: fn(x, t, **kw), (p,))


@pytest.mark.parametrize(("fn", "cls", "kw", "ref"), PIXEL, ids=PIXEL_IDS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_pixel_function_equals_module(fn, cls, kw, ref, reduction) -> None:
    p, t = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    torch.testing.assert_close(cls(reduction=reduction, **kw)(p, t), fn(p, t, reduction=reduction, **kw))


def test_charbonnier_half_precision_is_computed_in_float32() -> None:
    p = torch.zeros(1, 1, 2, 2, dtype=torch.bfloat16)
    assert L.charbonnier_loss(p, p, eps=1e-4).dtype == torch.float32
    assert float(L.charbonnier_loss(p, p, eps=1e-4)) == pytest.approx(1e-4)


@pytest.mark.parametrize("kind", ["l1", "l2", "charbonnier", "huber"])
def test_pixel_y_channel_scores_the_y_plane(kind: str) -> None:
    from sruscale.color import rgb_to_y

    torch.manual_seed(0)
    p, t = torch.rand(2, 3, 6, 6, requires_grad=True), torch.rand(2, 3, 6, 6)
    y_term = L.build_loss([{"type": kind, "y_channel": True}])
    rgb_term = L.build_loss([{"type": kind}])
    total, _ = y_term(p, t)
    torch.testing.assert_close(total, rgb_term(rgb_to_y(p), rgb_to_y(t))[0])
    total.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    # a chroma-only change (Y unchanged) costs nothing on Y, but does in RGB
    shift = torch.tensor([1.0, -65.481 / 128.553, 0.0]).view(1, 3, 1, 1) * 0.05
    q = t + shift
    assert float(y_term(q, t)[0]) == pytest.approx(float(y_term(t, t)[0]), abs=1e-6)
    assert float(rgb_term(q, t)[0]) > 1e-4
    # single-channel pairs pass through
    g = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(L.YChannelLoss(L.MSELoss())(g, g * 0.5), L.mse_loss(g, g * 0.5))


# --------------------------------------------------------------------------- total variation


def test_tv_hand_computed() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    assert float(L.tv_loss(x)) == pytest.approx(1.0)  # |dx| mean 1, |dy| mean 0
    y = torch.tensor([[[[0.0, 2.0, 2.0], [1.0, 2.0, 2.0]]]])
    # dx: [2, 0, 1, 0] -> mean 0.75 (abs) / 1.25 (sq); dy: [1, 0, 0] -> 1/3 (abs and sq)
    assert float(L.tv_loss(y)) == pytest.approx(0.75 + 1 / 3)
    assert float(L.tv_loss(y, squared=True)) == pytest.approx(1.25 + 1 / 3)
    assert float(L.tv_loss(torch.ones(2, 3, 4, 4))) == 0.0


def test_tv_exceptions_and_cardinality() -> None:
    with pytest.raises(ValueError, match=r"expected 4 dims \(B, C, H, W\), got shape \(4, 4\)"):
        L.tv_loss(torch.rand(4, 4))
    with pytest.raises(ValueError, match=r"expected H, W >= 2, got shape \(1, 1, 1, 5\)"):
        L.tv_loss(torch.rand(1, 1, 1, 5))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.tv_loss(torch.rand(1, 1, 4, 4), reduction="batchmean")
    x = torch.rand(3, 2, 5, 6)
    assert L.tv_loss(x, reduction="none").shape == (3,)
    torch.testing.assert_close(L.tv_loss(x, reduction="sum"), L.tv_loss(x, reduction="none").sum())
    assert L.tv_loss(x).shape == ()


@pytest.mark.parametrize("squared", [False, True])
def test_tv_gradcheck_and_module(squared: bool) -> None:
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda t: L.tv_loss(t, squared=squared), (x,))
    for reduction in ("none", "mean", "sum"):
        torch.testing.assert_close(
            L.TVLoss(squared=squared, reduction=reduction)(x), L.tv_loss(x, squared=squared, reduction=reduction)
        )


def test_frequency_hand_computed_and_phase_blind() -> None:
    hr = torch.ones(1, 1, 4, 4)  # orthonormal rfft2: DC = 4, the other 11 of 4x3 entries 0
    assert float(L.frequency_loss(torch.zeros(1, 1, 4, 4), hr)) == pytest.approx(4 / 12)
    x = torch.rand(2, 3, 16, 16)
    assert float(L.frequency_loss(x, torch.roll(x, (5, -3), dims=(-2, -1)))) == pytest.approx(0, abs=1e-6)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert float(L.frequency_loss(blurred, x)) > 0.01  # the missing high frequencies count
    assert L.frequency_loss(x, blurred, reduction="none").shape == (2,)
    with pytest.raises(ValueError):
        L.frequency_loss(x, x[..., :8])


def test_frequency_gradcheck_module_and_recipe_term() -> None:
    sr = torch.rand(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    hr = torch.rand(1, 2, 4, 6, dtype=torch.float64)
    assert gradcheck(lambda t: L.frequency_loss(t, hr), (sr,))
    torch.testing.assert_close(L.FrequencyLoss(reduction="sum")(sr, hr), L.frequency_loss(sr, hr, reduction="sum"))
    total, parts = L.build_loss([{"type": "l1"}, {"type": "fft", "weight": 0.5}])(sr, hr)
    torch.testing.assert_close(total, L.l1_loss(sr, hr) + 0.5 * L.frequency_loss(sr, hr))
    assert set(parts) == {"l1", "fft"}


def test_frequency_patch_is_the_mean_over_tiles_and_local() -> None:
    x, y = torch.rand(2, 3, 16, 20), torch.rand(2, 3, 16, 20)
    tiles = [
        L.frequency_loss(x[..., i : i + 8, j : j + 8], y[..., i : i + 8, j : j + 8], reduction="none")
        for i in (0, 8)
        for j in (0, 8)  # columns 16..19 make no whole tile and are left out
    ]
    torch.testing.assert_close(L.frequency_loss(x, y, patch=8, reduction="none"), torch.stack(tiles).mean(dim=0))
    torch.testing.assert_close(L.frequency_loss(x, y, patch=16), L.frequency_loss(x[..., :16], y[..., :16]))
    half = torch.zeros(1, 1, 16, 16)
    half[..., :8] = torch.rand(1, 1, 16, 8)  # texture on the left; moved to the right: same global amplitudes
    moved = torch.roll(half, 8, dims=-1)
    assert float(L.frequency_loss(half, moved)) == pytest.approx(0, abs=1e-6)
    assert float(L.frequency_loss(half, moved, patch=8)) > 0.05  # tiles ask for the texture where it lies
    for bad in (1, -2, 17):
        with pytest.raises(ValueError, match="patch"):
            L.frequency_loss(half, moved, patch=bad)
    with pytest.raises(ConfigError, match=r"loss\[0\]\.patch"):
        L.build_loss([{"type": "fft", "patch": 1}])
    total, _ = L.build_loss([{"type": "fft", "patch": 8}])(x, y)
    torch.testing.assert_close(total, L.frequency_loss(x, y, patch=8))


# --------------------------------------------------------------------------- perceptual and style


@pytest.fixture(scope="module")
def vgg() -> L.VGG19Features:
    torch.manual_seed(0)
    return L.VGG19Features(layers=["relu1_2", "relu2_1", "conv2_2"])


def test_gram_matrix_hand_computed() -> None:
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(L.gram_matrix(f), expected)
    assert L.gram_matrix(f.to(torch.float16)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"expected 4 dims \(B, C, H, W\), got shape \(2, 2\)"):
        L.gram_matrix(torch.rand(2, 2))


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_perceptual_matches_manual(vgg, distance: str) -> None:
    p, t = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    weights = {"relu1_2": 0.5, "conv2_2": 2.0}
    fp, ft = vgg(p), vgg(t)
    d = (lambda a, b: (a - b).abs().mean()) if distance == "l1" else (lambda a, b: F.mse_loss(a, b))
    expected = 0.5 * d(fp["relu1_2"], ft["relu1_2"]) + 2.0 * d(fp["conv2_2"], ft["conv2_2"])
    got = L.perceptual_loss(p, t, extractor=vgg, layer_weights=weights, distance=distance)
    torch.testing.assert_close(got, expected)
    assert float(L.perceptual_loss(t, t, extractor=vgg, layer_weights=weights)) == 0.0


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_style_matches_manual(vgg, distance: str) -> None:
    p, t = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)

    def gram(f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        return torch.einsum("bchw,bdhw->bcd", f, f) / (c * h * w)

    fp, ft = vgg(p), vgg(t)
    diff = gram(fp["relu2_1"]) - gram(ft["relu2_1"])
    expected = 3.0 * (diff.abs().mean() if distance == "l1" else diff.square().mean())
    got = L.style_loss(p, t, extractor=vgg, layer_weights={"relu2_1": 3.0}, distance=distance)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("fn", [L.perceptual_loss, L.style_loss])
def test_feature_loss_exceptions(vgg, fn) -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\['relu5_4'\] are not extracted; the extractor provides \['relu1_2'"):
        fn(x, x, extractor=vgg, layer_weights={"relu5_4": 1.0})
    with pytest.raises(ValueError, match="distance must be 'l1' or 'l2', got 'cos'"):
        fn(x, x, extractor=vgg, layer_weights={"relu1_2": 1.0}, distance="cos")
    with pytest.raises(ValueError, match="at least one layer"):
        fn(x, x, extractor=vgg, layer_weights={})
    with pytest.raises(ValueError, match=r"target is \(1, 3, 8, 8\), pred is \(1, 3, 8, 6\)"):
        fn(torch.rand(1, 3, 8, 6), x, extractor=vgg, layer_weights={"relu1_2": 1.0})
    with pytest.raises(ValueError, match="reduction must be one of"):
        fn(x, x, extractor=vgg, layer_weights={"relu1_2": 1.0}, reduction="all")


@pytest.mark.parametrize("fn", [L.perceptual_loss, L.style_loss])
def test_feature_loss_cardinality(vgg, fn) -> None:
    p, t = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    kw = {"extractor": vgg, "layer_weights": {"relu1_2": 1.0, "relu2_1": 0.5}}
    none = fn(p, t, reduction="none", **kw)
    assert none.shape == (3,)
    torch.testing.assert_close(fn(p, t, reduction="mean", **kw), none.mean())
    torch.testing.assert_close(fn(p, t, reduction="sum", **kw), none.sum())


@pytest.mark.parametrize("fn", [L.perceptual_loss, L.style_loss])
def test_feature_loss_gradcheck(fn) -> None:
    torch.manual_seed(0)
    net = L.VGG19Features(layers=["relu1_2"]).double()
    p = torch.rand(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 3, 3, 3, dtype=torch.float64)
    # l2: smooth everywhere (l1 has kinks where features coincide)
    assert gradcheck(
        lambda x: fn(x, t, extractor=net, layer_weights={"relu1_2": 1.0}, distance="l2"), (p,), fast_mode=True
    )
    assert all(q.grad is None for q in net.parameters())


@pytest.mark.parametrize(("fn", "cls"), [(L.perceptual_loss, L.PerceptualLoss), (L.style_loss, L.StyleLoss)])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_feature_loss_function_equals_module(vgg, fn, cls, reduction) -> None:
    p, t = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    kw = {"layer_weights": {"relu1_2": 1.0, "conv2_2": 0.1}, "distance": "l2", "reduction": reduction}
    torch.testing.assert_close(cls(vgg, **kw)(p, t), fn(p, t, extractor=vgg, **kw))


def test_perceptual_target_is_constant_and_gray_works(vgg) -> None:
    p = torch.rand(1, 1, 8, 8, requires_grad=True)
    t = torch.rand(1, 1, 8, 8, requires_grad=True)
    L.perceptual_loss(p, t, extractor=vgg, layer_weights={"relu1_2": 1.0}).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert t.grad is None


# --------------------------------------------------------------------------- SSIM losses


def test_ssim_loss_smoke_and_reference() -> None:
    from sruscale.metrics import ssim

    p, t = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    torch.testing.assert_close(L.ssim_loss(p, t), 1 - ssim(p, t))
    assert float(L.ssim_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert L.ssim_loss(p, t, reduction="none").shape == (2,)
    torch.testing.assert_close(L.ssim_loss(p, t, reduction="sum"), L.ssim_loss(p, t, reduction="none").sum())
    torch.testing.assert_close(L.ssim_loss(p, t, y_channel=True), 1 - ssim(p, t, y_channel=True))
    for reduction in ("none", "mean", "sum"):
        module = L.SSIMLoss(reduction=reduction, data_range=2.0)
        torch.testing.assert_close(module(p, t), L.ssim_loss(p, t, data_range=2.0, reduction=reduction))


def test_ssim_loss_exceptions_and_gradient() -> None:
    with pytest.raises(ValueError, match=r"target is \(1, 1, 24, 24\), pred is \(1, 1, 16, 24\)"):
        L.ssim_loss(torch.rand(1, 1, 16, 24), torch.rand(1, 1, 24, 24))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.ssim_loss(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), reduction="avg")
    p = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    L.ssim_loss(p, t).backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_ms_ssim_loss() -> None:
    from sruscale.metrics import ms_ssim

    t = torch.rand(1, 1, 168, 168)
    p = (t + 0.1 * torch.randn_like(t)).clamp(0, 1).requires_grad_(True)
    loss = L.ms_ssim_loss(p, t, reduction="none")
    assert loss.shape == (1,)
    torch.testing.assert_close(loss, 1 - ms_ssim(p, t, reduction="none"))
    torch.testing.assert_close(L.MSSSIMLoss()(p, t), L.ms_ssim_loss(p, t))
    loss.sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert float(L.ms_ssim_loss(t, t)) == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------- adversarial


def _bce(x: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(x, torch.full_like(x, target), reduction="none")


def test_gan_hand_computed() -> None:
    z = torch.zeros(4, 1)
    log2 = math.log(2)
    assert float(L.gan_generator_loss(z, kind="vanilla")) == pytest.approx(log2)
    assert float(L.gan_discriminator_loss(z, z, kind="vanilla")) == pytest.approx(2 * log2)
    one = torch.ones(4, 1)
    assert float(L.gan_discriminator_loss(one, z, kind="lsgan")) == 0.0
    assert float(L.gan_generator_loss(z, kind="lsgan")) == 1.0
    assert float(L.gan_discriminator_loss(2 * one, -2 * one, kind="hinge")) == 0.0
    assert float(L.gan_discriminator_loss(z, z, kind="hinge")) == 2.0
    r, f = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.5], [-0.5]])
    assert float(L.gan_discriminator_loss(r, f, kind="wgan-gp")) == pytest.approx(0.0 - 2.0)
    assert float(L.gan_generator_loss(f, kind="wgan-gp")) == pytest.approx(0.0)
    assert float(L.gan_generator_loss(f, kind="hinge")) == pytest.approx(0.0)
    # relativistic average, as in ESRGAN / BasicSR
    d_ref = 0.5 * (_bce(r - f.mean(), 1.0).mean() + _bce(f - r.mean(), 0.0).mean())
    g_ref = 0.5 * (_bce(r - f.mean(), 0.0).mean() + _bce(f - r.mean(), 1.0).mean())
    torch.testing.assert_close(L.gan_discriminator_loss(r, f, kind="ragan"), d_ref)
    torch.testing.assert_close(L.gan_generator_loss(f, r, kind="ragan"), g_ref)
    # vanilla equals BCE with logits
    torch.testing.assert_close(L.gan_generator_loss(f, kind="vanilla"), _bce(f, 1.0).mean())
    torch.testing.assert_close(
        L.gan_discriminator_loss(r, f, kind="vanilla"), _bce(r, 1.0).mean() + _bce(f, 0.0).mean()
    )


def test_gan_exceptions() -> None:
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"kind must be one of \['vanilla', 'lsgan', 'wgan-gp', 'hinge', 'ragan'\]"):
        L.gan_generator_loss(x, kind="wgan")
    with pytest.raises(ValueError, match="needs real_logits"):
        L.gan_generator_loss(x, kind="ragan")
    with pytest.raises(ValueError, match=r"real is \(2, 1\), fake is \(3, 1\)"):
        L.gan_discriminator_loss(x, torch.zeros(3, 1))
    with pytest.raises(ValueError, match="reduction must be one of"):
        L.gan_discriminator_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"real is \(1, 1, 8, 8\), fake is \(1, 1, 4, 4\)"):
        L.gradient_penalty(lambda t: t.sum((1, 2, 3)), torch.rand(1, 1, 8, 8), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="needs the real images"):
        L.generator_adversarial_loss(lambda t: t.mean((1, 2, 3)), torch.rand(1, 1, 4, 4), kind="ragan")


@pytest.mark.parametrize("kind", L.GAN_KINDS)
def test_gan_cardinality(kind: str) -> None:
    r, f = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    for fn, args in ((L.gan_discriminator_loss, (r, f)), (L.gan_generator_loss, (f, r))):
        none = fn(*args, kind=kind, reduction="none")
        assert none.shape == (2, 1, 4, 4)
        torch.testing.assert_close(fn(*args, kind=kind), none.mean())
        torch.testing.assert_close(fn(*args, kind=kind, reduction="sum"), none.sum())


@pytest.mark.parametrize("kind", L.GAN_KINDS)
def test_gan_gradcheck(kind: str) -> None:
    r = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
    f = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
    if kind == "hinge":  # keep away from the kinks at +-1
        r, f = (r.detach() * 0.1 + 3).requires_grad_(), (f.detach() * 0.1).requires_grad_()
    assert gradcheck(lambda a, b: L.gan_discriminator_loss(a, b, kind=kind), (r, f))
    assert gradcheck(lambda b: L.gan_generator_loss(b, r.detach(), kind=kind), (f,))


class _Linear(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so the penalty is (||w|| - 1)^2 exactly."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def test_gradient_penalty_exact() -> None:
    disc = _Linear((1, 2, 4, 4))
    real, fake = torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4)
    expected = (disc.w.detach().norm() - 1) ** 2
    gp = L.gradient_penalty(disc, real, fake, reduction="none")
    assert gp.shape == (3,)
    torch.testing.assert_close(gp, expected.expand(3))
    L.gradient_penalty(disc, real, fake).backward()  # create_graph: the penalty trains D
    torch.testing.assert_close(disc.w.grad, 2 * (disc.w.norm() - 1) * disc.w / disc.w.norm() * 1.0)


def test_discriminator_objective_wgan_gp_and_detach() -> None:
    disc = _Linear((1, 1, 4, 4))
    real = torch.rand(2, 1, 4, 4)
    fake = torch.rand(2, 1, 4, 4, requires_grad=True)
    loss = L.discriminator_adversarial_loss(disc, real, fake, kind="wgan-gp", gp_weight=10.0)
    expected = disc(fake).mean() - disc(real).mean() + 10 * (disc.w.norm() - 1) ** 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert fake.grad is None  # fake is detached for the discriminator step
    no_gp = L.discriminator_adversarial_loss(disc, real, fake, kind="wgan-gp", gp_weight=0.0)
    torch.testing.assert_close(no_gp, disc(fake).mean() - disc(real).mean())


@pytest.mark.parametrize("kind", L.GAN_KINDS)
def test_adversarial_function_equals_module(kind: str) -> None:
    disc = _Linear((1, 1, 4, 4))
    real, fake = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4, requires_grad=True)
    g = L.generator_adversarial_loss(disc, fake, real, kind=kind)
    torch.testing.assert_close(L.AdversarialLoss(kind=kind)(disc, fake, real), g)
    torch.manual_seed(3)
    d_fn = L.discriminator_adversarial_loss(disc, real, fake, kind=kind, gp_weight=5.0)
    torch.manual_seed(3)
    torch.testing.assert_close(L.DiscriminatorLoss(kind=kind, gp_weight=5.0)(disc, real, fake), d_fn)
    g.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="GAN kind must be one of"):
        L.AdversarialLoss(kind="bce")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- build_loss / CombinedLoss


def test_combined_total_and_parts() -> None:
    spec = [
        {"type": "l1"},
        {"type": "charbonnier", "weight": 0.5, "eps": 1e-3},
        {"type": "mse", "weight": 2.0, "name": "l2_term"},
        {"type": "tv", "weight": 0.1, "squared": True},
        {"type": "ssim", "weight": 0.2},
        {"type": "huber", "weight": 0.0},  # weight 0 disables a term
    ]
    loss = L.build_loss(spec)
    assert loss.names == ("l1", "charbonnier", "l2_term", "tv", "ssim")
    assert not loss.has_adversarial
    sr = torch.rand(2, 3, 16, 16, requires_grad=True)
    hr = torch.rand(2, 3, 16, 16)
    total, parts = loss(sr, hr)
    assert list(parts) == list(loss.names)
    expected = (
        L.l1_loss(sr, hr)
        + 0.5 * L.charbonnier_loss(sr, hr)
        + 2.0 * L.mse_loss(sr, hr)
        + 0.1 * L.tv_loss(sr, squared=True)
        + 0.2 * L.ssim_loss(sr, hr)
    )
    torch.testing.assert_close(total, expected)
    torch.testing.assert_close(sum(parts.values()), total.detach())
    torch.testing.assert_close(parts["l2_term"], 2.0 * L.mse_loss(sr, hr).detach())
    assert all(not v.requires_grad for v in parts.values())
    total.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all()
    with pytest.raises(ValueError, match=r"target is \(2, 3, 16, 16\), pred is \(2, 3, 8, 8\)"):
        loss(torch.rand(2, 3, 8, 8), hr)


def test_combined_adversarial() -> None:
    loss = L.build_loss([{"type": "l1"}, {"type": "adversarial", "kind": "wgan-gp", "weight": 0.01, "gp_weight": 5.0}])
    assert loss.has_adversarial
    disc = _Linear((1, 3, 8, 8))
    sr, hr = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    total, parts = loss(sr, hr, disc=disc)
    torch.testing.assert_close(parts["adversarial"], 0.01 * -disc(sr).mean().detach())
    torch.testing.assert_close(total, L.l1_loss(sr, hr) + 0.01 * -disc(sr).mean())
    torch.manual_seed(5)
    d = loss.discriminator_loss(disc, hr, sr)
    torch.manual_seed(5)
    torch.testing.assert_close(d, L.discriminator_adversarial_loss(disc, hr, sr, kind="wgan-gp", gp_weight=5.0))
    with pytest.raises(ValueError, match="pass the discriminator"):
        loss(sr, hr)
    with pytest.raises(ValueError, match="no adversarial term"):
        L.build_loss([{"type": "l1"}]).discriminator_loss(disc, hr, sr)


def test_combined_from_modules() -> None:
    loss = L.CombinedLoss([("pix", 1.0, L.L1Loss()), ("g", 0.1, L.AdversarialLoss(kind="hinge"))])
    assert isinstance(loss.discriminator_objective, L.DiscriminatorLoss)
    with pytest.raises(ValueError, match=r"duplicates \['a'\]"):
        L.CombinedLoss([("a", 1.0, L.L1Loss()), ("a", 1.0, L.MSELoss())])
    with pytest.raises(ValueError, match="finite and >= 0"):
        L.CombinedLoss([("a", -1.0, L.L1Loss())])
    with pytest.raises(ValueError, match="at least one term"):
        L.CombinedLoss([])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "l1"}, r"^loss: expected a list of loss tables, got dict"),
        ([], r"^loss: expected at least one loss"),
        ([{"weight": 1.0}], r"^loss\[0\]\.type: missing"),
        ([{"type": "l1"}, {"type": "percepual"}],
         r"^loss\[1\]\.type: unknown loss type 'percepual' \(did you mean 'perceptual'\?\)"),
        ([{"type": "l1", "wieght": 1.0}],
         r"^loss\[0\]\.wieght: unknown key for loss type 'l1' \(did you mean 'weight'\?\)"),
        ([{"type": "l1", "weight": "1"}], r"^loss\[0\]\.weight: expected a finite number >= 0, got '1'$"),
        ([{"type": "l1", "weight": True}], r"^loss\[0\]\.weight: expected a finite number >= 0, got True$"),
        ([{"type": "l1", "weight": -1}], r"^loss\[0\]\.weight: expected a finite number >= 0, got -1$"),
        ([{"type": "l1", "weight": float("nan")}], r"^loss\[0\]\.weight: expected a finite number >= 0, got nan"),
        ([{"type": "charbonnier", "eps": 0}], r"^loss\[0\]\.eps: expected a positive number, got 0$"),
        ([{"type": "tv"}, {"type": "charbonnier", "eps": ""}], r"^loss\[1\]\.eps: expected a positive number, got ''"),
        ([{"type": "smooth_l1", "beta": -1.0}], r"^loss\[0\]\.beta: expected a positive number, got -1.0$"),
        ([{"type": "huber", "delta": 0.0}], r"^loss\[0\]\.delta: expected a positive number, got 0.0$"),
        ([{"type": "ssim", "data_range": 0}], r"^loss\[0\]\.data_range: expected a positive number, got 0$"),
        ([{"type": "adversarial", "gp_weight": 0}], r"^loss\[0\]\.gp_weight: expected a positive number, got 0$"),
        ([{"type": ["l1"]}], r"^loss\[0\]\.type: unknown loss type \['l1'\]"),
        ([{"type": "tv", "squared": 1}], r"^loss\[0\]\.squared: expected bool, got int"),
        ([{"type": "tv", "y_channel": True}], r"^loss\[0\]\.y_channel: unknown key for loss type 'tv'"),
        ([{"type": "l2", "y_channel": 1}], r"^loss\[0\]\.y_channel: expected bool, got int"),
        ([{"type": "l1"}, {"type": "l1"}], r"^loss\[1\]\.name: 'l1' is already used by loss\[0\]"),
        ([{"type": "l1", "name": "a.b"}], r"^loss\[0\]\.name: expected a name without '\.', got 'a\.b'$"),
        ([{"type": "perceptual", "layers": ["relu5_5"]}], r"^loss\[0\]\.layers: unknown vgg19 layer 'relu5_5'"),
        ([{"type": "perceptual", "layers": {"relu5_4": "x"}}],
         r"^loss\[0\]\.layers\.relu5_4: expected a finite number >= 0, got 'x'$"),
        ([{"type": "perceptual", "layers": {"relu5_4": -1}}], r"^loss\[0\]\.layers\.relu5_4: expected a finite number"),
        ([{"type": "perceptual", "layers": "relu5_4"}],
         r"^loss\[0\]\.layers: expected a table \{layer = weight\} or a list of layer names, got 'relu5_4'$"),
        ([{"type": "perceptual", "layers": []}], r"^loss\[0\]\.layers: name at least one layer$"),
        ([{"type": "perceptual", "backbone": "vgg16"}], r"^loss\[0\]\.backbone: unknown backbone 'vgg16'"),
        ([{"type": "perceptual", "distance": "cos"}], r"^loss\[0\]\.distance: expected one of 'l1', 'l2', got 'cos'$"),
        ([{"type": "style", "backbone": "resnet50"}], r"^loss\[0\]\.layers: required for backbone 'resnet50'"),
        ([{"type": "adversarial", "kind": "wgan"}], r"^loss\[0\]\.kind: expected one of 'vanilla', .*, got 'wgan'$"),
        ([{"type": "adversarial"}, {"type": "adversarial", "name": "b"}], r"^loss\[1\]\.type: only one adversarial"),
        ([{"type": "l1", "weight": 0}], r"^loss: every loss has weight 0"),
        (["l1"], r"^loss\[0\]: expected a table"),
    ],
)  # fmt: skip
def test_build_loss_config_errors(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        L.build_loss(spec)


def test_loss_terms_take_their_defaults_from_the_loss_classes() -> None:
    """A typed term's option defaults are the loss class's own (one place); tables and terms build the same loss."""
    import inspect

    def default(cls: type, key: str) -> object:
        return inspect.signature(cls).parameters[key].default

    terms = L.parse_losses([{"type": "charbonnier"}, {"type": "huber", "name": "h"}, {"type": "adversarial"},
                            {"type": "ssim"}, {"type": "tv"}])  # fmt: skip
    c, h, a, s, tv = terms
    assert isinstance(c, L.CharbonnierTerm) and c.eps == default(L.CharbonnierLoss, "eps") and c.name == "charbonnier"
    assert isinstance(h, L.HuberTerm) and h.delta == default(L.HuberLoss, "delta") and h.name == "h"
    assert isinstance(a, L.AdversarialTerm) and (a.kind, a.gp_weight) == (
        default(L.AdversarialLoss, "kind"), default(L.DiscriminatorLoss, "gp_weight"))
    assert isinstance(s, L.SSIMTerm) and (s.data_range, s.y_channel) == (default(L.SSIMLoss, "data_range"), False)
    assert isinstance(tv, L.TVTerm) and tv.squared == default(L.TVLoss, "squared")
    # terms built in code: the same checks as tables, the same loss
    sr, hr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    typed = L.build_loss([L.CharbonnierTerm(type="charbonnier", eps=0.1), L.PixelTerm(type="l2", y_channel=True)])
    table = L.build_loss([{"type": "charbonnier", "eps": 0.1}, {"type": "l2", "y_channel": True}])
    assert typed.names == table.names == ("charbonnier", "l2")
    torch.testing.assert_close(typed(sr, hr)[0], table(sr, hr)[0])
    with pytest.raises(ConfigError, match=r"^loss\[0\]\.eps: expected a positive number, got -1\.0$"):
        L.build_loss([L.CharbonnierTerm(type="charbonnier", eps=-1.0)])
    (style,) = L.parse_losses([L.FeatureTerm(type="texture")])  # no layers: the type's default ones
    assert isinstance(style, L.FeatureTerm) and list(style.layers) == [f"relu{i}_1" for i in range(1, 6)]


def test_without_adversarial_shares_the_modules() -> None:
    full = L.build_loss([{"type": "l1"}, {"type": "tv", "weight": 0.1}, {"type": "adversarial", "kind": "hinge"}])
    plain = full.without_adversarial()
    assert plain is not None and plain.names == ("l1", "tv") and not plain.has_adversarial
    assert plain.terms[0] is full.terms[0] and plain.terms[1] is full.terms[1]
    assert plain.weights == {"l1": 1.0, "tv": 0.1}
    assert plain.without_adversarial() is plain
    assert L.build_loss([{"type": "adversarial"}]).without_adversarial() is None


def test_build_loss_perceptual_and_style_share_one_extractor(tmp_path: Path) -> None:
    real = [f"features.{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias")]
    torch.save(fake_state("vgg19", real=real), tmp_path / "vgg.pth")
    spec = [
        {"type": "perceptual", "weight": 0.1, "layers": {"relu2_2": 1.0}, "distance": "l2"},
        {"type": "texture", "weight": 10.0, "layers": ["relu1_1", "relu2_1"]},
    ]
    loss = L.build_loss(spec, backbone_weights=tmp_path / "vgg.pth")
    perceptual, style = loss.terms
    assert perceptual.extractor is style.extractor
    assert perceptual.extractor.layers == ("relu2_2", "relu1_1", "relu2_1")
    sr, hr = torch.rand(1, 3, 16, 16, requires_grad=True), torch.rand(1, 3, 16, 16)
    total, parts = loss(sr, hr)
    ext = perceptual.extractor
    expected_p = 0.1 * L.perceptual_loss(sr, hr, extractor=ext, layer_weights={"relu2_2": 1.0}, distance="l2")
    expected_s = 10.0 * L.style_loss(sr, hr, extractor=ext, layer_weights={"relu1_1": 1.0, "relu2_1": 1.0})
    torch.testing.assert_close(parts["perceptual"], expected_p.detach())
    torch.testing.assert_close(parts["texture"], expected_s.detach())
    total.backward()
    assert sr.grad.abs().sum() > 0
    # the extractor is frozen: the trainer's optimizer never sees trainable loss parameters
    assert not any(p.requires_grad for p in loss.parameters())
    # an explicit weights_path in the table wins over backbone_weights
    with pytest.raises(CheckpointError, match="elsewhere.pth: backbone weights file not found"):
        L.build_loss([{"type": "perceptual", "weights_path": str(tmp_path / "elsewhere.pth")}],
                     backbone_weights=tmp_path / "vgg.pth")  # fmt: skip


def test_build_loss_without_backbone_weights_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(CheckpointError, match=r"vgg19-dcbb9e9d\.pth.*--backbone-weights FILE"):
        L.build_loss([{"type": "l1"}, {"type": "perceptual", "weight": 0.01}])
    # a disabled perceptual term needs no weights
    assert L.build_loss([{"type": "l1"}, {"type": "perceptual", "weight": 0}]).names == ("l1",)


def test_half_precision_losses_are_scored_in_float32(vgg) -> None:
    logits = torch.zeros(2, 1, dtype=torch.bfloat16)
    for kind in L.GAN_KINDS:
        assert L.gan_generator_loss(logits, logits, kind=kind).dtype == torch.float32
        assert L.gan_discriminator_loss(logits, logits, kind=kind).dtype == torch.float32
    p, t = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = L.perceptual_loss(p, t, extractor=vgg, layer_weights={"relu1_2": 1.0})
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, L.perceptual_loss(p, t, extractor=vgg, layer_weights={"relu1_2": 1.0}),
                               rtol=0.05, atol=1e-3)  # fmt: skip
