"""Metrics: reference values, hand-computed cases, properties, options, errors, function == module.

Tolerances: PSNR/SSIM against scikit-image 1e-10 (float64; same formulas). SSIM maps against
skimage's full map cropped to the valid region: identical in the interior, so 1e-10. MS-SSIM and
VIFp against the straight numpy/scipy ports of the authors' MATLAB code below: 1e-10. VIF/IFC:
against a numpy port on pyrtools' steerable pyramid when pyrtools is installed (1e-9 relative),
and always against values that port gave for a fixed synthetic image (1e-9 relative).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sruscale.color import rgb_to_y
from sruscale.errors import ImageError
from sruscale.metrics import (
    IFC,
    METRICS,
    MSSIM,
    MSSSIM,
    PSNR,
    SSIM,
    VIF,
    VIFp,
    ifc,
    ms_ssim,
    mssim,
    psnr,
    ssim,
    ssim_map,
    vif,
    vifp,
)


def _pair(shape: tuple[int, ...], noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish reference and a noisy copy in [0, 1], float64, deterministic."""
    rng = np.random.default_rng(seed)
    base = rng.random(shape)
    for axis in (-2, -1):  # cheap smoothing keeps some structure
        base = (base + np.roll(base, 1, axis) + np.roll(base, -1, axis)) / 3
    ref = (base - base.min()) / (base.max() - base.min())
    dist = np.clip(ref + noise * rng.standard_normal(shape), 0, 1)
    return ref, dist


