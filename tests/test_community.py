"""Community model files (`--weights 4x-Something.pth`) through spandrel and sruscale's own pipeline.

The networks are spandrel's own classes with seeded random weights, saved the ways community
files come (a plain state dict, Real-ESRGAN's ``{"params_ema": ...}``, safetensors); every output
is compared with the spandrel network called directly. Tests that need spandrel skip without it
(the ``community`` extra), unless SRUSCALE_REQUIRE_COMMUNITY=1 (CI's community step) makes a
missing spandrel a failure. The refusal of code-running pickles, the message naming the extra
and the authors' EDSR/RCAN layouts need no spandrel and run everywhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_cli_upscale import run_main
from test_convert import edsr_pytorch_state, rcan_state
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.errors import CheckpointError
from sruscale.models import REGISTRY
from sruscale.models.edsr import EDSRBaseline
from sruscale.models.rcan import RCAN
from sruscale.weights import load_model, model_scale, save_model

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def spandrel() -> Any:
    if os.environ.get("SRUSCALE_REQUIRE_COMMUNITY", "") not in ("", "0"):
        import spandrel  # CI's community venv: a missing or broken spandrel is a failure, not a skip

        return spandrel
    return pytest.importorskip("spandrel")


pytestmark = pytest.mark.usefixtures("isolated_env")  # conftest: no bundled weights, no torchrun variables


def esrgan(spandrel: Any, *, scale: int = 4, **kw: Any) -> torch.nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(num_filters=16, num_blocks=2, scale=scale, **kw).eval()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # ESRGAN's init gives outputs near 0: spread them over [0, 1] to compare pixels
        last.weight.mul_(8)
        last.bias.fill_(0.3)
    return net


def compact(spandrel: Any, *, scale: int = 2) -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact  # Real-ESRGAN's SRVGGNetCompact

    torch.manual_seed(1)
    return Compact(num_feat=16, num_conv=4, upscale=scale).eval()


def save(net: torch.nn.Module, path: Path, how: str = "pth") -> Path:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if how == "safetensors":
        save_file(state, str(path.with_suffix(".safetensors")))
        return path.with_suffix(".safetensors")
    torch.save({"params_ema": state} if how == "params_ema" else state, path)
    return path


def image(path: Path, h: int, w: int, channels: int = 3, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise image written with OpenCV (BGR order on disk); returns it in RGB(A) order."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx / w + c * 0.3) % 1 for c in range(channels)], axis=-1) * 0.6 + (yy / h)[..., None] * 0.2
    arr = np.clip((base + rng.uniform(0, 0.2, base.shape)) * top, 0, top).astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = [2, 1, 0, 3][:channels] if channels >= 3 else list(range(channels))
    cv2.imwrite(str(path), arr[..., order])
    return arr


def read_rgb(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert arr is not None, path
    return arr[..., [2, 1, 0, 3][: arr.shape[-1]]] if arr.ndim == 3 else arr


def reference(net: torch.nn.Module, arr: np.ndarray) -> np.ndarray:
    """The spandrel network called directly on ``arr`` (H, W, C) -> (sH, sW, C) floats in [0, 1]."""
    top = np.iinfo(arr.dtype).max
    x = torch.from_numpy(arr.astype(np.float32) / top).permute(2, 0, 1)[None]
    with torch.no_grad():
        return net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()


def upscale(*args: str | Path) -> Any:
    res = runner.invoke(app, ["upscale", *map(str, args), "--device", "cpu"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.stdout + res.stderr
    return res


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SRUSCALE_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "sruscale", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


# ------------------------------------------------------------------ same pixels as spandrel


@pytest.mark.parametrize("how", ["pth", "params_ema", "safetensors"])
def test_esrgan_file_upscales_like_spandrel(how: str, tmp_path: Path, spandrel: Any) -> None:
    net = esrgan(spandrel)
    weights = save(net, tmp_path / "4x-Tiny.pth", how)
    arr = image(tmp_path / "in" / "a.png", 20, 24)
    res = upscale(tmp_path / "in" / "a.png", "-o", tmp_path / "out", "--weights", weights, "--tile", "0")
    out = read_rgb(tmp_path / "out" / "a_x4.png")
    assert out.shape == (80, 96, 3) and out.dtype == np.uint8
    ref = np.round(reference(net, arr) * 255)
    assert np.abs(out.astype(np.float64) - ref).max() <= 1
    assert f"model: {weights}: ESRGAN x4 (16nf, 2nb), detected by spandrel {spandrel.__version__}" in " ".join(
        res.stderr.split()
    )
    assert model_scale(weights=weights) == 4  # what output names use before the model is loaded


def test_tiled_run_matches_spandrel(tmp_path: Path, spandrel: Any) -> None:
    net = esrgan(spandrel)
    weights = save(net, tmp_path / "4x-Tiny.pth")
    arr = image(tmp_path / "in" / "big.png", 100, 124, seed=2)
    res = upscale(tmp_path / "in", "-o", tmp_path / "out", "--weights", weights, "--tile", "96", "--progress", "json")
    tiles = [json.loads(line) for line in res.stdout.splitlines() if '"event": "tile"' in line]
    assert tiles and tiles[-1]["tiles_total"] > 1  # 96 px tiles sharing the default 64 px of context
    out = read_rgb(tmp_path / "out" / "big_x4.png")
    ref = np.round(reference(net, arr) * 255)
    assert out.shape == ref.shape and np.abs(out.astype(np.float64) - ref).max() <= 1


def test_compact_with_alpha_keeps_rgba(tmp_path: Path, spandrel: Any) -> None:
    net = compact(spandrel)
    weights = save(net, tmp_path / "2x-Compact.pth", "params_ema")
    arr = image(tmp_path / "in" / "logo.png", 18, 22, channels=4, seed=3)
    upscale(tmp_path / "in" / "logo.png", "-o", tmp_path / "out", "--weights", weights)
    out = read_rgb(tmp_path / "out" / "logo_x2.png")
    assert out.shape == (36, 44, 4) and out.dtype == np.uint8
    rgb = np.round(reference(net, arr[..., :3]) * 255)
    # alpha goes through the RGB model as gray (repeated on 3 channels, the output's channel mean)
    alpha = np.round(reference(net, np.repeat(arr[..., 3:], 3, axis=-1)).mean(axis=-1) * 255)
    assert np.abs(out[..., :3].astype(np.float64) - rgb).max() <= 1
    assert np.abs(out[..., 3].astype(np.float64) - alpha).max() <= 1


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path: Path, spandrel: Any) -> None:
    net = compact(spandrel)
    weights = save(net, tmp_path / "2x-Compact.safetensors", "safetensors")
    arr = image(tmp_path / "in" / "deep.png", 16, 20, dtype=np.uint16, seed=4)
    upscale(tmp_path / "in" / "deep.png", "-o", tmp_path / "out", "--weights", weights)
    out = read_rgb(tmp_path / "out" / "deep_x2.png")
    assert out.shape == (32, 40, 3) and out.dtype == np.uint16
    assert np.abs(out / 65535.0 - reference(net, arr)).max() <= 1 / 255
    assert len(np.unique(out)) > 256  # not squeezed through 8 bits


def test_size_requirements_and_precision_come_from_spandrel(tmp_path: Path, spandrel: Any) -> None:
    # Real-ESRGAN x2 RRDBNet: pixel-unshuffle by 2 in front, so inputs must be multiples of 4
    net = esrgan(spandrel, scale=4, in_nc=12, shuffle_factor=2)
    model = load_model(weights=save(net, tmp_path / "2x-Unshuffle.pth"))
    assert (model.name, model.scale, model.in_channels) == ("ESRGAN", 2, 3)
    assert (model.multiple_of, model.minimum, model.half_safe) == (4, 4, True)
    arr = image(tmp_path / "in" / "odd.png", 13, 18, seed=5)
    upscale(tmp_path / "in" / "odd.png", "-o", tmp_path / "out", "--weights", tmp_path / "2x-Unshuffle.pth")
    out = read_rgb(tmp_path / "out" / "odd_x2.png")
    descriptor = spandrel.ModelLoader().load_from_state_dict(net.state_dict())  # pads to multiples of 4 itself
    x = torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)[None]
    ref = np.round(descriptor(x)[0].permute(1, 2, 0).numpy() * 255)
    assert out.shape == (26, 36, 3) and np.abs(out.astype(np.float64) - ref).max() <= 1


def test_evaluate_runs_a_community_model(tmp_path: Path, spandrel: Any) -> None:
    weights = save(compact(spandrel), tmp_path / "2x-Compact.pth")
    image(tmp_path / "gt" / "a.png", 24, 24, seed=6)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "gt"), "--weights", str(weights), "--device", "cpu"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "PSNR" in res.stdout.upper()


# ------------------------------------------------------------------ what is refused


def test_unknown_layouts_channels_and_scales_are_refused(tmp_path: Path, spandrel: Any) -> None:
    torch.save({"foo.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "unknown.pth")
    with pytest.raises(CheckpointError, match="not an architecture spandrel .* knows; a bare state dict") as info:
        load_model(weights=tmp_path / "unknown.pth")
    assert "\n" not in str(info.value)
    four = save(esrgan(spandrel, in_nc=4, out_nc=4), tmp_path / "rgba.pth")
    with pytest.raises(CheckpointError, match="takes 4 and returns 4 channels"):
        load_model(weights=four)
    with pytest.raises(CheckpointError, match="expected scale x2, the ESRGAN model in the file is x4"):
        load_model(weights=save(esrgan(spandrel), tmp_path / "x4.pth"), scale=2)
    bad = esrgan(spandrel)
    with torch.no_grad():
        next(bad.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        load_model(weights=save(bad, tmp_path / "nan.pth"))


def test_community_models_stay_out_of_the_registry(tmp_path: Path, spandrel: Any) -> None:
    model = load_model(weights=save(esrgan(spandrel), tmp_path / "4x.pth"))
    assert model.name not in REGISTRY and not any(isinstance(model, cls) for cls in REGISTRY.values())
    with pytest.raises(CheckpointError, match="not a registered architecture"):  # it could not be read back
        save_model(model, tmp_path / "resaved.safetensors")
    assert not (tmp_path / "resaved.safetensors").exists()


class _WritesMarker:
    """Unpickling this (without weights_only) would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_code_running_pickle_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "4x-Evil.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(4, 3, 3, 3)}, "x": _WritesMarker(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(weights=evil)
    image(tmp_path / "in" / "a.png", 8, 8)
    proc = cli("upscale", tmp_path / "in" / "a.png", "-o", tmp_path / "out", "--weights", evil)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and re.search(r"refused: .*references [\w.]*open\b", lines[0])
    assert "weights_only" not in proc.stderr
    assert not marker.exists()


