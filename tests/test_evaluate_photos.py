"""`sruscale evaluate` on your own photos: one folder without ground truth, `--compare` of output folders,
the grid's bicubic panel (`--lr`), `--denoise`, and the usage line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.errors import ConfigError, ImageError
from sruscale.evaluation import (
    ImageResult,
    Protocol,
    grid_rows_pairs,
    match_folders,
    plan_evaluation,
    quantize,
    score_image,
    score_pair,
)
from sruscale.image import read_image
from sruscale.metrics import niqe, piqe
from sruscale.resize import imresize

runner = CliRunner()
SIZE = 96  # NIQE's smallest image


def _cli(*args: object):  # noqa: ANN202
    return runner.invoke(app, ["evaluate", *map(str, args)], env={"COLUMNS": "200"})


def _photo(path: Path, seed: int, *, blur: int = 1, size: int = SIZE) -> Path:
    """A textured test image; ``blur`` > 1 downsizes and upsizes it (a blurrier "model output")."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray((rng.random((12, 12, 3)) * 255).astype(np.uint8)).resize((size, size))
    arr = np.asarray(small).astype(np.float64) + rng.normal(0, 8, (size, size, 3))
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if blur > 1:
        img = img.resize((size // blur, size // blur), Image.Resampling.BICUBIC).resize((size, size))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _pixels(path: Path) -> torch.Tensor:
    return quantize(read_image(path).pixels)


@pytest.fixture()
def outputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``sharp/``, ``blurry/`` (named ``_x4``, as upscale may name them) and their ``gt/``."""
    for i, name in enumerate(("a", "b")):
        _photo(tmp_path / "gt" / f"{name}.png", seed=i)
        _photo(tmp_path / "sharp" / f"{name}.png", seed=i, blur=2)
        _photo(tmp_path / "blurry" / f"{name}_x4.png", seed=i, blur=8)
    return tmp_path / "sharp", tmp_path / "blurry", tmp_path / "gt"


# ------------------------------------------------------------------------------------------- one folder


def test_one_folder_scores_without_ground_truth(outputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sharp = outputs[0]
    res = _cli(sharp, "--metrics", "niqe,piqe", "--per-image", "--out", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    proto = Protocol.make("paper", crop_border=0, metrics=("niqe", "piqe"))
    want = score_image(_pixels(sharp / "a.png"), proto)
    y = quantize(_pixels(sharp / "a.png"))
    assert want["piqe"] == pytest.approx(float(piqe(y, data_range=1.0, reduction="none")[0]))
    assert f"{want['niqe']:.3f}" in res.output and f"{want['piqe']:.2f}" in res.output and "crop 0" in res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["protocol"]["sr_dir"] == str(sharp) and data["protocol"]["crop_border"] == 0
    assert data["datasets"][0]["images"] == 2 and data["datasets"][0]["per_image"][0]["niqe"] == want["niqe"]
    res = _cli(sharp, "--out", tmp_path / "r.csv")  # niqe,piqe are the default without ground truth
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("dataset,image,niqe,piqe,")


def test_score_image_refuses_full_reference_metrics() -> None:
    x = torch.rand(1, 3, SIZE, SIZE, dtype=torch.float64)
    with pytest.raises(ConfigError, match="psnr, ssim need ground truth"):
        score_image(x, Protocol.make("paper", crop_border=0, metrics=("psnr", "ssim", "niqe")))
    assert float(niqe(x, data_range=1.0)) > 0


def test_one_folder_refuses_what_needs_ground_truth(outputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sharp = outputs[0]
    res = _cli(sharp, "--metrics", "psnr,niqe,lpips")
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "psnr, lpips compare with ground truth" in text and "one folder" in text
    assert "niqe" not in text.split("compare with")[0]
    res = _cli(sharp, "--plot", tmp_path / "p.png")
    assert res.exit_code == 2 and "ground truth" in res.output
    res = _cli(sharp, "--grid", tmp_path / "g.png")
    assert res.exit_code == 2 and "--grid" in res.output


# ------------------------------------------------------------------------------------------- --compare


def test_compare_ranks_folders_best_first(outputs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    sharp, blurry, _ = outputs
    res = _cli("--compare", blurry, sharp, "--metrics", "piqe,niqe", "--out", tmp_path / "c.json")
    assert res.exit_code == 0, res.output
    proto = Protocol.make("paper", crop_border=0, metrics=("piqe", "niqe"))
    means = {
        d.name: np.mean([score_image(_pixels(f), proto)["piqe"] for f in sorted(d.iterdir())]) for d in (sharp, blurry)
    }
    order = sorted(means, key=lambda k: means[k])  # PIQE: lower is better
    lines = [line for line in res.output.splitlines() if "sharp" in line or "blurry" in line]
    assert [("sharp" if "sharp" in line else "blurry") for line in lines] == order
    assert "folder" in res.output and "ranked by piqe, no ground truth" in " ".join(res.output.split())
    data = json.loads((tmp_path / "c.json").read_text())
    assert [d["name"] for d in data["datasets"]] == order and all(d["images"] == 2 for d in data["datasets"])
    assert data["datasets"][0]["mean"]["piqe"] == pytest.approx(means[order[0]])
    assert data["protocol"]["sr_dirs"] == f"{blurry}, {sharp}"


def test_compare_names_files_that_do_not_match(outputs: tuple[Path, Path, Path]) -> None:
    sharp, blurry, _ = outputs
    _photo(sharp / "c.png", seed=5)
    res = _cli("--compare", sharp, blurry, "--metrics", "piqe")
    assert res.exit_code == 1
    assert isinstance(res.exception, ImageError) and "c.png (not in " + str(blurry) in str(res.exception)
    with pytest.raises(ImageError, match=r"c\.png \(not in .*blurry"):
        match_folders([sharp, blurry])
    assert list(match_folders([blurry, outputs[2]])[0]) == ["a", "b"]  # a_x4.png pairs with a.png


def test_compare_with_ground_truth_allows_every_metric(outputs: tuple[Path, Path, Path]) -> None:
    sharp, blurry, gt = outputs
    res = _cli("--compare", sharp, blurry, "--metrics", "psnr,piqe")
    assert res.exit_code == 2 and "--gt" in res.output and "psnr" in res.output
    res = _cli("--compare", sharp, blurry, "--gt", gt, "--scale", "2", "--metrics", "psnr,piqe")
    assert res.exit_code == 0, res.output
    proto = Protocol.make("paper", scale=2, metrics=("psnr", "piqe"))
    for folder in (sharp, blurry):
        psnrs = [score_pair(_pixels(f), _pixels(gt / f"{f.stem[0]}.png"), proto)["psnr"] for f in folder.iterdir()]
        row = next(line for line in res.output.splitlines() if f" {folder.name} " in line)
        assert f"{np.mean(psnrs):.2f}" in row
    assert res.output.index(" sharp ") < res.output.index(" blurry ")  # PSNR: higher is better


def test_compare_and_folder_option_errors(outputs: tuple[Path, Path, Path]) -> None:
    sharp, blurry, gt = outputs
    cases = [
        (["--compare", sharp], "two or more folders"),
        ([sharp, gt, "--gt", gt, "--scale", "2"], "--gt is the ground truth of --compare"),
        (["--compare", sharp, blurry, "-m", "bicubic"], "runs no --model"),
        (["--compare", sharp, blurry, "--modcrop"], "--modcrop crops ground truth"),
    ]
    for args, message in cases:
        res = _cli(*args)
        assert res.exit_code == 2 and message in " ".join(res.output.split()), (args, res.output)


# ------------------------------------------------------------------------------------------- grid


def test_grid_bicubic_panel_is_the_real_lr_or_labelled_for_what_it_is(tmp_path: Path) -> None:
    gt_file = _photo(tmp_path / "gt" / "a.png", seed=1, size=48)
    sr_file = _photo(tmp_path / "sr" / "a_x2.png", seed=2, size=48)
    lr_file = _photo(tmp_path / "lr" / "a_x2.png", seed=3, size=24)
    proto = Protocol.make("paper", scale=2)
    pick = [ImageResult("gt", "a", {"psnr": 30.0}, sr_path=sr_file, gt_path=gt_file)]
    label, panel = grid_rows_pairs(pick, proto)[0].panels[0]
    assert label.startswith("bicubic of GT downscaled\n") and "from GT)" not in label
    label, panel = grid_rows_pairs(pick, proto, lr={"a": lr_file})[0].panels[0]
    want = quantize(imresize(_pixels(lr_file), size=(48, 48)))
    assert label.startswith("bicubic of LR a_x2.png\n") and torch.equal(panel, want)
    v = score_pair(want, _pixels(gt_file), Protocol(name="paper", crop_border=2, metrics=("psnr", "ssim")))
    assert f"{v['psnr']:.2f} dB" in label
    with pytest.raises(ImageError, match="smaller than its ground truth"):
        grid_rows_pairs(pick, proto, lr={"a": gt_file})

    res = _cli(tmp_path / "sr", tmp_path / "gt", "--scale", "2", "--grid", tmp_path / "g.png", "--lr", tmp_path / "lr")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "g.png").is_file()
    res = _cli(tmp_path / "sr", tmp_path / "gt", "--scale", "2", "--lr", tmp_path / "lr")
    assert res.exit_code == 2 and "--lr is for the --grid" in " ".join(res.output.split())
    (tmp_path / "lr" / "a_x2.png").rename(tmp_path / "lr" / "other.png")
    res = _cli(tmp_path / "sr", tmp_path / "gt", "--scale", "2", "--grid", tmp_path / "g.png", "--lr", tmp_path / "lr")
    assert res.exit_code == 1 and "other.png" in str(res.exception)


# ------------------------------------------------------------------------------------------- --denoise, usage


def test_denoise_reaches_the_model(tmp_path: Path) -> None:
    _photo(tmp_path / "hr" / "a.png", seed=1, size=32)
    args = ["-m", "realworld", tmp_path / "hr", "--device", "cpu", "--out"]
    for d in ("0", "1"):
        res = _cli(*args, tmp_path / f"d{d}.json", "--denoise", d)
        assert res.exit_code == 0, res.output
        assert f"realworld denoise {d} x4" in res.output
    psnr = [json.loads((tmp_path / f"d{d}.json").read_text())["datasets"][0]["mean"]["psnr"] for d in "01"]
    assert psnr[0] != psnr[1]
    res = _cli("-m", "bicubic", "--scale", "2", tmp_path / "hr", "--denoise", "0.5")
    assert res.exit_code == 2 and "--denoise" in res.output
    with pytest.raises(ConfigError, match="--denoise is passed to --model"):
        plan_evaluation([tmp_path / "hr", tmp_path / "hr"], scale=2, denoise=0.5)


def test_usage_line_names_evaluate_not_its_internal_command(outputs: tuple[Path, Path, Path]) -> None:
    res = _cli("--help")
    assert res.exit_code == 0
    usage = next(line for line in res.output.splitlines() if "Usage:" in line)
    assert usage.split("Usage:")[1].split()[1:3] == ["evaluate", "[OPTIONS]"] and "score" not in usage
    assert "--compare" in res.output and "--gt" in res.output and "--lr" in res.output and "--denoise" in res.output
    res = _cli(outputs[0], "--metrics", "psnr")
    assert res.exit_code == 2 and "evaluate score" not in res.output and "evaluate --help" in res.output
