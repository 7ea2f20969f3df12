"""NIQE: MATLAB reference value, properties (blur/noise worse), model files and fitting."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sruscale.errors import CheckpointError, ImageError
from sruscale.image import read_image
from sruscale.metrics._nss import fspecial_gaussian
from sruscale.metrics.niqe import NIQE, NIQEModel, fit_niqe_model, load_niqe_model, niqe, niqe_features
from sruscale.resize import imresize

#: where .ci/run puts files taken from registry packages (BasicSR's MATLAB NIQE parameters, ...)
TEST_CACHE = Path(os.environ.get("SRUSCALE_TEST_CACHE", Path.home() / ".cache" / "sruscale-test"))
MATLAB_PARAMS = TEST_CACHE / "niqe_pris_params.npz"
BUNDLED = Path(__file__).resolve().parents[1] / "weights" / "niqe_291.npz"


@pytest.fixture(scope="module")
def matlab_model() -> NIQEModel:
    if not MATLAB_PARAMS.is_file():
        pytest.skip(f"MATLAB NIQE parameters not found at {MATLAB_PARAMS} (.ci/run fetches them from basicsr)")
    return load_niqe_model(MATLAB_PARAMS)


def _natural(seed: int = 0, size: int = 192) -> torch.Tensor:
    """A 1/f-noise 'natural-looking' gray image in [0, 1]: (1, 1, size, size)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    r = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2).clamp_min(1 / size)
    spec = torch.randn(size, size, generator=g, dtype=torch.float64) + 1j * torch.randn(
        size, size, generator=g, dtype=torch.float64
    )
    img = torch.fft.ifft2(spec / r).real
    img = (img - img.min()) / (img.max() - img.min())
    return img[None, None]


@pytest.mark.data
def test_baboon_matches_matlab(shared_data: Path, matlab_model: NIQEModel) -> None:
    x = read_image(shared_data / "Set14" / "baboon.png").pixels
    value = float(niqe(x, model=matlab_model)[0])
    assert value == pytest.approx(5.7296, abs=0.01)  # MATLAB R2021a niqe(), with modelparameters.mat


def test_window_is_fspecial() -> None:
    w = fspecial_gaussian(7, 7 / 6)
    assert w.sum() == pytest.approx(1.0)
    assert w[3, 3] / w[3, 4] == pytest.approx(np.exp(1 / (2 * (7 / 6) ** 2)))
    if MATLAB_PARAMS.is_file():
        np.testing.assert_allclose(w, np.load(MATLAB_PARAMS)["gaussian_window"], atol=1e-12)


def test_feature_shapes() -> None:
    plane = _natural(size=200)[0, 0].numpy() * 255
    feats, sharp = niqe_features(plane)
    assert feats.shape == (4, 36) and sharp.shape == (4,)
    assert np.isfinite(feats).all() and (sharp > 0).all()


@pytest.fixture(scope="module")
def fitted() -> NIQEModel:
    planes = [_natural(seed=s, size=288)[0, 0].numpy() * 255 for s in range(6)]
    return fit_niqe_model(planes, card={"data": "synthetic 1/f"})


@pytest.mark.parametrize("which", ["fitted", "bundled", "matlab"])
def test_blur_and_noise_score_worse(which: str, fitted: NIQEModel, request: pytest.FixtureRequest) -> None:
    if which == "fitted":
        model = fitted
    elif which == "bundled":
        if not BUNDLED.is_file():
            pytest.skip("weights/niqe_291.npz not built")
        model = load_niqe_model(BUNDLED)
    else:
        model = request.getfixturevalue("matlab_model")
    x = _natural(seed=42, size=288)
    blurred = imresize(imresize(x, 0.25), 4.0).clamp(0, 1)
    noisy = (x + 0.08 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)).clamp(0, 1)
    base = float(niqe(x, model=model)[0])
    assert float(niqe(blurred, model=model)[0]) > base + 1
    assert float(niqe(noisy, model=model)[0]) > base + 1


def test_fitted_model_round_trips(fitted: NIQEModel, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "m.npz")
    back = load_niqe_model(path)
    np.testing.assert_array_equal(back.mu, fitted.mu)
    np.testing.assert_array_equal(back.cov, fitted.cov)
    assert back.card["data"] == "synthetic 1/f" and back.card["patches"] == fitted.card["patches"]
    x = _natural(seed=7)
    assert float(niqe(x, model=path)[0]) == pytest.approx(float(niqe(x, model=fitted)[0]), abs=0)


def test_reads_matlab_mat(fitted: NIQEModel, tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    path = tmp_path / "modelparameters.mat"
    scipy_io.savemat(str(path), {"mu_prisparam": fitted.mu[None, :], "cov_prisparam": fitted.cov})
    back = load_niqe_model(path)
    np.testing.assert_allclose(back.mu, fitted.mu)
    np.testing.assert_allclose(back.cov, fitted.cov)


def test_function_equals_module(fitted: NIQEModel) -> None:
    x = torch.cat([_natural(seed=1), _natural(seed=2)])
    assert torch.equal(NIQE(model=fitted, reduction="none")(x), niqe(x, model=fitted))
    assert NIQE(model=fitted)(x) == pytest.approx(float(niqe(x, model=fitted).mean()))


def test_rgb_uses_y(fitted: NIQEModel) -> None:
    gray = _natural(seed=3)
    rgb = gray.expand(-1, 3, -1, -1)
    # gray replicated to RGB: Y = 16 + 219/255 * gray, so scores are close but the conversion is applied
    assert float(niqe(rgb, model=fitted)[0]) != float(niqe(gray, model=fitted)[0])
    assert float(niqe(rgb, model=fitted, y_channel=False)[0]) == pytest.approx(
        float(niqe(gray, model=fitted)[0]), abs=1e-6
    )


def test_errors(tmp_path: Path, fitted: NIQEModel) -> None:
    with pytest.raises(ImageError, match="at least 96x96"):
        niqe(torch.rand(1, 1, 95, 200), model=fitted)
    with pytest.raises(CheckpointError, match="not found"):
        load_niqe_model(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu=np.zeros(36))
    with pytest.raises(CheckpointError, match="mu_prisparam or mu_pris_param"):
        load_niqe_model(bad)
    with pytest.raises(CheckpointError, match=r"expected mu \(36,\)"):
        NIQEModel(mu=np.zeros(18), cov=np.eye(18))
    with pytest.raises(ValueError, match="reduction"):
        niqe(torch.rand(1, 1, 96, 96), model=fitted, reduction="avg")  # type: ignore[arg-type]