def test_missing_extra_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spandrel", None)  # `import spandrel` raises ImportError
    weights = tmp_path / "4x-Something.pth"
    torch.save({"conv_first.weight": torch.zeros(4, 3, 3, 3)}, weights)
    with pytest.raises(CheckpointError, match=r'pip install "sruscale\[community\]"') as info:
        load_model(weights=weights)
    assert "\n" not in str(info.value) and "torchvision" in str(info.value)
    image(tmp_path / "in" / "a.png", 8, 8)
    argv = ["upscale", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "out"), "-w", str(weights)]
    code, _, err = run_main(argv)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "sruscale[community]" in err


def test_upscale_builds_a_community_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Naming the outputs needs the file's scale, which only the built model knows: the CLI builds it
    once and runs that model (spandrel's part replaced by a counting stand-in)."""
    import sruscale.weights._community
    import sruscale.weights._resolve
    from sruscale.models.bicubic import Bicubic

    built: list[str] = []

    def fake(state: dict[str, torch.Tensor], *, source: str, scale: int | None = None) -> Bicubic:
        built.append(source)
        return Bicubic(scale=2)

    monkeypatch.setattr(sruscale.weights._community, "load_community", fake)
    weights = tmp_path / "2x-Something.safetensors"
    save_file({"conv_first.weight": torch.zeros(4, 3, 3, 3)}, str(weights))
    image(tmp_path / "in" / "a.png", 8, 8)
    argv = ["upscale", str(tmp_path / "in" / "a.png"), "-o", str(tmp_path / "out"), "-w", str(weights)]
    code, _, err = run_main(argv)
    assert code == 0, err
    assert len(built) == 1 and (tmp_path / "out" / "a_x2.png").is_file()
    assert not sruscale.weights._resolve._BUILT  # handed over, not kept
    assert model_scale(weights=weights) == 2 and len(built) == 2  # a changed or later request builds anew
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed since
    load_model(weights=weights)
    assert len(built) == 3


# ------------------------------------------------------------------ the authors' EDSR / RCAN, no --model


def test_authors_layouts_load_with_weights_alone(tmp_path: Path) -> None:
    torch.save(edsr_pytorch_state(blocks=1, f=8, scale=2), tmp_path / "edsr_x2.pt")
    torch.save(rcan_state(groups=1, blocks=1, f=8, reduction=4, scale=3), tmp_path / "rcan_x3.pt")
    edsr = load_model(weights=tmp_path / "edsr_x2.pt")
    assert (edsr.name, edsr.scale) == ("edsr", 2)
    assert torch.equal(edsr.state_dict()["head.weight"], torch.load(tmp_path / "edsr_x2.pt")["head.0.weight"])
    assert isinstance(load_model(weights=tmp_path / "rcan_x3.pt"), RCAN)
    assert model_scale(weights=tmp_path / "edsr_x2.pt") == 2 and model_scale(weights=tmp_path / "rcan_x3.pt") == 3
    with pytest.raises(CheckpointError, match="expected scale x4"):
        load_model(weights=tmp_path / "edsr_x2.pt", scale=4)
    image(tmp_path / "in" / "a.png", 8, 10)
    upscale(tmp_path / "in" / "a.png", "-o", tmp_path / "out", "--weights", tmp_path / "edsr_x2.pt")
    assert read_rgb(tmp_path / "out" / "a_x2.png").shape == (16, 20, 3)
    torch.save(edsr_pytorch_state(blocks=16, f=64, scale=2), tmp_path / "baseline.pt")
    assert isinstance(load_model(weights=tmp_path / "baseline.pt"), EDSRBaseline)
