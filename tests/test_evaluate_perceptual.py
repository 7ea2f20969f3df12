"""`sruscale evaluate` with the perceptual metrics: directions, PI, fit-niqe, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.errors import ConfigError
from sruscale.evaluation import METRICS, Protocol
from sruscale.evaluation.perception import load_ma_scores, load_scorer, perceptual_index, plot_points_from_results
from sruscale.metrics.niqe import load_niqe_model

runner = CliRunner()


def _cli(*args: object):  # noqa: ANN202
    return runner.invoke(app, ["evaluate", *map(str, args)], env={"COLUMNS": "240"})


def _texture(path: Path, seed: int, size: int = 128, blur: int = 1) -> None:
    rng = np.random.default_rng(seed)
    small = rng.random((size // 8, size // 8, 3))
    img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.float64) + rng.normal(0, 6, (size, size, 3))
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if blur > 1:
        img = img.resize((size // blur, size // blur), Image.Resampling.BICUBIC).resize((size, size))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    for i, name in enumerate(("a", "b")):
        _texture(tmp_path / "gt" / f"{name}.png", seed=i)
        _texture(tmp_path / "sr" / f"{name}_x4.png", seed=i, blur=4)
    return tmp_path / "sr", tmp_path / "gt"


def test_metric_table_covers_every_metric() -> None:
    from sruscale.metrics import METRICS as FUNCTIONS

    assert set(METRICS) == set(FUNCTIONS) | {"lpips", "niqe", "piqe", "brisque", "pi"}
    assert [m for m, i in METRICS.items() if not i.higher_is_better] == ["lpips", "niqe", "piqe", "brisque", "pi"]
    kinds = {m: i.kind for m, i in METRICS.items() if i.kind != "full-reference"}
    assert kinds == {"niqe": "no-reference", "piqe": "no-reference", "brisque": "no-reference", "pi": "derived"}
    assert [m for m, i in METRICS.items() if i.rgb] == ["lpips", "piqe", "brisque"]


def test_protocol_checks_options_and_pi() -> None:
    with pytest.raises(ConfigError, match="pi is computed from niqe"):
        Protocol.make("paper", scale=4, metrics=("psnr", "pi"))
    with pytest.raises(ConfigError, match="niqe takes the options model; got net"):
        Protocol.make("paper", scale=4, metrics=("niqe",), options={"niqe": {"net": "alex"}})
    with pytest.raises(ConfigError, match="options for unknown metric 'dists'"):
        Protocol.make("paper", scale=4, options={"dists": {}})
    proto = Protocol.make("paper", scale=4, metrics=("niqe",), options={"niqe": {"model": "m.npz"}})
    assert proto.as_dict()["lower_is_better"] == {"niqe": True}


def test_help_lists_every_metric_with_direction() -> None:
    res = _cli("--help")
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for name, info in METRICS.items():
        assert f"{name} {info.arrow}" in text
    assert "fit-niqe" in text and "--ma-scores" in text and "never makes up a PI" in text


def test_niqe_piqe_pi_table_json_csv_plot(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr, gt = folders
    (tmp_path / "ma.csv").write_text("image,ma\na_x4.png,7.5\nb,6.0\n")
    out, csv_out, plot = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "pd.png"
    args = [sr, gt, "--scale", "4", "--metrics", "psnr,niqe,piqe,pi", "--ma-scores", tmp_path / "ma.csv"]
    res = _cli(*args, "--out", out, "--plot", plot)
    assert res.exit_code == 0, res.output
    assert "NIQE ↓" in res.output and "PSNR (dB) ↑" in res.output and "PI ↓" in res.output
    data = json.loads(out.read_text())
    assert data["protocol"]["lower_is_better"] == {"psnr": False, "niqe": True, "piqe": True, "pi": True}
    rows = {r["image"]: r for r in data["datasets"][0]["per_image"]}
    assert rows["a"]["pi"] == pytest.approx(((10 - 7.5) + rows["a"]["niqe"]) / 2)
    assert rows["b"]["pi"] == pytest.approx(((10 - 6.0) + rows["b"]["niqe"]) / 2)
    assert 0 <= rows["a"]["piqe"] <= 100
    assert Image.open(plot).format == "PNG"
    res = _cli(*args, "--out", csv_out)
    header, first = csv_out.read_text().splitlines()[:2]
    assert header.endswith(",lower_is_better") and first.endswith(",niqe;piqe;pi")


def test_pi_never_from_a_stand_in(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr, gt = folders
    res = _cli(sr, gt, "--scale", "4", "--metrics", "psnr,niqe,pi")
    assert res.exit_code == 2 and "Ma et al. scores" in res.output
    (tmp_path / "ma.csv").write_text("image,ma\na,7.5\n")
    res = _cli(sr, gt, "--scale", "4", "--metrics", "niqe,pi", "--ma-scores", tmp_path / "ma.csv")
    assert res.exit_code == 1 and "no Ma score for: b" in " ".join(str(res.exception).split())
    res = _cli(sr, gt, "--scale", "4", "--metrics", "psnr,brisque")
    assert res.exit_code == 2 and "--brisque-model" in res.output


def test_ma_scorer_plugin(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr, gt = folders
    plug = tmp_path / "ma_plugin.py"
    plug.write_text("def score(x):\n    return 5.0 + float(x.mean())\n")
    out = tmp_path / "r.json"
    res = _cli(sr, gt, "--scale", "4", "--metrics", "niqe,pi", "--ma-scorer", f"{plug}:score", "--out", out)
    assert res.exit_code == 0, res.output
    row = json.loads(out.read_text())["datasets"][0]["per_image"][0]
    assert 5.0 < 10 - (2 * row["pi"] - row["niqe"]) < 6.0  # Ma = 5 + mean in (0, 1)
    with pytest.raises(ConfigError, match="MODULE:FUNCTION"):
        load_scorer("nocolon")
    with pytest.raises(ConfigError, match="no callable"):
        load_scorer(f"{plug}:missing")


def test_fit_niqe_cli_and_use(folders: tuple[Path, Path], tmp_path: Path) -> None:
    sr, gt = folders
    for i in range(3):
        _texture(tmp_path / "pristine" / f"p{i}.png", seed=10 + i, size=200)
    model = tmp_path / "m.npz"
    res = _cli("fit-niqe", tmp_path / "pristine", "-o", model)
    assert res.exit_code == 0, res.output
    loaded = load_niqe_model(model)
    assert loaded.card["images"] == 3 and loaded.mu.shape == (36,)
    out = tmp_path / "r.json"
    res = _cli(sr, gt, "--scale", "4", "--metrics", "niqe", "--niqe-model", model, "--out", out)
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["datasets"][0]["mean"]["niqe"] > 0
    assert _cli("fit-niqe", tmp_path / "pristine", "-o", tmp_path / "m.txt").exit_code == 2


def test_plot_subcommand(tmp_path: Path) -> None:
    for name, niqe_v, psnr_v in (("bicubic", 7.0, 28.4), ("fsrcnn", 6.1, 30.5)):
        data = {"protocol": {"model": name}, "datasets": [{"name": "Set5", "mean": {"psnr": psnr_v, "niqe": niqe_v}}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    files = [tmp_path / "bicubic.json", tmp_path / "fsrcnn.json"]
    assert plot_points_from_results(files, x_metric="niqe", y_metric="psnr") == [
        ("bicubic", 7.0, 28.4),
        ("fsrcnn", 6.1, 30.5),
    ]
    res = _cli("plot", *files, "-o", tmp_path / "pd.png")
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(tmp_path / "pd.png").convert("RGB"))
    assert img.shape == (480, 640, 3) and (img != 255).any()
    with pytest.raises(ConfigError, match="has no pi"):
        plot_points_from_results(files, x_metric="pi", y_metric="psnr")


def test_pi_formula_and_ma_file(tmp_path: Path) -> None:
    assert perceptual_index(6.0, 4.0) == 4.0
    with pytest.raises(ConfigError, match=r"\[0, 10\]"):
        perceptual_index(11.0, 4.0)
    (tmp_path / "m.csv").write_text("image,ma\nx.png,3\nx,4\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_ma_scores(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("name,score\n")
    with pytest.raises(ConfigError, match="image,ma"):
        load_ma_scores(tmp_path / "m.csv")
