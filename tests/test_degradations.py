"""Degradation operations, kernels, pipelines and presets (tiny synthetic images only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from sruscale.degradations import (
    BLUR_KERNELS,
    PRESETS,
    RESIZE_MODES,
    BlurOp,
    Pipeline,
    ResizeOp,
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    decimate,
    gaussian_kernel,
    generalized_gaussian_kernel,
    image_seed,
    jpeg,
    motion_kernel,
    plateau_kernel,
    quantize,
    resize,
    sinc_kernel,
)
from sruscale.errors import ConfigError, ImageError

REPO = Path(__file__).resolve().parents[1]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _img(b: int = 2, c: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- resize / decimate


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", sorted(RESIZE_MODES))
@pytest.mark.parametrize(("scale", "expected"), [(0.5, (12, 10)), (1 / 3, (8, 7)), (0.7, (17, 14)), (2, (48, 40))])
def test_resize_shape_constant_and_determinism(device: str, mode: str, scale: float, expected: tuple[int, int]) -> None:
    x = _img().to(device)
    out = resize(x, scale=scale, mode=mode)
    assert out.shape == (2, 3, *expected) and out.device == x.device
    assert torch.equal(out, resize(x, scale=scale, mode=mode))
    flat = torch.full((1, 3, 24, 20), 0.3, device=device)
    torch.testing.assert_close(resize(flat, scale=scale, mode=mode), torch.full((1, 3, *expected), 0.3, device=device))


def test_resize_area_is_block_mean_and_size_option() -> None:
    x = _img(h=8, w=8)
    torch.testing.assert_close(resize(x, scale=0.5, mode="area"), torch.nn.functional.avg_pool2d(x, 2))
    assert resize(x, size=(5, 3), mode="bicubic").shape == (2, 3, 5, 3)
    with pytest.raises(ConfigError, match="unknown resize mode"):
        resize(x, scale=0.5, mode="cubic")  # type: ignore[arg-type]
    with pytest.raises(ImageError, match=r"\(B, C, H, W\)"):
        resize(x[0], scale=0.5)


def test_decimate_offset_convention() -> None:
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert decimate(x, 3).flatten().tolist() == [7.0, 10.0, 25.0, 28.0]  # centre of each 3x3 block: (1, 1)
    assert decimate(x, 2).flatten().tolist() == x[..., ::2, ::2].flatten().tolist()  # s/2 - 1 = 0
    assert decimate(x, 2, offset=1).shape == (1, 1, 3, 3)
    with pytest.raises(ConfigError, match="offset"):
        decimate(x, 2, offset=2)
    with pytest.raises(ImageError, match="smaller than the scale"):
        decimate(x, 7)


# ----------------------------------------------------------------------------- kernels


def _all_kernels() -> list[tuple[str, torch.Tensor]]:
    return [
        ("iso", gaussian_kernel(9, sigma_x=1.5)),
        ("aniso", gaussian_kernel(11, sigma_x=2.5, sigma_y=0.7, angle=30)),
        ("generalized", generalized_gaussian_kernel(11, sigma_x=2.0, sigma_y=1.0, angle=-40, beta=0.6)),
        ("plateau", plateau_kernel(13, sigma_x=1.5, sigma_y=2.5, angle=70, beta=1.5)),
        ("sinc", sinc_kernel(13, cutoff=math.pi / 4)),
        ("motion", motion_kernel(15, length=9, angle=25)),
        ("even", gaussian_kernel(12, sigma_x=1.6)),
    ]


@pytest.mark.parametrize(("name", "k"), _all_kernels())
def test_kernel_sums_to_one_and_is_point_symmetric(name: str, k: torch.Tensor) -> None:
    assert k.dtype == torch.float64 and k.ndim == 2 and k.shape[0] == k.shape[1]
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(k, k.flip(0, 1), atol=1e-12, rtol=0)


def test_kernel_shapes_match_their_definitions() -> None:
    # isotropic Gaussian == MATLAB fspecial('gaussian', 7, 1.6): separable outer product
    ax = torch.arange(7, dtype=torch.float64) - 3
    g = torch.exp(-(ax**2) / (2 * 1.6**2))
    torch.testing.assert_close(gaussian_kernel(7, sigma_x=1.6), torch.outer(g, g) / torch.outer(g, g).sum())
    # rotating by 90 degrees swaps the axes
    a0 = gaussian_kernel(9, sigma_x=3.0, sigma_y=1.0, angle=0)
    torch.testing.assert_close(gaussian_kernel(9, sigma_x=3.0, sigma_y=1.0, angle=90), a0.T)
    assert a0[4].sum() > a0[:, 4].sum()  # angle 0: elongated along x (rows)
    # beta = 1 generalized Gaussian is the Gaussian; plateau is flatter at the top
    torch.testing.assert_close(generalized_gaussian_kernel(9, sigma_x=1.2, beta=1.0), gaussian_kernel(9, sigma_x=1.2))
    p = plateau_kernel(9, sigma_x=2.0, beta=2.0)
    assert p[4, 5] / p[4, 4] > gaussian_kernel(9, sigma_x=2.0)[4, 5] / gaussian_kernel(9, sigma_x=2.0)[4, 4]
    # sinc rings (negative lobes); motion at angle 0 is a horizontal segment
    assert sinc_kernel(15, cutoff=math.pi / 4).min() < 0
    m = motion_kernel(9, length=6, angle=0)
    assert m[4].sum().item() == pytest.approx(1.0) and (m[4] > 0).sum() == 7
    assert motion_kernel(9, length=0, angle=10)[4, 4] == 1.0
    with pytest.raises(ConfigError, match="sigma_x"):
        gaussian_kernel(5, sigma_x=0)
    with pytest.raises(ConfigError, match="cutoff"):
        sinc_kernel(5, cutoff=4.0)


# ----------------------------------------------------------------------------- blur


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("padding", ["reflect", "replicate", "symmetric"])
def test_blur_preserves_constant_and_shape(device: str, padding: str) -> None:
    flat = torch.full((2, 3, 5, 7), 0.4, device=device)  # smaller than the kernel
    out = blur(flat, gaussian_kernel(11, sigma_x=2.0), padding=padding)  # type: ignore[arg-type]
    torch.testing.assert_close(out, flat)
    x = _img().to(device)
    delta = torch.zeros(5, 5, dtype=torch.float64)
    delta[2, 2] = 1
    torch.testing.assert_close(blur(x, delta, padding=padding), x)  # type: ignore[arg-type]


def test_blur_per_image_kernels_and_matlab_imfilter() -> None:
    x = _img(b=2, h=16, w=16)
    k1, k2 = gaussian_kernel(5, sigma_x=1.0), motion_kernel(7, length=5, angle=45)
    kk = torch.stack([torch.nn.functional.pad(k1, (1, 1, 1, 1)), k2])
    both = blur(x, kk)
    torch.testing.assert_close(both[:1], blur(x[:1], k1))
    torch.testing.assert_close(both[1:], blur(x[1:], k2))
    # odd kernel + replicate == MATLAB imfilter(..., 'replicate') == scipy correlate(mode='nearest')
    k = gaussian_kernel(7, sigma_x=1.6)
    ref = ndimage.correlate(x[0, 0].double().numpy(), k.numpy(), mode="nearest")
    np.testing.assert_allclose(blur(x[:1, :1].double(), k, padding="replicate")[0, 0].numpy(), ref, atol=1e-12)


def _matlab_imfilter_replicate(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Direct loop of MATLAB ``imfilter(a, k, 'replicate')``: centre tap floor((k + 1) / 2) (1-based)."""
    n = k.shape[0]
    c = (n + 1) // 2 - 1
    out = np.zeros_like(a)
    h, w = a.shape
    for i in range(h):
        for j in range(w):
            for u in range(n):
                for v in range(n):
                    out[i, j] += k[u, v] * a[min(max(i + u - c, 0), h - 1), min(max(j + v - c, 0), w - 1)]
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bd_preset_follows_rdn_script(scale: int) -> None:
    """RDN ``imresize_BD``: fspecial Gaussian (7 at x3, 12 at even s) + replicate imfilter + decimation."""
    hr = _img(b=1, c=1, h=12, w=12, seed=3).double()
    lr, ops = Pipeline.preset("bd", scale)(hr)
    size = {2: 12, 3: 7, 4: 12}[scale]
    assert ops[0]["size"] == size and ops[0]["sigma_x"] == 1.6 and ops[0]["padding"] == "replicate"
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.6**2))
    blurred = _matlab_imfilter_replicate(hr[0, 0].numpy(), g / g.sum())
    first = scale - 1 if scale % 2 else scale // 2  # MATLAB 1-based start of RDN's selection
    expected = blurred[first - 1 :: scale, first - 1 :: scale]
    np.testing.assert_allclose(lr[0, 0].numpy(), np.clip(expected, 0, 1), atol=1e-12)


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("device", DEVICES)
def test_gaussian_noise_std_gray_and_determinism(device: str) -> None:
    x = torch.full((2, 3, 64, 64), 0.5, device=device)
    out = add_gaussian_noise(x, 10 / 255, generator=_gen(1))
    assert out.shape == x.shape and out.device == x.device
    assert (out - x).std().item() == pytest.approx(10 / 255, rel=0.03)
    assert torch.equal(out, add_gaussian_noise(x, 10 / 255, generator=_gen(1)))
    assert not torch.equal(out, add_gaussian_noise(x, 10 / 255, generator=_gen(2)))
    gray = add_gaussian_noise(x, [5 / 255, 20 / 255], gray=True, generator=_gen(1))
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert (gray[1] - x[1]).std() > 3 * (gray[0] - x[0]).std()  # per-image sigma
    big = add_gaussian_noise(x, 1.0, generator=_gen(1))
    assert big.min() == 0 and big.max() == 1  # clipped
    assert add_gaussian_noise(x, 1.0, clip=False, generator=_gen(1)).max() > 1


