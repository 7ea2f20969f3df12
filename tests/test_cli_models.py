"""`sruscale models`: one row per registered architecture, with measured cost."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.models import list_models
from sruscale.weights import describe_models


def test_models_command_lists_every_architecture() -> None:
    result = CliRunner().invoke(app, ["models", "--wide"])
    assert result.exit_code == 0, result.output
    for name in list_models():
        assert name in result.output
    assert "43.1M" in result.output  # EDSR x4 at paper size
    assert "GFLOPs/MP" in result.output


def test_describe_models_rows() -> None:
    rows = {r.name: r for r in describe_models(scale=3)}
    assert set(rows) == set(list_models())
    assert rows["lapsrn"].scale == 8 and rows["edsr"].scale == 3  # unsupported x3 -> largest scale
    assert rows["fsrcnn"].parameters == 12_809 and rows["fsrcnn"].in_channels == 1
    assert rows["bicubic"].gflops_per_mp == 0.0
    assert rows["vdsr"].gflops_per_mp > rows["srcnn"].gflops_per_mp > rows["fsrcnn"].gflops_per_mp > 0


def test_models_command_shows_bundled_scales_and_roles() -> None:
    """The architecture table says at which scales weights are bundled; the weights table names
    each file's role (the default/best and fast picks per scale, the realworld family)."""
    from sruscale.weights._manifest import default_model_name, list_weights

    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    entries = list_weights()
    for e in entries:
        assert e.name in result.output
    for scale in {e.scale for e in entries if not e.family}:
        row = next(line for line in result.output.splitlines() if default_model_name(scale) in line)
        assert "default, best" in row


def test_models_cost_is_the_inference_form() -> None:
    """Re-parameterised models are measured folded, as they ship (not 0 GFLOPs, not the training branches)."""
    rows = {r.name: r for r in describe_models(scale=4)}
    assert rows["plainsr"].gflops_per_mp > 1.0
    assert rows["plainsr"].parameters < 100_000  # folded: 12 plain 3x3 convs x 32 channels


def test_models_fits_80_columns_and_runs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default listing reads the manifest only (no architecture is built) and fits 80 columns."""
    import sruscale.weights._describe as describe

    def boom(**_: object) -> None:
        raise AssertionError("the default listing must not measure architectures")

    monkeypatch.setattr(describe, "describe_models", boom)
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "plainsr-x4" in result.output and "default, best" in result.output


def test_models_card_of_a_bundled_model_and_an_architecture() -> None:
    card = CliRunner().invoke(app, ["models", "plainsr-x4"])
    assert card.exit_code == 0, card.output
    assert "name: plainsr-x4 (x4, plainsr)" in card.output and "recipe: train/plainsr_x4.toml" in card.output
    arch = CliRunner().invoke(app, ["models", "fsrcnn"])
    assert arch.exit_code == 0 and "12.8k parameters" in arch.output
    bad = CliRunner().invoke(app, ["models", "nope"])
    assert bad.exit_code == 2 and "unknown model 'nope'" in bad.output


def test_models_lists_measured_speed_of_every_bundled_model() -> None:
    """MP/s comes from benchmarks/model_speed.py (sruscale/weights/speed.toml), stamped with the machine;
    every bundled model has a figure (rerun the script after bundling)."""
    from sruscale.weights._manifest import list_weights, measured_speed

    stamp, speed = measured_speed()
    assert "threads" in stamp and "torch" in stamp
    missing = [e.name for e in list_weights() if not e.source and e.name not in speed]
    assert not missing, f"no measured speed for {missing}: run benchmarks/model_speed.py"
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    row = next(line for line in result.output.splitlines() if line.split()[:1] == ["plainsr-x2"])
    assert f"{speed['plainsr-x2']:.2f}" in row
    assert "MP/s" in result.output and "measured" in result.output
