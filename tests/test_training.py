"""The trainer: recipe parsing, schedules, 3-iteration fits per framework, GAN, resume, DDP, CLI."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _model_zoo import SMALL_HPARAMS
from _torchvision_fakes import fake_state
from PIL import Image
from safetensors.torch import load_file

from sruscale import losses as L
from sruscale.distributed import DistInfo
from sruscale.errors import CheckpointError, ConfigError
from sruscale.models import REGISTRY, create_model, list_models
from sruscale.training import (
    TrainConfig,
    fit,
    load_recipe,
    load_val_images,
    lr_at,
    parse_config,
    validate,
    with_overrides,
)
from sruscale.training.components import _make_degradation
from sruscale.training.config import config_to_dict
from sruscale.training.loop import _build_trainables
from sruscale.training.steps import _curriculum, _Parts, _train_step
from sruscale.weights import load_model
from sruscale.weights._files import read_metadata

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _one_thread():
    """Training tests are tiny; 2 OpenMP threads on a busy 2-core machine are ~100x slower than 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)




def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.integers(0, 256, size=(h // 4, w // 4, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hr/`` (5 images 40x40..48x44) and ``val/`` (2 images 32x32) of smooth random content."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, sizes in (("hr", [(40, 40), (48, 44), (44, 48), (40, 48), (48, 48)]), ("val", [(32, 32), (32, 36)])):
        (root / name).mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(_smooth(rng, h, w)).save(root / name / f"{i}.png")
    return root


def _recipe(images: Path, **sections: Any) -> dict[str, Any]:
    """A tiny FSRCNN x2 recipe on the synthetic images; ``sections`` replace/extend top-level keys."""
    base: dict[str, Any] = {
        "iterations": 3,
        "seed": 3,
        "model": {"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 1, "d": 8, "s": 4, "m": 1}},
        "data": {"train_hr": [str(images / "hr")], "patch_size": 8, "batch_size": 2},
        "optim": {"lr": 1e-3},
        "loss": [{"type": "l1"}],
        "val": {"hr": str(images / "val"), "every": 2},
        "checkpoint": {"every": 2, "keep": 2},
        "log": {"every": 1, "tensorboard": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def _fit(cfg: dict[str, Any], out: Path, **kw: Any):
    return fit(parse_config(copy.deepcopy(cfg)), out_dir=out, device="cpu", **kw)


# --------------------------------------------------------------------------- config


def test_parse_defaults_and_types(images: Path) -> None:
    c = parse_config(_recipe(images))
    assert isinstance(c, TrainConfig)
    assert c.data.train_hr == (str(images / "hr"),) and c.optim.betas == (0.9, 0.999)
    assert c.schedule.name == "constant" and c.gan is None and c.loss == (L.PixelTerm(type="l1", name="l1"),)
    with pytest.raises(dataclasses_frozen_error()):
        c.iterations = 5  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"optim": {"lrr": 1.0}}, r"^optim\.lrr: unknown key \(did you mean 'lr'\?\)$"),
        ({"itrations": 3}, r"^itrations: unknown key \(did you mean 'iterations'\?\)$"),
        ({"data": {"batch_size": "16"}}, r"^data\.batch_size: expected int, got str '16'$"),
        ({"data": {"batch_size": True}}, r"^data\.batch_size: expected int, got bool True$"),
        ({"data": {"flip": 1}}, r"^data\.flip: expected bool, got int 1$"),
        ({"optim": {"betas": [0.9]}}, r"^optim\.betas: expected an array of 2 values, got 1$"),
        ({"optim": {"betas": [0.9, "x"]}}, r"^optim\.betas\[1\]: expected float, got str 'x'$"),
        ({"schedule": {"name": "cosin"}}, r"^schedule\.name: expected one of 'constant', 'cosine', 'multistep'"),
        ({"model": {"scale": 2}}, r"^model\.name: required key missing$"),
        ({"iterations": 0}, r"^iterations: expected a positive value, got 0$"),
        ({"data": {"train_hr": []}}, r"^data\.train_hr: expected at least one folder$"),
        ({"data": {"train_lr": ["a", "b"]}}, r"^data\.train_lr: expected one folder per data\.train_hr folder"),
        ({"ema_decay": 1.0}, r"^ema_decay: expected a value in \[0, 1\)"),
        ({"schedule": {"milestones": [5, 2]}}, r"^schedule\.milestones: expected increasing"),
        ({"val": 3}, r"^val: expected table, got int 3$"),
        ({"gan": {"lr": "fast"}}, r"^gan\.lr: expected float, got str 'fast'$"),
        ({"loss": [{"type": "l1", "y_chanel": True}]},
         r"^loss\[0\]\.y_chanel: unknown key for loss type 'l1' \(did you mean 'y_channel'\?\)$"),
        ({"loss": [{"type": "adversarial"}]}, r"^loss: an adversarial term needs a \[gan\] section"),
        ({"gan": {}}, r'^gan: needs a \[\[loss\]\] term with type = "adversarial"$'),
        ({"loss": [{"type": "adversarial"}], "gan": {"start": 5}},
         r"^gan\.start: 5 iterations run before the adversarial term starts: expected a \[\[loss\]\] term besides it"),
        ({"loss": [{"type": "l1"}, {"type": "adversarial"}], "gan": {}, "progressive": {}},
         r"^gan: adversarial training of progressive \(pyramid\) models is not supported$"),
        ({"data": {"teacher": "x", "teacher_variants": 2}},
         r"^data\.teacher_variants: 2 LR variants per image need a teacher and a degradation pipeline"),
        ({"data": {"teacher": "x", "teacher_seed": 4}},
         r"^data\.teacher_seed: 4 seeds the teacher's degraded LR images: expected a teacher and a degradation"),
        ({"data": {"teacher": "x", "train_lr": ["lr"], "degradation": "dn"}},
         r"^data\.teacher: paired data\.train_lr files and a data\.degradation pipeline both give"),
        ({"loss": [{"type": "l1"}, {"type": "fft", "patch": 32}]},  # patch_size 8 at x2: 16 px HR crops
         r"^loss\[1\]\.patch: 32 px tiles do not fit the HR crop \(data\.patch_size x scale = 16 px\)"),
    ],
)
def test_parse_errors_name_the_key(images: Path, patch: dict[str, Any], message: str) -> None:
    cfg = _recipe(images)
    for key, value in patch.items():
        if key == "model" and "name" not in value:
            cfg["model"] = value
        elif isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    with pytest.raises(ConfigError, match=message):
        parse_config(cfg)


def test_load_recipe_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read recipe"):
        load_recipe(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("iterations = [")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_recipe(tmp_path / "bad.toml")
    text = 'iterations = 3\n[model]\nname = "fsrcnn"\nscale = 2\n[data]\ntrain_hr = ["x"]\n[optim]\nlrr = 1.0\n'
    (tmp_path / "typo.toml").write_text(text)
    with pytest.raises(ConfigError, match=r"typo.toml: optim\.lrr: unknown key \(did you mean 'lr'\?\)"):
        load_recipe(tmp_path / "typo.toml")


def test_recipe_degradation_from_a_pipeline_file(tmp_path: Path) -> None:
    """``degradation = "file.toml"`` (relative to the project root) is inlined as its table."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "train").mkdir()
    recipe = tmp_path / "train" / "r.toml"  # the path resolves against the project root, not the recipe's folder
    (tmp_path / "pipe.toml").write_text('name = "mine"\n[[ops]]\nop = "resize"\nrelative_to = "target"\n')
    base = 'iterations = 3\n[model]\nname = "fsrcnn"\nscale = 2\n[data]\ntrain_hr = ["x"]\n'
    recipe.write_text(base + 'degradation = "pipe.toml"\n')
    spec = load_recipe(recipe).data.degradation
    assert spec == {"name": "mine", "ops": [{"op": "resize", "relative_to": "target"}]}
    assert _make_degradation(spec, 2) is not None
    with pytest.raises(ConfigError, match="pipeline file 'pipe.toml' was not read"):
        _make_degradation("pipe.toml", 2)  # a config built in code: not inlined
    recipe.write_text(base + 'degradation = "gone.toml"\n')
    with pytest.raises(ConfigError, match=r"r.toml: data.degradation: cannot read pipeline file .*gone.toml"):
        load_recipe(recipe)
    (tmp_path / "pipe.toml").write_text("ops = [")
    recipe.write_text(base + 'degradation = "pipe.toml"\n')
    with pytest.raises(ConfigError, match=r"data.degradation: .*pipe.toml: invalid TOML"):
        load_recipe(recipe)


#: the shipped training recipes (train/degrade/ holds degradation pipelines, not recipes)
RECIPES = sorted(p for p in (REPO / "train").rglob("*.toml") if "degrade" not in p.relative_to(REPO / "train").parts)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-layout VGG19 file (constants, a few kB) for recipes with a perceptual term."""
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(fake_state("vgg19"), path)
    return path


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_parse_and_build(recipe: Path, vgg_file: Path) -> None:
    config = load_recipe(recipe)
    model = create_model(config.model.name, scale=config.model.scale,
                         **{k: tuple(v) if isinstance(v, list) else v for k, v in config.model.hparams.items()})
    assert model.scale == config.model.scale
    assert L.build_loss(config.loss, backbone_weights=vgg_file).names == tuple(t.name for t in config.loss)
    # the recorded config (config.json, model card, checkpoint) is JSON and parses back to itself (resume compares it)
    record = config_to_dict(config)
    assert json.loads(json.dumps(record)) == record and config_to_dict(parse_config(record)) == record
    init = config.model.init_weights
    if init.startswith("weights/"):  # starts from a bundled file: it ships and fits the recipe's model
        from sruscale.weights import load_model

        assert (REPO / init).is_file(), f"{recipe.name}: init_weights {init} is not bundled"
        model.init_from(load_model(weights=REPO / init).state_dict(), partial=config.model.init_partial)


class _LinearDisc(torch.nn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape[1:]) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1, keepdim=True)


def test_shipped_recipe_losses_equal_independently_built_ones(vgg_file: Path) -> None:
    """The recipes' losses (parsed and built from the typed terms) against the loss functions called by hand."""
    from sruscale.color import rgb_to_y

    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 24, 24, generator=g), torch.rand(2, 3, 24, 24, generator=g)
    disc = _LinearDisc((2, 3, 24, 24))
    vgg = L.load_backbone("vgg19", layers=["relu5_4"], weights_path=vgg_file)
    expected = {
        "realworld_x2.toml": L.mse_loss(sr, hr) + 3.0 * L.mse_loss(rgb_to_y(sr), rgb_to_y(hr)),
        "lapsrn_x4.toml": L.charbonnier_loss(sr, hr, eps=1e-3),
        "espcn_x3.toml": L.mse_loss(sr, hr),
        "edsr-baseline_gan_x4.toml": 0.01 * L.l1_loss(sr, hr)
        + L.perceptual_loss(sr, hr, extractor=vgg, layer_weights={"relu5_4": 1.0})
        + 0.005 * L.generator_adversarial_loss(disc, sr, hr, kind="ragan"),
    }
    for name, value in expected.items():
        loss = L.build_loss(load_recipe(REPO / "train" / name).loss, backbone_weights=vgg_file)
        torch.testing.assert_close(loss(sr, hr, disc=disc)[0], value, msg=name)


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ('type = "l1"\nwieght = 1.0', r"loss\[0\]\.wieght: unknown key for loss type 'l1' \(did you mean 'weight'"),
        ('type = "charbonnier"\neps = "x"', r"loss\[0\]\.eps: expected a positive number, got 'x'$"),
        ('type = "charbonnier"\neps = 0.0', r"loss\[0\]\.eps: expected a positive number, got 0\.0$"),
        ('type = "l3"', r"loss\[0\]\.type: unknown loss type 'l3'; choose from \['adversarial', "),
        ('type = "perceptual"\nlayers = ["relu5_5"]', r"loss\[0\]\.layers: unknown vgg19 layer 'relu5_5'"),
    ],
)  # fmt: skip
def test_loss_errors_come_before_the_data(tmp_path: Path, loss: str, message: str) -> None:
    """load_recipe rejects a bad [[loss]] table; the missing data folder would only fail later, in fit()."""
    base = 'iterations = 3\n[model]\nname = "fsrcnn"\nscale = 2\n[data]\ntrain_hr = ["nowhere"]\n[[loss]]\n'
    recipe = tmp_path / "r.toml"
    recipe.write_text(base + loss + "\n")
    with pytest.raises(ConfigError, match=r"r\.toml: " + message):
        load_recipe(recipe)
    recipe.write_text(base + 'type = "l1"\n')
    with pytest.raises(ConfigError, match=r"data\.train_hr\[0\]: folder not found"):
        fit(load_recipe(recipe), out_dir=tmp_path / "run", device="cpu", data_root=tmp_path)