def test_gaussian_noise_cpu_generator_is_device_independent() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.full((1, 3, 16, 16), 0.5)
    cpu = add_gaussian_noise(x, 0.1, generator=_gen(5))
    gpu = add_gaussian_noise(x.cuda(), 0.1, generator=_gen(5)).cpu()
    torch.testing.assert_close(cpu, gpu)


def test_poisson_noise_variance_levels_and_gray() -> None:
    x = torch.full((1, 3, 96, 96), 100 / 255)
    out = add_poisson_noise(x, 2.0, peak=256.0, generator=_gen(0))
    noise = (out - x).double()
    assert abs(noise.mean().item()) < 0.003
    assert noise.var().item() == pytest.approx(4.0 * (100 / 255) / 256, rel=0.05)  # scale^2 * x / peak
    assert torch.equal(out, add_poisson_noise(x, 2.0, peak=256.0, generator=_gen(0)))
    # BasicSR's automatic photon count: 2**ceil(log2(#distinct 8-bit levels)); 200 levels -> 256
    ramp = (torch.arange(200.0) / 255).repeat(3, 50, 1).unsqueeze(0)
    auto = add_poisson_noise(ramp, 1.0, generator=_gen(3))
    torch.testing.assert_close(auto, add_poisson_noise(ramp, 1.0, peak=256.0, generator=_gen(3)))
    gray = add_poisson_noise(_img(), 1.0, gray=True, generator=_gen(4))
    n = gray - _img()
    unclipped = (gray > 0) & (gray < 1)
    assert torch.allclose((n[:, 0] - n[:, 1])[unclipped.all(1)], torch.zeros(()), atol=1e-6)
    assert add_poisson_noise(x, 0.0, generator=_gen(0)).equal(x)


