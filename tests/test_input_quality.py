"""Per-file model choice: JPEG quality from the quantisation tables, the noise estimate, the route, and
``sruscale upscale`` without ``--model`` sending compressed photos to ``realworld``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.input_quality import InputQuality, estimate_noise, jpeg_quality, route

runner = CliRunner()


def smooth(h: int = 48, w: int = 48, seed: int = 0) -> np.ndarray:
    """A photo-like image: smooth gradients and a few edges, ``(H, W, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + c) * np.cos(4 * y - c) for c in rng.uniform(0, 3, 3)], axis=-1)
    img[h // 3 : h // 2, w // 4 : 3 * w // 4] *= 0.6
    return (img.clip(0, 1) * 255).round().astype(np.uint8)


@pytest.mark.parametrize("quality", [12, 30, 50, 75, 90, 100])
def test_jpeg_quality_is_read_back_exactly(quality: int, tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(smooth()).save(path, quality=quality)
    assert jpeg_quality(path) == quality


def test_jpeg_quality_of_other_formats_is_none(tmp_path: Path) -> None:
    Image.fromarray(smooth()).save(tmp_path / "a.png")
    assert jpeg_quality(tmp_path / "a.png") is None


def test_noise_estimate_grows_with_added_noise() -> None:
    x = torch.from_numpy(smooth(96, 96)).permute(2, 0, 1)[None].double() / 255
    g = torch.Generator().manual_seed(0)
    est = [
        estimate_noise((x + torch.randn(x.shape, generator=g, dtype=x.dtype) * s / 255).clamp(0, 1))
        for s in (0, 5, 10, 20)
    ]
    assert est[0] < 1.5 and est == sorted(est)
    # the flattest-tenth selection reads low (documented calibration: sigma 10 -> about 7)
    assert 5 <= est[2] <= 9 and est[3] > est[2] + 3
    assert estimate_noise(torch.rand(1, 3, 4, 4)) == 0.0  # too small to say


def test_route_table() -> None:
    assert route(InputQuality(None, 0.8)).model is None
    assert route(InputQuality(95, 0.8)).model is None
    low = route(InputQuality(30, 0.8))
    assert (low.model, low.denoise) == ("realworld", 1.0) and "JPEG quality 30" in low.reason
    assert route(InputQuality(50, 0.8)).denoise == 0.75
    assert route(InputQuality(None, 12.0)).model == "realworld"


def test_upscale_chooses_per_file_and_says_so(tmp_path: Path) -> None:
    """Bundled weights: a clean PNG goes to the clean default, a quality-30 JPEG to realworld."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth(seed=1)).save(src / "clean.png")
    Image.fromarray(smooth(seed=2)).save(src / "web.jpg", quality=30)
    res = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out"), "--progress", "json"])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    models = {Path(e["file"]).name: e["model"] for e in events if e["event"] == "file"}
    assert "realworld at denoise 1" in models["web.jpg"] and "plainsr-x4" in models["clean.png"]
    assert events[-1]["routes"] == {"clean": 1, "realworld d=1": 1}
    plain = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out2"), "--no-auto"])
    assert plain.exit_code == 0, plain.output
    assert "per-file model choice" not in plain.stdout and "bundled plainsr-x4" in " ".join(plain.stderr.split())
    text = runner.invoke(app, ["upscale", str(src), "-o", str(tmp_path / "out3")])
    assert "per-file model choice (JPEG quality and noise of each input): 1 to the clean default" in " ".join(
        text.stdout.split()
    )
