"""Every bundled weights file, re-scored on Set5 with the one benchmark protocol, matches the
``set5_psnr`` of ``weights/manifest.toml`` and the scores in its own card (skipped without ../shared/data).

Driven by the manifest: a file added with ``train/bundle.py`` is covered without editing this test.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sruscale.evaluation import Protocol, evaluate_model
from sruscale.weights import load_model
from sruscale.weights._files import read_metadata
from sruscale.weights._manifest import WeightsEntry, list_weights, verify

REPO = Path(__file__).resolve().parents[1]
ENTRIES = list_weights(REPO / "weights")


def test_manifest_lists_every_weights_file() -> None:
    on_disk = sorted(p.name for p in (REPO / "weights").glob("*.safetensors"))
    assert sorted(e.file.name for e in ENTRIES) == on_disk
    assert all(e.set5_psnr is not None for e in ENTRIES)


@pytest.mark.data
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_bundled_weights_rescore_on_set5(entry: WeightsEntry, shared_data: Path) -> None:
    model = load_model(weights=verify(entry))
    assert model.scale == entry.scale
    result = evaluate_model(model, [shared_data / "Set5"], Protocol.make("paper", scale=entry.scale))[0]
    assert entry.set5_psnr is not None
    assert abs(result.mean("psnr") - entry.set5_psnr) < 0.005
    card = read_metadata(entry.file)["card"]
    assert card["benchmarks"]["scores"]["Set5"]["psnr"] == entry.set5_psnr
    assert abs(card["benchmarks"]["scores"]["Set5"]["ssim"] - result.mean("ssim")) < 0.00005 + 1e-12


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.recipe], ids=[e.name for e in ENTRIES if e.recipe])
def test_recipe_in_the_repo_gives_the_cards_training_data(entry: WeightsEntry) -> None:
    """The recipe a manifest entry names still describes the data its file was trained on (images,
    crops, degradation; a pipeline file the recipe references is inlined as the card holds it)."""
    from sruscale.training.config import DataConfig, config_to_dict, load_recipe, project_root, resolve_data_root

    card = read_metadata(entry.file)["card"]["recipe"]["config"]
    config = load_recipe(REPO / entry.recipe)
    now = config_to_dict(config)["data"]
    root = resolve_data_root(config, project_root(REPO / entry.recipe))
    old_root = REPO / card.get("data_root", "")  # older cards: data paths relative to the project root
    for key in ("train_hr", "train_lr", "teacher_lr"):
        now[key] = [str((root / p).resolve()) for p in now[key]]
        card["data"][key] = [str((old_root / p).resolve()) for p in card["data"].get(key, [])]
    defaults = config_to_dict(config)["data"] | {  # as config_to_dict writes them: tuples as lists
        f.name: list(f.default) if isinstance(f.default, tuple) else f.default
        for f in dataclasses.fields(DataConfig) if f.name not in ("train_hr", "train_lr", "degradation")
    }
    assert now == {k: card["data"].get(k, defaults[k]) for k in now}