# ----------------------------------------------------------------------------- jpeg / quantize


@pytest.mark.parametrize("device", DEVICES)
def test_jpeg_round_trip_quality_and_channels(device: str) -> None:
    x = resize(_img(b=2, h=32, w=32), scale=2).clamp(0, 1).to(device)  # smooth-ish content
    q90, q10 = jpeg(x, 90), jpeg(x, 10)
    assert q90.shape == x.shape and q90.device == x.device
    assert torch.equal(q90, (q90 * 255).round() / 255)  # decoded 8-bit values
    assert not torch.equal(q90, x)
    assert (q10 - x).abs().mean() > (q90 - x).abs().mean()  # lower quality, larger error
    assert torch.equal(q90, jpeg(x, 90))
    mixed = jpeg(x, [10, 90])
    torch.testing.assert_close(mixed[1:], q90[1:])
    assert jpeg(x[:, :1], 50).shape == (2, 1, 64, 64)
    with pytest.raises(ConfigError, match="quality"):
        jpeg(x, 0)
    with pytest.raises(ImageError, match="channels"):
        jpeg(torch.rand(1, 2, 8, 8), 50)


def test_quantize_levels() -> None:
    x = _img() * 1.2 - 0.1
    q = quantize(x, 8)
    assert q.min() >= 0 and q.max() <= 1
    assert torch.equal(q, quantize(q, 8))
    inside = (x >= 0) & (x <= 1)
    assert (q - x)[inside].abs().max() <= 0.5 / 255 + 1e-7
    assert quantize(x, 1).unique().tolist() == [0.0, 1.0]
    with pytest.raises(ConfigError, match="bits"):
        quantize(x, 0)