def test_plain_and_full_loss_share_the_backbone(vgg_file: Path) -> None:
    """Before gan.start the trainer uses the loss without its adversarial term: the same modules, one VGG."""
    config = load_recipe(REPO / "train" / "edsr-baseline_gan_x4.toml")
    model = create_model(config.model.name, scale=config.model.scale, **config.model.hparams)
    _, _, parts = _build_trainables(config, model, torch.device("cpu"), DistInfo(), vgg_file)
    assert parts.loss.names == ("l1", "perceptual", "adversarial") and parts.plain_loss.names == ("l1", "perceptual")
    assert parts.plain_loss.terms[1] is parts.loss.terms[1]
    extractors = {id(m) for loss in (parts.loss, parts.plain_loss) for m in loss.modules()
                  if isinstance(m, L.FeatureExtractor)}  # fmt: skip
    assert len(extractors) == 1


def test_overrides(images: Path) -> None:
    c = with_overrides(parse_config(_recipe(images)), iterations=10, batch_size=4, lr=0.5, workers=1)
    assert (c.iterations, c.data.batch_size, c.optim.lr, c.data.workers) == (10, 4, 0.5, 1)
    with pytest.raises(ConfigError, match="data.batch_size: expected a positive value"):
        with_overrides(c, batch_size=0)


