"""Every shipped recipe in ``train/`` runs from a clean checkout: 2 iterations on a tiny copy of the data.

The recipes are copied into a temporary project (``pyproject.toml``, ``train/``, the repository's
``weights/``), and run in the order their ``init_weights`` need (a stage that starts from
``runs/<stage>/best.safetensors`` runs after that stage). The data folder holds two synthetic images
per set the recipes name, so the test needs neither ``../shared/data`` nor anything a script leaves
behind. Perceptual terms get a torchvision-format VGG19 file with random weights; the distillation
recipes' teachers are pretrained networks of registry packages (skipped without it, failed in CI).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sruscale.training import fit, load_recipe
from sruscale.weights._pretrained import pretrained_rows

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "train").glob("*.toml"))
STAGE = re.compile(r"^runs/([^/]+)/")


def _order(recipes: list[Path]) -> list[Path]:
    """Recipes with every ``runs/<stem>/`` dependency first."""
    by_stem = {r.stem: r for r in recipes}
    done: list[Path] = []

    def visit(r: Path) -> None:
        if r in done:
            return
        init = tomllib.loads(r.read_text())["model"].get("init_weights", "")
        m = STAGE.match(init)
        if m:
            visit(by_stem[m.group(1)])
        done.append(r)

    for r in recipes:
        visit(r)
    return done


def _image(path: Path, seed: int, size: int = 256) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], -1) * 0.4 + 0.5
    noise = rng.normal(0, 0.05, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
    Image.fromarray((np.clip(base + noise, 0, 1) * 255).round().astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text("")
    shutil.copytree(REPO / "train", root / "train", ignore=shutil.ignore_patterns("logs", "*.py", "*.md"))
    (root / "weights").symlink_to(REPO / "weights")
    data = root / "data"
    for k, name in enumerate(("T91", "BSD200", "Set5")):
        (data / name).mkdir(parents=True)
        for i in range(2):
            _image(data / name / f"img{i}.png", seed=10 * k + i)
    from sruscale.metrics.features import VGG19Features

    torch.save(VGG19Features(layers=["relu5_4"]).state_dict(), root / "vgg19.pth")
    return root


def test_every_recipe_is_covered() -> None:
    assert len(RECIPES) >= 29 and all(r in _order(RECIPES) for r in RECIPES)


@pytest.mark.slow  # about 3 CPU-minutes; .ci/run runs it
@pytest.mark.parametrize("recipe", _order(RECIPES), ids=lambda p: p.stem)
def test_recipe_runs_two_iterations(recipe: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project / "train" / recipe.name
    config = load_recipe(path, overrides={"iterations": 2, "data.batch_size": 2})
    if config.data.teacher:
        monkeypatch.setenv("SRUSCALE_PRETRAINED", "1")
        package = next((r.package for r in pretrained_rows() if r.name == config.data.teacher), None)
        try:
            if package is not None:  # a registry network, not a bundled model
                importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            if os.environ.get("SRUSCALE_REQUIRE_NCNN"):
                raise
            pytest.skip(f"the teacher needs the registry package {package}")
    out = project / "runs" / recipe.stem
    result = fit(config, out_dir=out, data_root=project / "data", recipe_path=path,
                 backbone_weights=project / "vgg19.pth")  # fmt: skip
    assert result.complete and result.iteration == 2
    assert (out / "last.safetensors").is_file() and (out / "best.safetensors").is_file()