# ----------------------------------------------------------------------------- pipelines


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_presets_shape_range_determinism(name: str, scale: int) -> None:
    hr = _img(b=2, h=48, w=36)
    pipe = Pipeline.preset(name, scale)
    lr, ops = pipe(hr, generator=_gen(7))
    assert lr.shape == (2, 3, 48 // scale, 36 // scale)
    assert lr.min() >= 0 and lr.max() <= 1
    lr2, ops2 = pipe(hr, generator=_gen(7))
    assert torch.equal(lr, lr2) and ops == ops2
    assert json.loads(json.dumps(ops)) == ops
    assert Pipeline.from_dict(json.loads(json.dumps(pipe.to_dict()))) == pipe


def test_bi_preset_is_matlab_bicubic_and_dn_noise_level() -> None:
    hr = _img(b=1, h=24, w=24)
    lr, ops = Pipeline.preset("bi", 3)(hr)
    torch.testing.assert_close(lr, resize(hr, scale=1 / 3).clamp(0, 1), atol=1e-6, rtol=0)
    assert ops == [{"op": "resize", "mode": "bicubic", "factor": 1.0, "size": [8, 8]}]
    flat = torch.full((1, 3, 256, 256), 0.5)
    dn, ops = Pipeline.preset("dn", 2)(flat, generator=_gen(0))
    assert [o["op"] for o in ops] == ["resize", "quantize", "noise"] and ops[2]["sigma"] == 30.0
    assert (dn - 128 / 255).std().item() == pytest.approx(30 / 255, rel=0.05)


def test_realistic_preset_samples_differ_and_end_quantized() -> None:
    hr = _img(b=1, h=64, w=64)
    pipe = Pipeline.preset("realistic", 4)
    outs = [pipe(hr, generator=_gen(s)) for s in range(4)]
    assert len({json.dumps(o[1]) for o in outs}) > 1
    assert not torch.equal(outs[0][0], outs[1][0])
    for lr, ops in outs:
        assert torch.equal(lr, (lr * 255).round() / 255)
        assert ops[0]["op"] == "blur" and ops[-1] == {"op": "quantize", "bits": 8}
        assert any(o["op"] == "one_of" for o in ops)


def test_blur_op_draws_every_kernel_type() -> None:
    op = BlurOp(kernel=BLUR_KERNELS, size=(7, 13), padding="reflect")
    pipe = Pipeline(scale=2, ops=(op, ResizeOp(relative_to="target")))
    seen = set()
    for s in range(60):
        _, ops = pipe(_img(b=1, h=16, w=16), generator=_gen(s))
        seen.add(ops[0]["kernel"])
        assert ops[0]["size"] in (7, 9, 11, 13)
    assert seen == set(BLUR_KERNELS)


def test_pipeline_from_toml_example_files() -> None:
    files = sorted((REPO / "train" / "degrade").glob("*.toml"))
    assert files, "train/degrade/*.toml examples missing"
    for f in files:
        pipe = Pipeline.from_toml(f, scale=4)
        lr, _ = pipe(_img(b=1, h=32, w=32), generator=_gen(0))
        assert lr.shape == (1, 3, 8, 8)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        (
            {"scale": 4, "ops": [{"op": "blur", "sigmaa": 1.0}]},
            r"ops\[0\]\.sigmaa: unknown key for op 'blur' \(did you mean 'sigma'",
        ),
        ({"scale": 4, "opps": []}, "unknown key 'opps'"),
        ({"scale": 4, "ops": [{"op": "blurr"}]}, "unknown op 'blurr'"),
        ({"scale": 4, "ops": [{"op": "noise", "sigma": [30, 1]}]}, r"ops\[0\]\.sigma: expected lo <= hi"),
        ({"scale": 4, "ops": [{"op": "jpeg", "quality": [0, 50]}]}, r"ops\[0\]\.quality"),
        ({"scale": 4, "ops": [{"op": "resize", "mode": "cubic"}]}, "unknown value 'cubic'"),
        ({"scale": 4, "ops": [{"op": "blur", "prob": 2}]}, "probability"),
        ({"scale": 4, "preset": "bii"}, "unknown preset 'bii'"),
        ({"scale": 4, "preset": "bi", "ops": []}, "exactly one of"),
        ({"scale": 2, "preset": "bi"}, "does not match"),
        (
            {"scale": 4, "ops": [{"op": "one_of", "choices": [[{"op": "jpeg", "qualty": 3}]]}]},
            r"ops\[0\]\.choices\[0\]\[0\]\.qualty: unknown key for op 'jpeg'",
        ),
    ],
)
def test_pipeline_config_errors_name_the_key(d: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Pipeline.from_dict(d, scale=4)


def test_pipeline_scale_comes_from_file_or_caller() -> None:
    with pytest.raises(ConfigError, match="no scale"):
        Pipeline.from_dict({"ops": []})
    assert Pipeline.from_dict({"scale": 3, "preset": "bd"}) == Pipeline.preset("bd", 3)
    assert Pipeline.from_dict({"preset": "dn"}, scale=2).scale == 2


def test_pipeline_must_reach_target_size_and_input_checks(tmp_path: Path) -> None:
    pipe = Pipeline.from_dict({"scale": 2, "ops": [{"op": "noise", "sigma": 5}]})
    with pytest.raises(ConfigError, match="expected \\(8, 8\\)"):
        pipe(_img(b=1, h=16, w=16))
    with pytest.raises(ImageError, match="smaller than the scale"):
        Pipeline.preset("bi", 4)(_img(b=1, h=3, w=8))
    bad = tmp_path / "bad.toml"
    bad.write_text("scale = 4\n[[ops]]\nop = 'resize'\nrelative_to = 'target'\nfactr = 1\n")
    with pytest.raises(ConfigError, match="bad.toml: ops\\[0\\]\\.factr: unknown key for op 'resize'"):
        Pipeline.from_toml(bad)
    bad.write_text("scale = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        Pipeline.from_toml(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        Pipeline.from_toml(tmp_path / "missing.toml")


def test_image_seed_is_stable_and_name_dependent() -> None:
    assert image_seed(0, "a.png") == image_seed(0, "a.png")
    assert len({image_seed(0, "a.png"), image_seed(1, "a.png"), image_seed(0, "b.png")}) == 3
    assert 0 <= image_seed(123, "x/y.png") < 2**63