def _t(a: np.ndarray) -> torch.Tensor:
    """(H, W) -> (1, 1, H, W); (C, H, W) -> (1, C, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t[None, None] if t.ndim == 2 else t[None]


def _synthetic(size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic test image (gradients + texture) on 0..1 and a blurred, noisy version."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    ref = 0.5 + 0.25 * np.sin(12 * xx + 4 * yy) + 0.2 * np.cos(30 * xx * yy) + 0.05 * (xx - yy)
    rng = np.random.default_rng(7)
    ref = np.clip(ref + 0.03 * rng.standard_normal(ref.shape), 0, 1)
    dist = (ref + np.roll(ref, 1, 0) + np.roll(ref, 1, 1) + np.roll(ref, (1, 1), (0, 1))) / 4
    dist = np.clip(dist + 0.02 * rng.standard_normal(ref.shape), 0, 1)
    return _t(dist), _t(ref)


# ------------------------------------------------------------------------------------------- PSNR


def test_psnr_matches_skimage_gray_and_rgb() -> None:
    ref, dist = _pair((3, 40, 36))
    got = psnr(_t(dist), _t(ref))
    want = peak_signal_noise_ratio(ref, dist, data_range=1.0)
    assert got.item() == pytest.approx(want, abs=1e-10)
    got_gray = psnr(_t(dist[0]) * 255, _t(ref[0]) * 255, data_range=255.0)
    assert got_gray.item() == pytest.approx(peak_signal_noise_ratio(ref[0], dist[0], data_range=1.0), abs=1e-10)


def test_psnr_hand_computed() -> None:
    a = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(a * 255, b * 255, data_range=255.0).item() == pytest.approx(20.0, abs=1e-9)


def test_psnr_identity_is_inf_and_symmetric() -> None:
    ref, dist = _pair((1, 24, 24))
    assert math.isinf(psnr(_t(ref), _t(ref)).item())
    assert psnr(_t(ref), _t(dist)).item() == pytest.approx(psnr(_t(dist), _t(ref)).item(), abs=1e-12)


# ------------------------------------------------------------------------------------------- SSIM


def test_ssim_matches_skimage_gray() -> None:
    ref, dist = _pair((40, 44))
    want = structural_similarity(
        ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    assert ssim(_t(dist), _t(ref)).item() == pytest.approx(want, abs=1e-10)


def test_ssim_matches_skimage_rgb_channel_mean() -> None:
    ref, dist = _pair((3, 32, 30))
    want = structural_similarity(
        ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0
    )
    assert ssim(_t(dist), _t(ref)).item() == pytest.approx(want, abs=1e-10)


def test_ssim_map_equals_skimage_full_map_on_valid_region() -> None:
    ref, dist = _pair((30, 34))
    _, full = structural_similarity(
        ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True
    )
    got = ssim_map(_t(dist), _t(ref))[0, 0].numpy()
    assert got.shape == (30 - 10, 34 - 10)
    np.testing.assert_allclose(got, full[5:-5, 5:-5], atol=1e-10)


def test_ssim_hand_computed_constant_images() -> None:
    # constant images: sigma = 0, so SSIM = (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1) everywhere
    a = torch.full((1, 1, 16, 16), 0.3, dtype=torch.float64)
    b = torch.full((1, 1, 16, 16), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    want = (2 * 0.3 * 0.6 + c1) / (0.09 + 0.36 + c1)
    assert ssim(a, b).item() == pytest.approx(want, abs=1e-12)


def test_ssim_identity_symmetry_and_range() -> None:
    ref, dist = _pair((2, 24, 28))
    x, y = _t(dist), _t(ref)
    assert ssim(y, y).item() == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, y).item() == pytest.approx(ssim(y, x).item(), abs=1e-12)
    assert -1 <= ssim(x, 1 - y).item() < ssim(x, y).item() < 1


def test_mssim_defaults_equal_ssim_and_uniform_blocks_by_hand() -> None:
    ref, dist = _pair((24, 32))
    x, y = _t(dist), _t(ref)
    assert mssim(x, y).item() == pytest.approx(ssim(x, y).item(), abs=1e-12)
    # non-overlapping 8x8 uniform windows, computed block by block with numpy
    c1, c2 = 0.01**2, 0.03**2
    vals = []
    for i in range(0, 24, 8):
        for j in range(0, 32, 8):
            a, b = ref[i : i + 8, j : j + 8], dist[i : i + 8, j : j + 8]
            ma, mb = a.mean(), b.mean()
            va, vb, cov = a.var(), b.var(), ((a - ma) * (b - mb)).mean()
            vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    got_map = ssim_map(y, x, window="uniform", window_size=8, stride=8)
    assert got_map.shape == (1, 1, 3, 4)
    np.testing.assert_allclose(got_map.flatten().numpy(), vals, atol=1e-10)
    assert mssim(y, x, window="uniform", window_size=8, stride=8).item() == pytest.approx(np.mean(vals), abs=1e-10)


def test_ssim_gradient_flows_and_gradcheck() -> None:
    ref, dist = _pair((1, 14, 13))
    x = _t(dist).clone().requires_grad_(True)
    y = _t(ref)
    assert torch.autograd.gradcheck(lambda t: ssim(t, y), (x,), eps=1e-6, atol=1e-5)
    loss = 1 - SSIM()(x, y)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- MS-SSIM


def _fspecial(n: int, sigma: float) -> np.ndarray:
    ax = np.arange(n) - (n - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _msssim_reference(img1: np.ndarray, img2: np.ndarray) -> float:
    """Port of Wang's msssim.m (ssim_index_new on 0..255, 2x2 mean + symmetric border, 5 scales)."""
    w = _fspecial(11, 1.5)
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mcs, mssim_last = [], 0.0
    for level in range(5):
        mu1, mu2 = correlate2d(img1, w, "valid"), correlate2d(img2, w, "valid")
        s1 = correlate2d(img1 * img1, w, "valid") - mu1**2
        s2 = correlate2d(img2 * img2, w, "valid") - mu2**2
        s12 = correlate2d(img1 * img2, w, "valid") - mu1 * mu2
        cs = (2 * s12 + c2) / (s1 + s2 + c2)
        mcs.append(cs.mean())
        mssim_last = ((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs).mean()
        if level < 4:
            img1, img2 = _down(img1), _down(img2)
    return float(np.prod(np.array(mcs[:4]) ** weights[:4]) * mssim_last ** weights[4])


def _down(im: np.ndarray) -> np.ndarray:
    p = np.pad(im, ((0, 1), (0, 1)), mode="symmetric")
    f = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4  # imfilter(ones(2)/4, 'symmetric', 'same')
    return f[::2, ::2]


def test_ms_ssim_matches_matlab_port_odd_sizes() -> None:
    ref, dist = _pair((177, 163), noise=0.08)
    got = ms_ssim(_t(dist), _t(ref)).item()
    assert got == pytest.approx(_msssim_reference(ref * 255, dist * 255), abs=1e-10)


def test_ms_ssim_matches_pytorch_msssim_if_installed() -> None:
    pm = pytest.importorskip("pytorch_msssim")
    ref, dist = _pair((3, 176, 192), noise=0.08)  # even at every scale: pytorch-msssim zero-pads odd sizes
    want = pm.ms_ssim(_t(dist), _t(ref), data_range=1.0, win_size=11).item()
    assert ms_ssim(_t(dist), _t(ref)).item() == pytest.approx(want, abs=1e-6)


def test_ms_ssim_identity_symmetry_gradient() -> None:
    ref, dist = _pair((1, 164, 170))
    x = _t(dist).clone().requires_grad_(True)
    y = _t(ref)
    assert ms_ssim(y, y).item() == pytest.approx(1.0, abs=1e-12)
    value = MSSSIM()(x, y)
    assert value.item() == pytest.approx(ms_ssim(y, x).item(), abs=1e-12)
    (1 - value).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- VIFp


def _vifp_reference(ref: np.ndarray, dist: np.ndarray) -> float:
    """Port of vifp_mscale.m (0..255, sigma_nsq = 2)."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _fspecial(n, n / 5)
        if scale > 1:
            ref, dist = correlate2d(ref, win, "valid")[::2, ::2], correlate2d(dist, win, "valid")[::2, ::2]
        mu1, mu2 = correlate2d(ref, win, "valid"), correlate2d(dist, win, "valid")
        s1 = correlate2d(ref * ref, win, "valid") - mu1 * mu1
        s2 = correlate2d(dist * dist, win, "valid") - mu2 * mu2
        s12 = correlate2d(ref * dist, win, "valid") - mu1 * mu2
        s1[s1 < 0], s2[s2 < 0] = 0, 0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10] = 0
        sv[s1 < 1e-10] = s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10] = 0
        sv[s2 < 1e-10] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.log10(1 + g**2 * s1 / (sv + 2)).sum()
        den += np.log10(1 + s1 / 2).sum()
    return float(num / den)


def test_vifp_matches_matlab_port_and_properties() -> None:
    ref, dist = _pair((61, 70), noise=0.1)
    got = vifp(_t(dist), _t(ref)).item()
    assert got == pytest.approx(_vifp_reference(ref * 255, dist * 255), abs=1e-10)
    assert vifp(_t(ref), _t(ref)).item() == pytest.approx(1.0, abs=1e-9)
    worse = np.clip(ref + 0.2 * np.random.default_rng(3).standard_normal(ref.shape), 0, 1)
    assert vifp(_t(worse), _t(ref)).item() < got


# ------------------------------------------------------------------------------------------- VIF / IFC

# vif / ifc (per pixel) of _synthetic(96): computed with the pyrtools-based port of vifvec.m / ifcvec.m
# (_vifvec_reference below) when this test was written; both implementations agreed to 1e-13.
_SYNTH_VIF = 0.4615321174409498
_SYNTH_IFC = 2.250370798945733


def _vifvec_reference(imref: np.ndarray, imdist: np.ndarray, *, ifc_mode: bool = False) -> float:
    """Port of vifvec.m / ifcvec.m on pyrtools' SteerablePyramidSpace and corrDn (MATLAB semantics)."""
    pyramids = pytest.importorskip("pyrtools.pyramids")
    from pyrtools.pyramids.c.wrapper import corrDn

    def wtree(img: np.ndarray) -> list[np.ndarray | None]:
        p = pyramids.SteerablePyramidSpace(img, height=4, order=5, edge_type="reflect1")
        keys = ["residual_highpass", *[(lv, b) for lv in range(4) for b in range(6)], "residual_lowpass"]
        return [None, *[p.pyr_coeffs[k] for k in keys][::-1]]  # ind2wtree: reversed, 1-based

    m, subbands, tol = 3, [4, 7, 10, 13, 16, 19, 22, 25], 1e-15
    org, dist = wtree(imref), wtree(imdist)
    num = den = 0.0
    for sub in subbands:
        y, yn = org[sub], dist[sub]
        assert y is not None and yn is not None
        lev = math.ceil((sub - 1) / 6)
        ws = 2**lev + 1
        win = np.ones((ws, ws))
        h, w = (y.shape[0] // m) * m, (y.shape[1] // m) * m
        y, yn = y[:h, :w], yn[:h, :w]
        kw = {"edge_type": "reflect1", "step": (m, m), "start": (m // 2, m // 2), "stop": (h - m // 2, w - m // 2)}
        mx, my = corrDn(y, win / win.sum(), **kw), corrDn(yn, win / win.sum(), **kw)
        cov = corrDn(y * yn, win, **kw) - win.sum() * mx * my
        sx = corrDn(y**2, win, **kw) - win.sum() * mx**2
        sy = corrDn(yn**2, win, **kw) - win.sum() * my**2
        sx[sx < 0], sy[sy < 0] = 0, 0
        g = cov / (sx + tol)
        vv = (sy - g * cov) / win.sum()
        g[sx < tol] = 0
        vv[sx < tol] = sy[sx < tol]
        g[sy < tol] = 0
        vv[sy < tol] = 0
        vv[g < 0] = sy[g < 0]
        g[g < 0] = 0
        vv[vv <= tol] = tol
        blocks = np.array([y[k : h - (m - 1 - k), j : w - (m - 1 - j)].ravel("F") for j in range(m) for k in range(m)])
        centred = blocks - blocks.mean(1, keepdims=True)
        cu = centred @ centred.T / blocks.shape[1]
        tiles = np.array([y[k::m, j::m].ravel("F") for j in range(m) for k in range(m)])
        ss = ((np.linalg.inv(cu) @ tiles) * tiles).sum(0).reshape(h // m, w // m, order="F") / (m * m)
        lam = np.linalg.eigvals(cu).real
        off = math.ceil(((ws - 1) / 2) / m)
        g, vv, ss = (a[off:-off, off:-off] for a in (g, vv, ss))
        for lj in lam:
            if ifc_mode:
                num += np.log2(1 + g * g * ss * lj / (vv + 1e-10)).sum()
            else:
                num += np.log2(1 + g * g * ss * lj / (vv + 0.4)).sum()
                den += np.log2(1 + ss * lj / 0.4).sum()
    return float(num / imref.size if ifc_mode else num / den)


def test_vif_ifc_match_pyrtools_port() -> None:
    ref, dist = _pair((83, 97), noise=0.06)
    want_vif = _vifvec_reference(ref * 255, dist * 255)
    want_ifc = _vifvec_reference(ref * 255, dist * 255, ifc_mode=True)
    assert vif(_t(dist), _t(ref)).item() == pytest.approx(want_vif, rel=1e-9)
    assert ifc(_t(dist), _t(ref)).item() == pytest.approx(want_ifc, rel=1e-9)


def test_vif_ifc_regression_values() -> None:
    dist, ref = _synthetic()
    assert vif(dist, ref).item() == pytest.approx(_SYNTH_VIF, rel=1e-9)
    assert ifc(dist, ref).item() == pytest.approx(_SYNTH_IFC, rel=1e-9)


def test_vif_properties() -> None:
    dist, ref = _synthetic(80)
    assert vif(ref, ref).item() == pytest.approx(1.0, abs=1e-9)
    noisier = (dist + 0.05 * torch.randn_like(dist)).clamp(0, 1)
    assert 0 < vif(noisier, ref).item() < vif(dist, ref).item() < 1
    enhanced = (ref - 0.5) * 1.3 + 0.5  # contrast stretch (unclipped): VIF > 1
    assert vif(enhanced, ref).item() > 1
    assert vif(dist, ref).item() != pytest.approx(vif(ref, dist).item(), rel=1e-6)  # not symmetric


def test_ifc_per_pixel_and_order() -> None:
    dist, ref = _synthetic(80)
    per_pixel = ifc(dist, ref).item()
    assert ifc(dist, ref, per_pixel=False).item() == pytest.approx(per_pixel * 80 * 80, rel=1e-12)
    noisier = (dist + 0.05 * torch.randn_like(dist)).clamp(0, 1)
    assert 0 < ifc(noisier, ref).item() < per_pixel < ifc(ref, ref).item()


# ------------------------------------------------------------------------------------------- options


_ALL = sorted(METRICS.items())
_SIZE = {"ms-ssim": 168}  # each metric's test size (MS-SSIM needs 161+, VIF/IFC 65+, VIFp 41+)


def _size(name: str) -> int:
    return _SIZE.get(name, 72 if name in ("vif", "ifc", "vifp") else 32)


@pytest.mark.parametrize(("name", "fn"), _ALL)
def test_crop_border_equals_manual_crop(name: str, fn) -> None:  # noqa: ANN001
    n = _size(name)
    ref, dist = _pair((3, n + 6, n + 8), seed=1)
    got = fn(_t(dist), _t(ref), crop_border=3)
    want = fn(_t(dist[:, 3:-3, 3:-3]), _t(ref[:, 3:-3, 3:-3]))
    assert got.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("name", "fn"), _ALL)
def test_y_channel_equals_manual_conversion(name: str, fn) -> None:  # noqa: ANN001
    n = _size(name)
    ref, dist = _pair((3, n, n), seed=2)
    x, y = _t(dist), _t(ref)
    got = fn(x, y, y_channel=True, round_8bit=True)
    want = fn(rgb_to_y(x, round_8bit=True), rgb_to_y(y, round_8bit=True))
    assert got.item() == pytest.approx(want.item(), rel=1e-12, abs=1e-12)
    # a gray image is scored on its one channel whatever y_channel says
    assert fn(x[:, :1], y[:, :1], y_channel=True).item() == pytest.approx(fn(x[:, :1], y[:, :1]).item(), rel=1e-12)


def test_y_channel_rounding_and_data_range() -> None:
    ref, dist = _pair((3, 32, 32), seed=4)
    x8, y8 = _t(np.round(dist * 255) / 255), _t(np.round(ref * 255) / 255)
    rounded = psnr(x8, y8, y_channel=True, round_8bit=True).item()
    assert rounded != pytest.approx(psnr(x8, y8, y_channel=True).item(), abs=1e-6)
    assert psnr(x8 * 255, y8 * 255, data_range=255.0, y_channel=True, round_8bit=True).item() == pytest.approx(
        rounded, abs=1e-9
    )
    assert ssim(x8 * 255, y8 * 255, data_range=255.0).item() == pytest.approx(ssim(x8, y8).item(), abs=1e-12)


_MODULES = {"psnr": PSNR, "ssim": SSIM, "mssim": MSSIM, "ms-ssim": MSSSIM, "vif": VIF, "vifp": VIFp, "ifc": IFC}


@pytest.mark.parametrize(("name", "fn"), _ALL)
def test_function_equals_module_and_reductions(name: str, fn) -> None:  # noqa: ANN001
    n = _size(name)
    ref, dist = _pair((2, 3, n, n), seed=5)
    x, y = torch.from_numpy(dist), torch.from_numpy(ref)
    kw = {"crop_border": 2, "y_channel": True}
    per_image = fn(x, y, reduction="none", **kw)
    assert per_image.shape == (2,)
    assert torch.equal(_MODULES[name](reduction="none", **kw)(x, y), per_image)
    assert fn(x, y, **kw).item() == pytest.approx(per_image.mean().item(), rel=1e-12)
    assert fn(x, y, reduction="sum", **kw).item() == pytest.approx(per_image.sum().item(), rel=1e-12)
    assert fn(x[1:], y[1:], reduction="none", **kw).item() == pytest.approx(per_image[1].item(), rel=1e-12)


def test_float32_close_to_float64() -> None:
    ref, dist = _pair((3, 40, 40), seed=6)
    for fn in (psnr, ssim):
        assert fn(_t(dist).float(), _t(ref).float()).item() == pytest.approx(fn(_t(dist), _t(ref)).item(), abs=1e-4)


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("name", "fn"), _ALL)
def test_shape_mismatch_names_both_shapes(name: str, fn) -> None:  # noqa: ANN001
    with pytest.raises(ImageError, match=r"target is \(1, 1, 20, 20\), pred is \(1, 1, 20, 21\)"):
        fn(torch.rand(1, 1, 20, 21), torch.rand(1, 1, 20, 20))


def test_input_errors() -> None:
    a = torch.rand(1, 3, 20, 20)
    with pytest.raises(ImageError, match="expected 4 dims"):
        psnr(a[0], a[0])
    with pytest.raises(ImageError, match="floating-point"):
        ssim((a * 255).byte(), (a * 255).byte())
    with pytest.raises(TypeError):
        psnr(a.numpy(), a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        psnr(a, a, reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        SSIM(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(a, a, crop_border=-1)
    with pytest.raises(ImageError, match="crop_border=10 leaves nothing"):
        psnr(a, a, crop_border=10)
    with pytest.raises(ImageError, match="y_channel needs 1"):
        psnr(torch.rand(1, 2, 20, 20), torch.rand(1, 2, 20, 20), y_channel=True)
    with pytest.raises(ImageError, match="at least 11x11"):
        ssim(torch.rand(1, 1, 10, 30), torch.rand(1, 1, 10, 30))
    with pytest.raises(ImageError, match="MS-SSIM needs images of at least 161x161"):
        ms_ssim(torch.rand(1, 1, 160, 200), torch.rand(1, 1, 160, 200))
    with pytest.raises(ImageError, match="VIF needs images of at least 65x65"):
        vif(torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80))
    with pytest.raises(ValueError, match="window must be"):
        mssim(a, a, window="box")  # type: ignore[arg-type]
