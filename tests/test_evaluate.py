"""`sruscale evaluate` and `sruscale.evaluation`: pairing rules, the benchmark protocol, outputs, errors.

The data tests reproduce the published bicubic rows (Set5: 33.66/0.9299, 30.39/0.8682, 28.42/0.8104;
Set14: 30.24/0.8688, 27.55/0.7742, 26.00/0.7027, as in the VDSR / LapSRN / EDSR tables) within
0.02 dB and 0.001 SSIM; they skip without ../shared/data.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app, main
from sruscale.color import rgb_to_y
from sruscale.errors import ConfigError, ImageError
from sruscale.evaluation import (
    EvaluationResult,
    GridRow,
    Protocol,
    benchmark_lr,
    evaluate_model,
    evaluate_pairs,
    modcrop,
    pair_files,
    pairing_key,
    score_pair,
    write_grid,
)
from sruscale.metrics import psnr, ssim
from sruscale.models import create_model
from sruscale.resize import imresize

runner = CliRunner()


def _img(path: Path, h: int = 30, w: int = 34, *, seed: int = 0, gray: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 3.0 + seed) + 40 * np.cos(yy / 4.0)
    arr = base[..., None] + rng.integers(-20, 20, (h, w, 1 if gray else 3))
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if gray else arr).save(path)
    return arr


def _tensor(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(arr.astype(np.float64) / 255)
    return (t[..., None] if t.ndim == 2 else t).permute(2, 0, 1)[None]


def _cli(*args: object) -> object:
    return runner.invoke(app, ["evaluate", *map(str, args)], env={"COLUMNS": "200"})


def _run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    old = sys.argv
    sys.argv = ["sruscale", *argv]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
            main()
    finally:
        sys.argv = old
    return int(e.value.code or 0), err.getvalue()


# ------------------------------------------------------------------------------------------- pairing


@pytest.mark.parametrize(
    ("stem", "key"),
    [("baby_x4_SR", "baby"), ("baby_SR_x4", "baby"), ("img_001_x2", "img_001"), ("baby", "baby"),
     ("baby_hr", "baby"), ("x4", "x4"), ("_SR", "_SR"), ("pepper_x12", "pepper"), ("0001x4", "0001"),
     ("0001x4_SR", "0001")],
)  # fmt: skip
def test_pairing_key_defaults(stem: str, key: str) -> None:
    assert pairing_key(stem) == key


def test_pairing_key_custom_strip() -> None:
    assert pairing_key("baby_edsr_out", ["_out", "_edsr"]) == "baby"
    assert pairing_key("baby_x4", ["_out"]) == "baby_x4"
    with pytest.raises(ConfigError, match="empty"):
        pairing_key("baby", [""])


def test_one_pairing_rule_for_training_and_evaluate(tmp_path: Path) -> None:
    """DIV2K (``0001x4``) and Set5 (``baby_x4``) names pair the same way in evaluate and in training."""
    from sruscale.data import match_by_stem

    hr = [tmp_path / "0001.png", tmp_path / "baby.png"]
    lr = [tmp_path / "lr" / "baby_x4.png", tmp_path / "lr" / "0001x4.png"]
    assert match_by_stem(hr, lr, hr_dir="hr", lr_dir="lr") == [lr[1], lr[0]]
    for f in [*hr, *lr]:
        f.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(f)
    # evaluate SR_DIR GT_DIR, the LR names standing in for SR outputs
    assert [(p.name, p.sr.name, p.gt.name) for p in pair_files(tmp_path / "lr", tmp_path)] == [
        ("0001", "0001x4.png", "0001.png"), ("baby", "baby_x4.png", "baby.png")
    ]  # fmt: skip


def test_pair_files_by_name_not_order(tmp_path: Path) -> None:
    # sorted SR names (a_SR, b_x2, c) and GT names (a, b, c) line up differently from the stems
    for name in ("zeta_x2.png", "alpha_SR.png", "mid.png"):
        _img(tmp_path / "sr" / name)
    for name in ("alpha.png", "mid.bmp", "zeta_HR.png"):
        _img(tmp_path / "gt" / name)
    pairs = pair_files(tmp_path / "sr", tmp_path / "gt")
    assert [(p.name, p.sr.name, p.gt.name) for p in pairs] == [
        ("alpha", "alpha_SR.png", "alpha.png"),
        ("mid", "mid.png", "mid.bmp"),
        ("zeta", "zeta_x2.png", "zeta_HR.png"),
    ]


def test_pair_files_unmatched_named_on_both_sides(tmp_path: Path) -> None:
    _img(tmp_path / "sr" / "a_x4.png")
    _img(tmp_path / "sr" / "b_x4.png")
    _img(tmp_path / "gt" / "a.png")
    _img(tmp_path / "gt" / "c.png")
    with pytest.raises(ImageError) as info:
        pair_files(tmp_path / "sr", tmp_path / "gt")
    msg = str(info.value)
    assert "no ground truth" in msg and "b_x4.png" in msg and "no SR image" in msg and "c.png" in msg
    assert "a_x4.png" not in msg


def test_pair_files_duplicate_and_missing(tmp_path: Path) -> None:
    _img(tmp_path / "sr" / "a.png")
    _img(tmp_path / "sr" / "a_x4.png")
    _img(tmp_path / "gt" / "a.png")
    with pytest.raises(ImageError, match=r"two SR files pair as 'a': a.png and a_x4.png"):
        pair_files(tmp_path / "sr", tmp_path / "gt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        pair_files(tmp_path / "empty", tmp_path / "gt")
    with pytest.raises(ImageError, match="not a folder"):
        pair_files(tmp_path / "nope", tmp_path / "gt")


# ------------------------------------------------------------------------------------------- scoring


def test_score_pair_is_the_paper_protocol() -> None:
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.integers(0, 256, (1, 3, 24, 28)) / 255.0)
    sr = (gt + torch.from_numpy(rng.integers(-9, 10, (1, 3, 24, 28)) / 255.0)).clamp(0, 1)
    proto = Protocol.make("paper", scale=2, metrics=("psnr", "ssim"))
    got = score_pair(sr, gt, proto)
    y_sr, y_gt = rgb_to_y(sr, round_8bit=True), rgb_to_y(gt, round_8bit=True)
    assert got["psnr"] == pytest.approx(psnr(y_sr, y_gt, crop_border=2).item(), abs=1e-12)
    assert got["ssim"] == pytest.approx(ssim(y_sr, y_gt, crop_border=2).item(), abs=1e-12)
    rgb = score_pair(sr, gt, Protocol.make("rgb", scale=2))
    assert rgb["psnr"] == pytest.approx(psnr(sr, gt, crop_border=2).item(), abs=1e-12)


def test_protocol_validation() -> None:
    with pytest.raises(ConfigError, match="give the scale or the crop border"):
        Protocol.make("paper")
    assert Protocol.make("paper", crop_border=0).crop_border == 0
    with pytest.raises(ConfigError, match="unknown metric"):
        Protocol.make("paper", scale=2, metrics=("psnr", "dists"))
    with pytest.raises(ConfigError, match="protocol must be"):
        Protocol.make("ycbcr", scale=2)


def test_evaluate_pairs_values_sizes_and_modcrop(tmp_path: Path) -> None:
    gt = _img(tmp_path / "gt" / "a.png", 30, 34, seed=1)
    sr = _img(tmp_path / "sr" / "a_x2.png", 30, 34, seed=2)
    proto = Protocol.make("paper", scale=2)
    res = evaluate_pairs(pair_files(tmp_path / "sr", tmp_path / "gt"), proto, dataset="toy")
    assert res.name == "toy" and [r.image for r in res.images] == ["a"]
    assert res.images[0].values == score_pair(_tensor(sr), _tensor(gt), proto)

    _img(tmp_path / "gt" / "a.png", 33, 35, seed=1)  # GT a few pixels larger
    with pytest.raises(ImageError, match=r"size mismatch for 'a': a.png is 35x33, a_x2.png is 34x30.*--modcrop"):
        evaluate_pairs(pair_files(tmp_path / "sr", tmp_path / "gt"), proto)
    cropped = evaluate_pairs(pair_files(tmp_path / "sr", tmp_path / "gt"), proto, modcrop_gt=True)
    gt_big = np.asarray(Image.open(tmp_path / "gt" / "a.png"))
    assert cropped.images[0].values == score_pair(_tensor(sr), _tensor(gt_big[:30, :34]), proto)

    _img(tmp_path / "gt" / "a.png", 60, 34, seed=1)  # far too large: an error even with modcrop
    with pytest.raises(ImageError, match="size mismatch"):
        evaluate_pairs(pair_files(tmp_path / "sr", tmp_path / "gt"), proto, modcrop_gt=True)


def test_gray_ground_truth_scored_on_one_channel(tmp_path: Path) -> None:
    gt = _img(tmp_path / "gt" / "g.png", gray=True, seed=3)
    sr = _img(tmp_path / "sr1" / "g.png", gray=True, seed=4)
    Image.fromarray(np.repeat(sr, 3, axis=2)).save(_dir(tmp_path / "sr3") / "g.png")  # gray saved as RGB
    proto = Protocol.make("paper", scale=2)
    one = evaluate_pairs(pair_files(tmp_path / "sr1", tmp_path / "gt"), proto).images[0].values
    three = evaluate_pairs(pair_files(tmp_path / "sr3", tmp_path / "gt"), proto).images[0].values
    assert one == three
    direct = psnr(_tensor(sr), _tensor(gt), crop_border=2).item()  # the one channel, no Y conversion
    assert one["psnr"] == pytest.approx(direct, abs=1e-12)


def _dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_evaluate_model_bicubic_equals_manual_pipeline(tmp_path: Path) -> None:
    a = _img(tmp_path / "d1" / "a.png", 31, 38, seed=5)  # not a multiple of 3: modcrop needed
    _img(tmp_path / "d2" / "b.png", 27, 27, seed=6, gray=True)
    proto = Protocol.make("paper", scale=3)
    model = create_model("bicubic", scale=3)
    results = evaluate_model(model, [tmp_path / "d1", tmp_path / "d2"], proto, device="cpu")
    assert [(d.name, len(d.images)) for d in results] == [("d1", 1), ("d2", 1)]
    hr = modcrop(_tensor(a), 3)
    assert hr.shape[-2:] == (30, 36)
    lr = benchmark_lr(hr, 3)
    assert torch.equal(lr, (imresize(hr, 1 / 3).clamp(0, 1) * 255).round() / 255)
    sr = ((imresize(lr, 3).clamp(0, 1)) * 255).round() / 255
    assert results[0].images[0].values == pytest.approx(score_pair(sr, hr, proto), abs=1e-12)
    with pytest.raises(ConfigError, match="differs from the model's scale"):
        evaluate_model(model, [tmp_path / "d1"], Protocol.make("paper", scale=2))


def test_results_files_and_grid(tmp_path: Path) -> None:
    _img(tmp_path / "gt" / "a.png", seed=1)
    _img(tmp_path / "gt" / "b.png", seed=2)
    proto = Protocol.make("rgb", scale=2, metrics=("ssim", "psnr"))
    res = evaluate_model(create_model("bicubic", scale=2), [tmp_path / "gt"], proto)
    run = EvaluationResult(proto, res, model="bicubic")
    data = json.loads(run.write(tmp_path / "r.json").read_text())
    assert data["protocol"]["protocol"] == "rgb" and data["protocol"]["crop_border"] == 2
    assert data["protocol"]["model"] == "bicubic" and data["protocol"]["metrics"] == ["ssim", "psnr"]
    per = data["datasets"][0]["per_image"]
    assert [p["image"] for p in per] == ["a", "b"] and per[1]["psnr"] == res[0].images[1].values["psnr"]
    csv_text = run.write(tmp_path / "r.csv").read_text().splitlines()
    assert csv_text[0] == "dataset,image,ssim,psnr,model,scale,protocol,y_channel,crop_border"
    assert len(csv_text) == 4 and csv_text[1].startswith("gt,a,") and csv_text[1].endswith(",bicubic,2,rgb,False,2")
    mean_ssim = (res[0].images[0].values["ssim"] + res[0].images[1].values["ssim"]) / 2
    assert csv_text[3].startswith("gt,mean (2 images),")
    assert float(csv_text[3].split(",")[2]) == pytest.approx(mean_ssim)
    with pytest.raises(ConfigError, match=r"\.csv or \.json"):
        run.write(tmp_path / "r.txt")

    res[0].images[0].values["psnr"] = float("inf")
    assert json.loads(run.to_json())["datasets"][0]["per_image"][0]["psnr"] == "inf"

    hr = torch.rand(1, 3, 40, 50)
    out = write_grid([GridRow("t", [("SR\n30 dB", hr.flip(-1)), ("HR", hr)])], tmp_path / "g.png")
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.width > 2 * 192 and im.height > 192


# ------------------------------------------------------------------------------------------- CLI


def test_cli_pairing_mode(tmp_path: Path) -> None:
    gt = _img(tmp_path / "gt" / "a.png", seed=1)
    sr = _img(tmp_path / "sr" / "a_x2.png", seed=2)
    res = _cli(tmp_path / "sr", tmp_path / "gt", "--scale", "2", "--per-image", "--out", tmp_path / "r.json")
    assert res.exit_code == 0, res.output
    want = score_pair(_tensor(sr), _tensor(gt), Protocol.make("paper", scale=2))
    assert f"{want['psnr']:.2f}" in res.output and f"{want['ssim']:.4f}" in res.output
    assert "crop 2" in res.output
    assert json.loads((tmp_path / "r.json").read_text())["protocol"]["gt_dir"] == str(tmp_path / "gt")


def test_cli_model_mode_rows_metrics_grid(tmp_path: Path) -> None:
    _img(tmp_path / "setA" / "a.png", 36, 40, seed=1)
    _img(tmp_path / "setB" / "b.png", 40, 36, seed=2)
    _img(tmp_path / "setB" / "c.png", 36, 36, seed=3, gray=True)
    res = _cli(
        "--model", "bicubic", "--scale", "2", tmp_path / "setA", tmp_path / "setB",
        "--metrics", "psnr,ssim,mssim", "--grid", tmp_path / "g.png", "--device", "cpu",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "setA" in res.output and "setB" in res.output and "MSSIM" in res.output
    assert (tmp_path / "g.png").is_file()


def test_cli_usage_errors(tmp_path: Path) -> None:
    for d in ("a", "b", "c"):
        _img(tmp_path / d / "x.png")
    res = _cli(tmp_path / "a", tmp_path / "b", tmp_path / "c")
    assert res.exit_code == 2 and "SR_DIR GT_DIR" in res.output and "--compare" in res.output
    res = _cli(tmp_path / "a", tmp_path / "b", "--scale", "2", "--metrics", "psnr,dists")
    assert res.exit_code == 2 and "dists" in res.output
    res = _cli(tmp_path / "a", tmp_path / "b")  # paper protocol, no scale, no crop
    assert res.exit_code == 2 and "scale" in res.output
    res = _cli("--model", "bicubic", "--scale", "2", tmp_path / "a", "--modcrop")
    assert res.exit_code == 2


def test_cli_library_errors_are_one_line(tmp_path: Path) -> None:
    _img(tmp_path / "sr" / "a.png")
    _img(tmp_path / "gt" / "b.png")
    code, err = _run_main(["evaluate", str(tmp_path / "sr"), str(tmp_path / "gt"), "--scale", "2", "--quiet"])
    assert code == 1 and "error:" in err and "a.png" in err and "b.png" in err and "Traceback" not in err


def test_cli_warns_for_gray_sr_against_colour_ground_truth(tmp_path: Path) -> None:
    _img(tmp_path / "gt" / "a.png", seed=1)
    _img(tmp_path / "sr" / "a_x2.png", seed=1, gray=True)
    code, err = _run_main(["evaluate", str(tmp_path / "sr"), str(tmp_path / "gt"), "--scale", "2"])
    assert code == 0, err
    lines = [line for line in err.splitlines() if "warning" in line]
    assert len(lines) == 1 and "a_x2.png" in lines[0] and "gray" in lines[0] and "colour" in lines[0]


def test_cli_checks_out_suffix_before_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sruscale.evaluation.protocol as protocol

    _img(tmp_path / "gt" / "a.png", seed=1)
    _img(tmp_path / "sr" / "a.png", seed=2)

    def no_scoring(*args: object, **kwargs: object) -> None:
        raise AssertionError("scored before checking --out")

    monkeypatch.setattr(protocol, "score_pair", no_scoring)
    res = _cli(tmp_path / "sr", tmp_path / "gt", "--scale", "2", "--out", tmp_path / "r.txt")
    assert res.exit_code == 2 and ".csv or .json" in res.output and "r.txt" in res.output
    res = _cli("--model", "bicubic", "--scale", "2", tmp_path / "gt", "--out", tmp_path / "r.txt")
    assert res.exit_code == 2 and ".csv or .json" in res.output


@pytest.mark.parametrize("mode", ["pairs", "model"])
def test_cli_unreadable_file_does_not_abort(tmp_path: Path, mode: str) -> None:
    _img(tmp_path / "gt" / "a.png", seed=1)
    _img(tmp_path / "gt" / "c.png", seed=3)
    _img(tmp_path / "sr" / "a.png", seed=2)
    _img(tmp_path / "sr" / "c.png", seed=4)
    broken = tmp_path / ("sr" if mode == "pairs" else "gt") / "b.png"
    broken.write_bytes(b"not a png")
    if mode == "pairs":
        (tmp_path / "gt" / "b.png").write_bytes(b"also not a png")
    out = tmp_path / "r.json"
    args = [str(tmp_path / "sr"), str(tmp_path / "gt")] if mode == "pairs" else ["-m", "bicubic", str(tmp_path / "gt")]
    code, err = _run_main(["evaluate", *args, "--scale", "2", "--out", str(out), "--quiet"])
    assert code == 1 and "error:" in err and "b.png" in err and "1 of 3 images" in err and "Traceback" not in err
    data = json.loads(out.read_text())["datasets"][0]
    assert [p["image"] for p in data["per_image"]] == ["a", "c"] and data["images"] == 2
    assert [Path(f["file"]).name for f in data["failed"]] == ["b.png"]


# ------------------------------------------------------------------------------------------- published numbers

_PUBLISHED = {  # bicubic, Y channel, crop = scale: (PSNR, SSIM)
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
}


def _check_published(shared_data: Path, tmp_path: Path, scale: int, sets: tuple[str, ...]) -> None:
    out = tmp_path / f"x{scale}.json"
    res = _cli("--model", "bicubic", "--scale", scale, *(shared_data / s for s in sets), "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    for d in json.loads(out.read_text())["datasets"]:
        want_psnr, want_ssim = _PUBLISHED[(d["name"], scale)]
        assert d["mean"]["psnr"] == pytest.approx(want_psnr, abs=0.02), d["name"]
        assert d["mean"]["ssim"] == pytest.approx(want_ssim, abs=0.001), d["name"]


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3])
def test_published_bicubic_set5(shared_data: Path, tmp_path: Path, scale: int) -> None:
    _check_published(shared_data, tmp_path, scale, ("Set5",))


@pytest.mark.data
def test_published_bicubic_set5_set14_x4(shared_data: Path, tmp_path: Path) -> None:
    _check_published(shared_data, tmp_path, 4, ("Set5", "Set14"))  # Set14 includes gray bridge.png


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3])
def test_published_bicubic_set14(shared_data: Path, tmp_path: Path, scale: int) -> None:
    _check_published(shared_data, tmp_path, scale, ("Set14",))