# --------------------------------------------------------------------------- schedule


def test_lr_schedules(images: Path) -> None:
    cos = parse_config(_recipe(images, iterations=100, optim={"lr": 1.0},
                               schedule={"name": "cosine", "warmup": 10, "min_lr": 0.1}))
    assert [lr_at(i, cos) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert lr_at(10, cos) == pytest.approx(1.0)
    assert lr_at(55, cos) == pytest.approx(0.55)
    assert lr_at(100, cos) == pytest.approx(0.1) and lr_at(500, cos) == pytest.approx(0.1)
    ms = parse_config(_recipe(images, iterations=100, optim={"lr": 1.0},
                              schedule={"name": "multistep", "milestones": [10, 20], "gamma": 0.5}))
    assert [lr_at(i, ms) for i in (0, 9, 10, 19, 20, 99)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    const = parse_config(_recipe(images, optim={"lr": 0.3}))
    assert lr_at(0, const) == lr_at(2, const) == 0.3


def test_curriculum_levels_and_blend() -> None:
    from sruscale.training import ProgressiveConfig

    p = ProgressiveConfig(curriculum=(10, 20), blend=4)
    assert _curriculum(p, 0, 3) == (1, 1.0)
    assert _curriculum(p, 10, 3) == (2, 0.25)
    assert _curriculum(p, 13, 3) == (2, 1.0)
    assert _curriculum(p, 21, 3) == (3, 0.5)
    assert _curriculum(p, 21, 2) == (2, 1.0)
    assert _curriculum(ProgressiveConfig(), 0, 3) == (1, 1.0)


# --------------------------------------------------------------------------- fit


def _framework_cases() -> list[Any]:
    """Every trainable registered model (small hyperparameters; about 0.3 s each)."""
    cases = []
    for name in list_models():
        cls = REGISTRY[name]
        if name == "bicubic":
            continue
        scale = 4 if cls.framework == "progressive" else 2
        if scale not in cls.scales:
            scale = cls.scales[0]
        hp = {k: list(v) if isinstance(v, tuple) else v for k, v in SMALL_HPARAMS.get(name, {}).items()}
        cases.append(pytest.param(name, scale, hp, id=f"{cls.framework}-{name}"))
    return cases


@pytest.mark.parametrize(("name", "scale", "hparams"), _framework_cases())
def test_fit_three_iterations_every_model(images: Path, tmp_path: Path, name: str, scale: int, hparams: dict) -> None:
    cls = REGISTRY[name]
    patch = max(8, cls.minimum, cls.multiple_of)
    extra: dict[str, Any] = {}
    if cls.framework == "progressive":
        extra["progressive"] = {"curriculum": [2], "level_weights": [1.0, 1.0]}
    cfg = _recipe(images, model={"name": name, "scale": scale, "hparams": hparams},
                  data={"patch_size": patch, "batch_size": 2}, val={"hr": str(images / "val"), "every": 3}, **extra)
    result = _fit(cfg, tmp_path)
    assert result.iteration == 3 and result.complete and result.skipped == 0
    assert math.isfinite(result.val["psnr"])
    rows = (tmp_path / "train.csv").read_text().splitlines()
    assert len(rows) == 4
    if cls.framework == "progressive":
        header = rows[0].split(",")
        assert "l1@1" in header and "l1@2" in header
    model = load_model(weights=tmp_path / "last.safetensors")
    assert model.name == name and model.scale == scale


def test_fit_outputs_card_logs_and_checkpoint_rotation(images: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text("# the recipe text\n")
    cfg = _recipe(images, iterations=5, checkpoint={"every": 1, "keep": 2}, val={"every": 2})
    events: list[str] = []
    result = _fit(cfg, tmp_path / "run", recipe_path=recipe, command="sruscale train r.toml",
                  on_event=lambda kind, rec: events.append(kind))
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_00000004.pt", "iter_00000005.pt"]
    assert result.checkpoint == run / "checkpoints" / "iter_00000005.pt"
    assert events[0] == "start" and events[-1] == "end" and events.count("train") == 5 and events.count("val") == 3
    meta = read_metadata(run / "best.safetensors")
    card = meta["card"]
    assert meta["arch"] == "fsrcnn" and meta["scale"] == 2
    assert card["recipe"]["text"] == "# the recipe text\n" and card["command"] == "sruscale train r.toml"
    assert card["iterations"] == result.best["iter"] and card["validation"]["best"]["score"] == result.best["score"]
    assert card["data"]["train_hr"] == [str(images / "hr")] and card["color"] == "y"
    last = read_metadata(run / "last.safetensors")["card"]
    assert last["iterations"] == 5 and last["validation"]["last"] == result.val
    val_rows = (run / "val.csv").read_text().splitlines()
    assert val_rows[0].startswith("time,iter,psnr,ssim") and len(val_rows) == 4
    kinds = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert kinds.count("checkpoint") == 5 and kinds[-1] == "end"
    assert json.loads((run / "config.json").read_text())["iterations"] == 5


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


@pytest.mark.parametrize("extra", [{}, {"ema_decay": 0.5, "precision": "bf16"}], ids=["plain", "ema-bf16"])
def test_resume_is_exact(images: Path, tmp_path: Path, extra: dict[str, Any]) -> None:
    """6 iterations straight == 3 + resume + 3 (weights, optimizer, logs)."""
    cfg = _recipe(images, iterations=6, schedule={"name": "cosine", "warmup": 2, "min_lr": 1e-5},
                  checkpoint={"every": 100, "keep": 3}, val={"every": 100}, **extra)
    straight = _fit(cfg, tmp_path / "a")
    first = _fit(cfg, tmp_path / "b", stop_at=3)
    assert first.iteration == 3 and not first.complete and first.checkpoint.name == "iter_00000003.pt"
    second = _fit(cfg, tmp_path / "b", resume=True)
    assert second.iteration == 6 and second.complete
    a, b = _state(tmp_path / "a" / "last.safetensors"), _state(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(straight.checkpoint, weights_only=True)
    sb = torch.load(second.checkpoint, weights_only=True)
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], sb["optimizer"]["state"][k]["exp_avg"])
    rows_a = [r.split(",")[1:] for r in (tmp_path / "a" / "train.csv").read_text().splitlines()]
    rows_b = [r.split(",")[1:] for r in (tmp_path / "b" / "train.csv").read_text().splitlines()]
    loss_col = rows_a[0].index("loss")
    assert [r[loss_col] for r in rows_a] == [r[loss_col] for r in rows_b]


def test_sigterm_stops_cleanly_with_a_checkpoint(images: Path, tmp_path: Path) -> None:
    def on_event(kind: str, rec: dict[str, Any]) -> None:
        if kind == "train" and rec["iter"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    result = _fit(_recipe(images, iterations=10, checkpoint={"every": 100}), tmp_path, on_event=on_event)
    assert result.iteration == 2 and not result.complete
    assert result.checkpoint == tmp_path / "checkpoints" / "iter_00000002.pt"
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored


def test_tensorboard_when_installed(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    scalars: list[tuple[str, float, int]] = []

    class FakeWriter:
        def __init__(self, logdir: str, purge_step: int | None = None) -> None:
            assert logdir.endswith("tb")

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            scalars.append((tag, value, step))

        def close(self) -> None:
            scalars.append(("closed", 0.0, 0))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    _fit(_recipe(images, iterations=2, log={"every": 1, "tensorboard": True}), tmp_path)
    tags = {t for t, _, _ in scalars}
    assert {"train/loss", "train/lr", "train/l1", "val/psnr", "closed"} <= tags
    assert ("train/loss", scalars[[t for t, _, _ in scalars].index("train/loss")][1], 1) in scalars


def test_resume_and_fresh_run_guards(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(images, iterations=2)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _fit(cfg, tmp_path, resume=True)
    _fit(cfg, tmp_path)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        _fit(cfg, tmp_path)
    other = _recipe(images, iterations=4, model={"name": "espcn", "scale": 2, "hparams": {"in_channels": 1}})
    with pytest.raises(CheckpointError, match="holds fsrcnn x2, recipe asks espcn x2"):
        _fit(other, tmp_path, resume=True)
    done = _fit(_recipe(images, iterations=2), tmp_path, resume=True)  # nothing left to do
    assert done.iteration == 2 and done.complete


def test_fit_config_errors(images: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.train_hr\[0\]: folder not found"):
        _fit(_recipe(images, data={"train_hr": ["nowhere"]}), tmp_path / "a", data_root=tmp_path)
    with pytest.raises(ConfigError, match=r"loss\[0\]\.type: unknown loss type 'l3'"):
        _fit(_recipe(images, loss=[{"type": "l3"}]), tmp_path / "b")
    with pytest.raises(ConfigError, match="needs a \\[gan\\] section"):
        _fit(_recipe(images, loss=[{"type": "adversarial"}]), tmp_path / "c")
    with pytest.raises(ConfigError, match="in_channels=1"):
        _fit(_recipe(images, data={"color": "rgb"}), tmp_path / "d")
    with pytest.raises(ConfigError, match=r"^model\.hparams: fsrcnn has no hyperparameter 'depth'"):
        _fit(_recipe(images, model={"name": "fsrcnn", "scale": 2, "hparams": {"depth": 3}}), tmp_path / "e")
    with pytest.raises(ConfigError, match="forward_pyramid"):
        _fit(_recipe(images, progressive={}), tmp_path / "f")


def test_data_root_resolves_relative_paths(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(images, data={"train_hr": ["hr"]}, val={"hr": "val"})
    result = _fit(cfg, tmp_path, data_root=images)
    assert result.complete


def test_recipe_data_root_and_the_old_meaning_of_data_root(images: Path, tmp_path: Path) -> None:
    """``data_root`` in the recipe is relative to the project; ``--data-root`` is the data folder itself;
    the old meaning (the folder above the project) is refused with the fix."""
    project = tmp_path / "proj"
    (project / "train").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    shutil.copytree(images, tmp_path / "shared" / "data")
    cfg = _recipe(images, data_root="../shared/data", data={"train_hr": ["hr"]}, val={"hr": "val"})
    recipe = project / "train" / "r.toml"
    recipe.write_text("")  # only its place matters: it names the project
    assert _fit(cfg, tmp_path / "a", recipe_path=recipe).complete
    assert _fit(cfg, tmp_path / "b", recipe_path=recipe, data_root=images).complete
    with pytest.raises(ConfigError, match=r"takes the data folder itself: --data-root .*shared/data"):
        _fit(cfg, tmp_path / "c", recipe_path=recipe, data_root=tmp_path)


def test_holdout_validates_on_training_images_it_does_not_train_on(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(images, val={"hr": "", "holdout": 2, "every": 3})
    events: list[tuple[str, dict[str, Any]]] = []
    result = _fit(cfg, tmp_path, on_event=lambda k, r: events.append((k, r)))
    start = next(r for k, r in events if k == "start")
    assert start["images"] == 3 and math.isfinite(result.val["psnr"])
    note = next(r["text"] for k, r in events if k == "note")
    assert note == "validation on 2 held-out training images: 1.png, 3.png"
    with pytest.raises(ConfigError, match="val.holdout: 5 held-out images leave none"):
        _fit(_recipe(images, val={"hr": "", "holdout": 5}), tmp_path / "b")
    with pytest.raises(ConfigError, match="val.holdout: validates on training images"):
        parse_config(_recipe(images, val={"holdout": 1}))


def test_val_degradation_gives_the_bytes_sruscale_degrade_writes(images: Path, tmp_path: Path) -> None:
    from sruscale.degradations import Pipeline, degrade_folder
    from sruscale.evaluation.protocol import quantize
    from sruscale.image import read_image
    from sruscale.training import load_val_images

    pipeline = Pipeline.preset("realistic", 2)
    degrade_folder(images / "val", tmp_path / "deg", pipeline=pipeline, seed=2)
    torch.set_num_threads(2)  # the in-memory LR does not depend on the caller's threads
    made = load_val_images(images / "val", scale=2, degradation=pipeline, seed=2)
    for img in made:
        written = read_image(tmp_path / "deg" / "LR_x2" / f"{img.name}.png")
        assert torch.equal(img.lr, quantize(written.pixels, 8)), img.name
    bicubic = load_val_images(images / "val", scale=2)
    assert not torch.equal(bicubic[0].lr, made[0].lr)


def test_rgb_model_with_pipeline_degradation_and_adamw(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(images, model={"name": "espcn", "scale": 2, "hparams": {"in_channels": 3}},
                  data={"degradation": "bd"}, optim={"name": "adamw", "weight_decay": 0.01, "grad_clip": 0.5})
    result = _fit(cfg, tmp_path)
    assert result.complete and math.isfinite(result.val["psnr"])
    assert read_metadata(tmp_path / "last.safetensors")["card"]["color"] == "rgb"


def test_gan_recipe(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(
        images,
        model={"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 3, "d": 8, "s": 4, "m": 1}},
        loss=[{"type": "l1"}, {"type": "adversarial", "kind": "ragan", "weight": 0.01}],
        gan={"discriminator": {"type": "vgg", "num_feat": 8, "num_stages": 2}, "lr": 1e-4, "start": 1},
    )
    result = _fit(cfg, tmp_path)
    assert result.complete and result.skipped == 0
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["event"] == "train"]
    assert "d_loss" not in train[0] and "adversarial" not in train[0]  # generator-only before gan.start
    assert "d_loss" in train[1] and "adversarial" in train[1]
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["disc"] is not None and state["disc_optimizer"]["state"]
    resumed = _fit({**cfg, "iterations": 4}, tmp_path, resume=True)
    assert resumed.iteration == 4


def test_gan_from_pretrained_init_weights(images: Path, tmp_path: Path) -> None:
    pre = _fit(_recipe(images, iterations=2), tmp_path / "pre")
    cfg = _recipe(
        images, iterations=1,
        model={"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 1, "d": 8, "s": 4, "m": 1},
               "init_weights": str(pre.last_weights)},
        optim={"lr": 1e-12},
        loss=[{"type": "l1"}, {"type": "adversarial", "kind": "hinge", "weight": 0.01}],
        gan={"discriminator": {"type": "vgg", "num_feat": 8, "num_stages": 2, "in_channels": 1}},
    )
    result = _fit(cfg, tmp_path / "gan")
    a, b = _state(pre.last_weights), _state(result.last_weights)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_nan_guard_skips_the_step(images: Path) -> None:
    from sruscale.losses import build_loss

    model = create_model("fsrcnn", scale=2, in_channels=1, d=8, s=4, m=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    import contextlib

    parts = _Parts(model=model, loss=build_loss([{"type": "l1"}]), plain_loss=None, optimizer=opt, scaler=None,
                   autocast=contextlib.nullcontext, grad_clip=0.0, progressive=None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hr = torch.rand(2, 1, 16, 16)
    hr[0, 0, 0, 0] = float("nan")
    stats = _train_step(parts, torch.rand(2, 1, 8, 8), hr, 0)
    assert stats["skipped"] == 1.0 and not math.isfinite(stats["loss"])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    stats = _train_step(parts, torch.rand(2, 1, 8, 8), torch.rand(2, 1, 16, 16), 1)
    assert stats["skipped"] == 0.0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fp16_grad_scaler_code_path(images: Path, tmp_path: Path) -> None:
    try:
        torch.amp.GradScaler("cpu")
    except Exception:  # noqa: BLE001
        pytest.skip("this torch has no CPU GradScaler")
    result = _fit(_recipe(images, iterations=2, precision="fp16", val={"hr": ""}), tmp_path)
    state = torch.load(result.checkpoint, weights_only=True)
    assert result.iteration == 2 and state["scaler"] is not None


def test_dataloader_workers_give_the_same_run(images: Path, tmp_path: Path) -> None:
    cfg = _recipe(images, iterations=2, val={"hr": ""})
    _fit(cfg, tmp_path / "w0")
    _fit(_recipe(images, iterations=2, val={"hr": ""}, data={"workers": 1}), tmp_path / "w1")
    a, b = _state(tmp_path / "w0" / "last.safetensors"), _state(tmp_path / "w1" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- validation


def test_validate_matches_independent_psnr(images: Path) -> None:
    from sruscale.color import rgb_to_y
    from sruscale.resize import imresize

    pairs = load_val_images(images / "val", scale=2)
    scores = validate(create_model("bicubic", scale=2, in_channels=3), pairs, scale=2)
    ref = []
    for p in pairs:
        sr = (imresize(p.lr, 2).clamp(0, 1) * 255).round() / 255
        a = (rgb_to_y(sr, round_8bit=True) * 255)[..., 2:-2, 2:-2]
        b = (rgb_to_y(p.hr, round_8bit=True) * 255)[..., 2:-2, 2:-2]
        ref.append(10 * math.log10(255**2 / (a - b).square().mean().item()))
    assert set(scores) == {"psnr", "ssim"}
    assert scores["psnr"] == pytest.approx(float(np.mean(ref)), abs=1e-9)
    assert 0.5 < scores["ssim"] < 1


@pytest.mark.data
def test_validate_set5_bicubic_reference(shared_data: Path) -> None:
    pairs = load_val_images(shared_data / "Set5", scale=4)
    scores = validate(create_model("bicubic", scale=4, in_channels=1), pairs, scale=4)
    assert scores["psnr"] == pytest.approx(28.42, abs=0.01)


# --------------------------------------------------------------------------- CLI and DDP


def test_cli_train(images: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sruscale.cli import app

    recipe = tmp_path / "tiny.toml"
    cfg = _recipe(images, val={"hr": ""})
    recipe.write_text(_to_toml(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(recipe), "--iters", "2", "--batch-size", "1", "--lr", "0.01",
                              "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "finished at iteration 2/2" in res.output
    card = read_metadata(tmp_path / "run" / "last.safetensors")["card"]
    assert card["recipe"]["config"]["data"]["batch_size"] == 1 and card["recipe"]["config"]["optim"]["lr"] == 0.01
    assert card["command"].startswith("sruscale")
    res = runner.invoke(app, ["train", str(recipe), "--iters", "3", "--out", str(tmp_path / "run"), "--resume",
                              "--device", "cpu"])  # --lr and --batch-size dropped: the recipe changed
    assert res.exit_code == 1 and "optim.lr: 0.01 -> " in str(res.exception)
    res = runner.invoke(app, ["train", str(recipe), "--iters", "3", "--batch-size", "1", "--lr", "0.01",
                              "--out", str(tmp_path / "run"), "--resume", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "finished at iteration 3/3" in res.output


def test_cli_bad_recipe_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from sruscale.cli import main

    recipe = tmp_path / "bad.toml"
    recipe.write_text("iterations = 1\nunknown = 2\n")
    monkeypatch.setattr(sys, "argv", ["sruscale", "train", str(recipe)])
    monkeypatch.delenv("SRUSCALE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1
    assert "unknown: unknown key" in capsys.readouterr().err


def _run(cmd: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (torchrun's workers too)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _to_toml(cfg: dict[str, Any]) -> str:
    """Minimal TOML writer for the test recipes (scalars, lists, inline tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    top = [f"{k} = {value(v)}" for k, v in cfg.items() if not isinstance(v, dict) and k != "loss"]
    tables = [f"[{k}]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in v.items())
              for k, v in cfg.items() if isinstance(v, dict)]
    losses = ["[[loss]]\n" + "\n".join(f"{kk} = {value(vv)}" for kk, vv in t.items()) for t in cfg.get("loss", [])]
    text = "\n".join(top) + "\n\n" + "\n\n".join(tables + losses) + "\n"
    assert tomllib.loads(text)  # round-trips
    return text


def test_ddp_two_processes_gloo(images: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes: rank 0 writes logs and checkpoints; the ranks stay in sync."""
    recipe = tmp_path / "ddp.toml"
    recipe.write_text(_to_toml(_recipe(images, iterations=3, val={"every": 3})))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sruscale", "train", str(recipe), "--out", str(tmp_path / "run"), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = _run(cmd, env=env, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert res.stderr.count("finished at iteration 3/3") == 1  # rank 0 reports
    run = tmp_path / "run"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["iter_00000002.pt", "iter_00000003.pt"]
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["iter"] for x in lines if x["event"] == "train"] == [1, 2, 3]
    assert "x2 processes" in res.stderr + res.stdout
    assert load_model(weights=run / "last.safetensors").name == "fsrcnn"


def test_ema_warmup_forgets_the_initial_weights() -> None:
    """The EMA decay ramps up as (1 + t) / (10 + t): after 200 steps toward constant weights,
    the average is close to them, which a fixed 0.999 (82% initial weights) would not be."""
    from sruscale.training.steps import _EMA

    net = torch.nn.Linear(2, 2)
    torch.nn.init.zeros_(net.weight)
    ema = _EMA(net, 0.999)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999
    with torch.no_grad():
        net.weight.fill_(1.0)
    for step in range(200):
        ema.update(net, step=step)
    assert 0.85 < float(ema.model.weight.mean()) <= 1.0


def test_init_weights_from_a_bare_state_dict_and_the_checks_of_finetune(images: Path, tmp_path: Path) -> None:
    """A bare state dict (no metadata) is described by the recipe's model; --from checks --holdout."""
    from safetensors.torch import save_file

    from sruscale.training.finetune import finetune_recipe

    torch.manual_seed(0)
    src = create_model("fsrcnn", scale=2, in_channels=1, d=8, s=4, m=1)
    save_file(src.state_dict(), tmp_path / "bare.safetensors")
    cfg = _recipe(images, model={"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 1, "d": 8, "s": 4, "m": 1},
                                 "init_weights": str(tmp_path / "bare.safetensors")})  # fmt: skip
    from sruscale.training.components import _make_model

    model, note = _make_model(parse_config(cfg), tmp_path)
    assert note == "" and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), src.state_dict().values(),
                                                                 strict=True))  # fmt: skip
    weights = tmp_path / "w.safetensors"
    from sruscale.weights import save_model

    save_model(src, weights)
    with pytest.raises(ConfigError, match=r"--holdout 5: .* has 5 images"):
        finetune_recipe(str(weights), images / "hr", holdout=5)
    config = finetune_recipe(str(weights), images / "hr", iterations=3)
    assert config.val.holdout == 1 and config.model.init_weights == str(weights.resolve())
    with pytest.raises(ConfigError, match=r"^val\.degradation: "):
        _fit(_recipe(images, val={"degradation": "nosuch"}), tmp_path / "v")


# --------------------------------------------------------------------------- distillation


def _teacher_recipe(images: Path, **data: Any) -> dict[str, Any]:
    """RGB FSRCNN x2 student; teacher: the bundled RGB x2 network ``realworld-light-x2``."""
    return _recipe(
        images, model={"name": "fsrcnn", "scale": 2, "hparams": {"in_channels": 3, "d": 8, "s": 4, "m": 1}},
        data={"color": "rgb", "teacher": "realworld-light-x2", "teacher_weight": 1.0, **data},
    )


def _teacher_data(images: Path, recipe: dict[str, Any], **kw: Any) -> tuple[Any, str]:
    """The training data of a recipe (dict) for one RGB process: ``(PatchBatches, the log note)``."""
    from sruscale.training.components import _load_data

    data, _, note = _load_data(parse_config(recipe), images, color="rgb", rank=0, with_val=False, **kw)
    return data, note


def _teacher_output(name: str, lr: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Model ``name`` on an 8-bit ``(H, W, 3)`` LR (resized to ``size`` by MATLAB bicubic when given),
    rounded to 8 bits: the target the trainer makes with a teacher."""
    from sruscale import tiling
    from sruscale.resize import imresize

    x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    out = tiling.upscale_tensor(load_model(name), x, precision="fp32").clamp(0, 1).double()
    if size is not None:
        out = imresize(out, size=size).clamp(0, 1)
    return np.round(out[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_teacher_on_fixed_degraded_lr_is_exact_and_cached_per_image(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a pipeline, variant k of each image is the LR ``sruscale degrade --seed (teacher_seed + k)``
    writes; the target is the teacher's rounded output on it; each target is cached on its own, so a
    rerun computes only what is missing."""
    from sruscale import tiling
    from sruscale.degradations import Pipeline, degrade_folder

    cfg = _teacher_recipe(images, degradation="dn", teacher_variants=2, teacher_seed=5)
    cache, seen = tmp_path / "teacher", []

    def load():
        return _teacher_data(images, cfg, teacher_cache=cache,
                             progress=lambda done, total: seen.append((done, total)))[0].pairs  # fmt: skip

    pairs = load()
    assert [p.name for p in pairs] == [f"{i}.png" for i in range(5)] + [f"{i}.png#1" for i in range(5)]
    assert seen[-1] == (10, 10) and len(list(cache.glob("*.npy"))) == 10
    for k, seed in enumerate((5, 6)):
        degrade_folder(images / "hr", tmp_path / f"deg{seed}", pipeline=Pipeline.preset("dn", 2), seed=seed)
        for i in (0, 4):
            pair = pairs[5 * k + i]
            lr = np.array(Image.open(tmp_path / f"deg{seed}" / "LR_x2" / f"{i}.png"))
            assert np.array_equal(pair.lr, lr)
            assert np.array_equal(pair.hr, _teacher_output("realworld-light-x2", lr))
    assert not np.array_equal(pairs[0].lr, pairs[5].lr)  # the two variants differ

    runs: list[int] = []
    real = tiling.upscale_tensor
    monkeypatch.setattr(tiling, "upscale_tensor", lambda *a, **k: runs.append(1) or real(*a, **k))
    sorted(cache.glob("*.npy"))[3].unlink()
    again = load()
    assert len(runs) == 1 and all(np.array_equal(a.hr, b.hr) for a, b in zip(pairs, again, strict=True))


def test_fit_distils_from_paired_lr_files_with_progress_events(images: Path, tmp_path: Path) -> None:
    """A teacher on paired ``train_lr`` files (formerly refused): its LR is the file's, not a bicubic
    one; the trainer reports its progress."""
    from sruscale.degradations import Pipeline, degrade_folder

    degrade_folder(images / "hr", tmp_path / "deg", pipeline=Pipeline.preset("dn", 2), seed=1)
    cfg = _teacher_recipe(images, train_hr=[str(tmp_path / "deg" / "HR")], train_lr=[str(tmp_path / "deg" / "LR_x2")])
    events: list[tuple[str, dict[str, Any]]] = []
    result = _fit(cfg, tmp_path / "run", on_event=lambda k, r: events.append((k, r)))
    assert result.complete
    assert [r["done"] for k, r in events if k == "teacher"] == [1, 2, 3, 4, 5]
    assert any(k == "note" and "targets blended with realworld-light-x2" in r["text"] for k, r in events)
    pair = _teacher_data(images, cfg, teacher_cache=tmp_path / "run" / "teacher")[0].pairs[2]
    lr = np.array(Image.open(tmp_path / "deg" / "LR_x2" / "2.png"))
    assert np.array_equal(pair.lr, lr)
    assert np.array_equal(pair.hr, _teacher_output("realworld-light-x2", lr))


def test_unlabeled_teacher_lr_images_train_on_the_teachers_whole_output(images: Path, tmp_path: Path) -> None:
    """``teacher_lr`` folders add LR images without HR: the target is the teacher's output on the file
    as it is (no blend, whatever ``teacher_weight``), cached apart from the labeled pairs' blends; a
    folder without a teacher is refused, a missing folder named."""
    extra = tmp_path / "mine"
    extra.mkdir()
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    Image.fromarray(lr).save(extra / "photo.png")
    cfg = _teacher_recipe(images, teacher_weight=0.5, teacher_lr=[str(extra)])
    data, note = _teacher_data(images, cfg, teacher_cache=tmp_path / "teacher")
    assert [p.name for p in data.pairs] == [f"{i}.png" for i in range(5)] + ["mine/photo.png"]
    assert "1 unlabeled LR images of data.teacher_lr" in note
    pair = data.pairs[-1]
    assert np.array_equal(pair.lr, lr) and pair.hr.shape == (80, 104, 3)
    assert np.array_equal(pair.hr, _teacher_output("realworld-light-x2", lr))
    cached = sorted((tmp_path / "teacher").glob("*.npy"), key=lambda f: np.load(f).shape != pair.hr.shape)
    assert len(cached) == 6 and np.array_equal(np.load(cached[0]), pair.hr)
    np.save(cached[0], np.full_like(pair.hr, 7))  # a marker: what comes back is the cache's, not recomputed
    assert (_teacher_data(images, cfg, teacher_cache=tmp_path / "teacher")[0].pairs[-1].hr == 7).all()
    assert _fit(_teacher_recipe(images, teacher_lr=[str(extra)], patch_size=16), tmp_path / "run").complete
    thirds = _teacher_recipe(images, teacher_lr=[str(extra)], teacher_lr_downscale=[1, 3])
    both = _teacher_data(images, thirds)[0].pairs[-2:]
    from sruscale.evaluation.protocol import benchmark_lr

    third = benchmark_lr(torch.from_numpy(lr[:39, :51]).permute(2, 0, 1)[None].double() / 255, 3)
    assert [p.name for p in both] == ["mine/photo.png", "mine/photo.png/3"] and both[1].hr.shape == (26, 34, 3)
    assert np.array_equal(both[1].lr, (third[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())
    for bad in ([0], [2, 2], []):
        with pytest.raises(ConfigError, match=rf"^data\.teacher_lr_downscale: expected distinct .* got \{bad}"):
            parse_config(_teacher_recipe(images, teacher_lr=[str(extra)], teacher_lr_downscale=bad))
    with pytest.raises(ConfigError, match=r"^data\.teacher_lr_downscale: \[2\] .* expected data\.teacher_lr"):
        parse_config(_teacher_recipe(images, teacher_lr_downscale=[2]))
    # smaller than the crop (40 px / 6 against 8), and held-out files, are left out before the teacher
    small = _teacher_data(images, _teacher_recipe(images, teacher_lr=[str(extra)], teacher_lr_downscale=[1, 6]))
    assert small[0].pairs[-1].name == "mine/photo.png" and "(1 smaller than the crop left out)" in small[1]
    held = {**_teacher_recipe(images, teacher_lr=[str(images / "hr")]), "val": {"holdout": 1}}
    names = [p.name for p in _teacher_data(images, held)[0].pairs]
    assert len(names) == 8 and not any(n.endswith("2.png") for n in names)  # 2.png: the held-out image
    with pytest.raises(ConfigError, match=r"^data\.teacher_lr: 1 folder\(s\) .* expected data\.teacher"):
        parse_config(_recipe(images, data={"teacher_lr": [str(extra)]}))
    with pytest.raises(ConfigError, match=r"^data\.teacher_lr\[0\]: folder not found"):
        _teacher_data(images, _teacher_recipe(images, teacher_lr=[str(tmp_path / "nosuch")]))


def test_a_teacher_of_another_scale_has_its_output_resized_to_the_students(images: Path, tmp_path: Path) -> None:
    """``teacher_scale = 4`` for an x2 student: the target is ``imresize(teacher_x4(LR), size = 2 LR)``,
    rounded; without it the teacher's fixed scale is refused as before."""
    cfg = _teacher_recipe(images, teacher="realworld-light-x4", teacher_scale=4)
    data, note = _teacher_data(images, cfg)
    assert "run at x4, resized to x2 by bicubic" in note
    pair = data.pairs[1]
    size = (pair.lr.shape[0] * 2, pair.lr.shape[1] * 2)
    assert np.array_equal(pair.hr, _teacher_output("realworld-light-x4", pair.lr, size))
    with pytest.raises(ConfigError, match=r"^data\.teacher: .*x4.* scale 2.*; data\.teacher_scale = 4 runs it"):
        _teacher_data(images, {**cfg, "data": {**cfg["data"], "teacher_scale": 0}})
    cache = tmp_path / "cache"  # a weightless teacher at x4 and at x2: one digest ("none"), two keys
    for t in (4, 0):
        _teacher_data(images, _teacher_recipe(images, teacher="bicubic", teacher_scale=t), teacher_cache=cache)
    assert len(list(cache.glob("*.npy"))) == 10
    with pytest.raises(ConfigError, match=r"^data\.teacher_scale: expected 0 .* got 1"):
        parse_config({**cfg, "data": {**cfg["data"], "teacher_scale": 1}})
    with pytest.raises(ConfigError, match=r"^data\.teacher_scale: 4 .* expected data\.teacher"):
        parse_config(_recipe(images, data={"teacher_scale": 4}))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_DDP_TEACHER = """
import hashlib, json, sys
import torch.distributed as dist
from sruscale import tiling
from sruscale.training import parse_config
from sruscale.training.components import _load_data

rank, world, cfg, cache = int(sys.argv[1]), 2, json.loads(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", rank=rank, world_size=world)
calls, real = [], tiling.upscale_tensor
tiling.upscale_tensor = lambda *a, **k: calls.append(1) or real(*a, **k)
pairs = _load_data(parse_config(cfg), None, color="rgb", rank=rank, world=world, with_val=False,
                   teacher_cache=__import__("pathlib").Path(cache))[0].pairs
digest = hashlib.sha256(b"".join(p.hr.tobytes() for p in pairs)).hexdigest()
print(json.dumps({"calls": len(calls), "pairs": len(pairs), "digest": digest}))
dist.destroy_process_group()
"""


def test_ddp_ranks_share_the_teachers_work(images: Path, tmp_path: Path) -> None:
    """Under DDP each rank computes its share of the teacher's targets (5 images: 3 + 2), then every
    rank reads them all from the run folder's cache: the same targets on both ranks, each computed once."""
    cfg = _teacher_recipe(images)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}  # fmt: skip
    procs = [
        subprocess.Popen([sys.executable, "-c", _DDP_TEACHER, str(r), json.dumps(cfg), str(tmp_path / "teacher")],
                         cwd=REPO, env={**env, "RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)  # fmt: skip
        for r in (0, 1)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:  # a rank that failed leaves the other one waiting at the barrier
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    res = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert [r["calls"] for r in res] == [3, 2]
    assert res[0]["pairs"] == res[1]["pairs"] == 5 and res[0]["digest"] == res[1]["digest"]
    assert len(list((tmp_path / "teacher").glob("*.npy"))) == 5


def test_a_run_stopped_while_the_teacher_works_reruns_with_the_targets_it_made(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sruscale import tiling

    calls: list[int] = []
    real = tiling.upscale_tensor

    def stopping(*a: Any, **k: Any) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tiling, "upscale_tensor", stopping)
    cfg = {**_teacher_recipe(images), "val": {"hr": ""}}  # no validation: every upscale is the teacher's
    with pytest.raises(KeyboardInterrupt):
        _fit(cfg, tmp_path / "run")
    assert len(list((tmp_path / "run" / "teacher").glob("*.npy"))) == 2
    assert _fit(cfg, tmp_path / "run").complete  # the same command again: no "not a run folder" refusal
    assert len(calls) == 3 + 3  # the 2 cached targets are not recomputed
