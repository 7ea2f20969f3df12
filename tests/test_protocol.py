"""The one benchmark protocol: fixed reference values for its building blocks, and training validation
giving exactly what ``sruscale evaluate`` gives.

Reference values are derived by hand from MATLAB's documented formulas, not from the project's code:

* ``imresize`` (bicubic): Keys' cubic with a = -0.5,
  ``k(x) = 1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1`` and ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``;
  output pixel ``i`` (1-based) sits at input ``u = i / s + (1 - 1 / s) / 2``; when shrinking (``s < 1``)
  the kernel is stretched to ``s * k(s * x)`` (antialiasing); weights are normalised to sum 1;
  indices outside the signal mirror with the edge repeated (``0 -> 1``, ``-1 -> 2``, ``n + 1 -> n``).
  ``k(0.25) = 111/128``, ``k(0.75) = 29/128``, ``k(1.25) = -9/128``, ``k(1.75) = -3/128``.
* ``rgb2ycbcr``: ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for ``R, G, B`` in ``[0, 1]``, on the
  0..255 scale; for 8-bit images Y is rounded to an integer.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.color import rgb_to_y
from sruscale.resize import imresize
from sruscale.training import fit, parse_config

# ------------------------------------------------------------------------------------------- imresize


def _row(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_imresize_half_hand_derived() -> None:
    """x = [10, 20, 40, 80, 160, 80, 40, 20] at scale 1/2: u = 2i - 1/2, 8 taps with weights
    0.5 * k(0.5 d), d = u - idx, i.e. [-3, -9, 29, 111, 111, 29, -9, -3] / 256 on idx = u - 3.5 ... u + 3.5.
    out[1] = (140 x1 + 102 x2 + 26 x3 - 9 x4 - 3 x5) / 256 = 3280 / 256 (x0, x-1, x-2 mirror to x1, x2, x3);
    out[2] = (-12 x1 + 29 x2 + 111 x3 + 111 x4 + 29 x5 - 9 x6 - 3 x7) / 256 = 17580 / 256;
    out[3] = (-3 x2 - 9 x3 + 29 x4 + 111 x5 + 111 x6 + 29 x7 - 12 x8) / 256 = 29460 / 256;
    out[4] = (-3 x4 - 9 x5 + 26 x6 + 102 x7 + 140 x8) / 256 = 7280 / 256."""
    out = imresize(_row([10, 20, 40, 80, 160, 80, 40, 20]), 0.5)
    want = [3280 / 256, 17580 / 256, 29460 / 256, 7280 / 256]
    assert out.shape == (1, 1, 1, 4)
    assert out.flatten().tolist() == pytest.approx(want, abs=1e-12)


def test_imresize_double_hand_derived() -> None:
    """x = [10, 20, 40, 80] at scale 2 (no antialiasing): u = i/2 + 1/4, 4 taps k(d).
    out[1] (u = 0.75) = (140 x1 - 12 x2) / 128 = 1160 / 128; out[2] (u = 1.25) = (102 x1 + 29 x2 - 3 x3) / 128
    = 1480 / 128; out[3] (u = 1.75) = (26 x1 + 111 x2 - 9 x3) / 128 = 2120 / 128;
    out[8] (u = 4.25, idx 3..6 with 5 -> 4 and 6 -> 3) = (140 x4 - 12 x3) / 128 = 10720 / 128."""
    out = imresize(_row([10, 20, 40, 80]), 2.0)
    assert out.shape == (1, 1, 2, 8)  # the height of 1 doubles too
    assert out[0, 0, 0, :3].tolist() == pytest.approx([1160 / 128, 1480 / 128, 2120 / 128], abs=1e-12)
    assert out[0, 0, 0, 7].item() == pytest.approx(10720 / 128, abs=1e-12)
    assert torch.equal(out[0, 0, 0], out[0, 0, 1])  # a constant column stays constant


def test_imresize_2d_is_separable_hand_derived() -> None:
    """A 2-D outer product a b^T resizes to resize(a) resize(b)^T (the kernel is separable), so the
    1-D hand values above give a 2-D table: (1/2 scale) 8 x 8 -> 4 x 4."""
    a = [10.0, 20, 40, 80, 160, 80, 40, 20]
    ra = torch.tensor([3280 / 256, 17580 / 256, 29460 / 256, 7280 / 256], dtype=torch.float64)
    x = torch.outer(torch.tensor(a, dtype=torch.float64), torch.tensor(a, dtype=torch.float64) / 160)
    out = imresize(x.view(1, 1, 8, 8), 0.5)[0, 0]
    assert torch.allclose(out, torch.outer(ra, ra / 160), atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------- rgb_to_y

# (R, G, B) 8-bit -> Y on 0..255 by Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, computed by hand
_Y_CASES = [
    ((0, 0, 0), 16.0, 16),
    ((255, 255, 255), 235.0, 235),  # 16 + 219
    ((255, 0, 0), 81.481, 81),
    ((0, 255, 0), 144.553, 145),
    ((0, 0, 255), 40.966, 41),
    ((128, 64, 32), 16 + 17407.872 / 255, 84),  # 16 + 68.26616... = 84.26616...
]


@pytest.mark.parametrize(("rgb", "y", "y8"), _Y_CASES)
def test_rgb_to_y_matlab_formula(rgb: tuple[int, int, int], y: float, y8: int) -> None:
    x = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1) / 255
    assert (rgb_to_y(x) * 255).item() == pytest.approx(y, abs=1e-9)
    assert (rgb_to_y(x, round_8bit=True) * 255).item() == y8


def test_rgb_to_y_rounding_convention_at_exact_ties() -> None:
    """8-bit Y is rounded half to even (``torch.round``): (2, 44, 141) gives exactly
    16 + (130.962 + 5656.332 + 3520.206) / 255 = 16 + 9307.5 / 255 = 52.5 -> 52; (0, 204, 68) gives
    16 + (26224.812 + 1697.688) / 255 = 125.5 -> 126. 194 of the 2^24 colours are exact ties."""
    x = torch.tensor([[2, 44, 141], [0, 204, 68]], dtype=torch.float64).T.reshape(1, 3, 1, 2) / 255
    assert (rgb_to_y(x) * 255).flatten().tolist() == pytest.approx([52.5, 125.5], abs=1e-9)
    assert (rgb_to_y(x, round_8bit=True) * 255).flatten().tolist() == [52.0, 126.0]


# ------------------------------------------------------------------------------------------- validation == evaluate


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.integers(0, 256, size=(h // 4, w // 4, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.mark.parametrize("in_channels", [1, 3])
def test_logged_validation_equals_evaluate(tmp_path: Path, in_channels: int) -> None:
    """A 4-iteration FSRCNN run validates at iterations 2 and 4; `sruscale evaluate` on the saved
    weights and the same images reproduces the logged PSNR/SSIM (val.csv, same metric names)."""
    rng = np.random.default_rng(0)
    for name, sizes in (("hr", [(40, 40), (48, 44), (44, 48)]), ("val", [(33, 35), (32, 36)])):
        (tmp_path / name).mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(_smooth(rng, h, w)).save(tmp_path / name / f"{i}.png")
    recipe = {
        "iterations": 4,
        "seed": 3,
        "model": {"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": in_channels, "d": 8, "s": 4, "m": 1}},
        "data": {"train_hr": [str(tmp_path / "hr")], "patch_size": 8, "batch_size": 2, "color": "y"
                 if in_channels == 1 else "rgb"},
        "optim": {"lr": 1e-3},
        "loss": [{"type": "l1"}],
        "val": {"hr": str(tmp_path / "val"), "every": 2},
        "checkpoint": {"every": 4, "keep": 1},
        "log": {"every": 1, "tensorboard": False},
    }  # fmt: skip
    torch.set_num_threads(1)
    fit(parse_config(copy.deepcopy(recipe)), out_dir=tmp_path / "run", device="cpu")
    rows = (tmp_path / "run" / "val.csv").read_text().splitlines()
    head = rows[0].split(",")
    assert head[:4] == ["time", "iter", "psnr", "ssim"] and len(rows) == 3  # one row per validation
    last = dict(zip(head, rows[-1].split(","), strict=True))
    assert last["iter"] == "4"

    out = tmp_path / "eval.json"
    res = CliRunner().invoke(
        app, ["evaluate", "--weights", str(tmp_path / "run" / "last.safetensors"), str(tmp_path / "val"),
              "--device", "cpu", "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    mean = json.loads(out.read_text())["datasets"][0]["mean"]
    assert abs(mean["psnr"] - float(last["psnr"])) <= 1e-6
    assert abs(mean["ssim"] - float(last["ssim"])) <= 1e-8
