"""The recipe of ``sruscale train --from MODEL --hr DIR``: fine-tune a model on one's own HR images, no TOML."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..image import list_images
from ..models import REGISTRY
from ..weights._resolve import ModelSource, build, resolve
from .config import TrainConfig, _inline_pipeline, parse_config

__all__ = ["DEGRADE_CHOICES", "finetune_recipe"]

#: what ``--degrade`` takes besides a pipeline ``.toml`` file
DEGRADE_CHOICES = ("bicubic", "realistic")


def _source(model: str) -> ModelSource:
    path = Path(os.path.expanduser(model))
    return resolve(weights=path) if path.is_file() else resolve(model)


def finetune_recipe(
    model: str,
    hr: str | os.PathLike[str],
    *,
    degradation: str | None = None,
    iterations: int = 500,
    holdout: int | None = None,
    patch_size: int = 32,
    batch_size: int = 16,
    lr: float = 1e-4,
) -> TrainConfig:
    """A recipe that starts from ``model`` and trains it on the images of ``hr``.

    Args:
        model: a bundled or installed model name (``plainsr-x4``, ``realworld``) or a weights file;
            the architecture, scale and hyperparameters are the model's own.
        hr: a folder of HR images (any size; each must fit a crop of ``patch_size * scale``).
        degradation: how LR inputs are made from HR: ``"bicubic"``, ``"realistic"`` or a pipeline
            ``.toml`` file; default ``"realistic"`` for the realworld family, else ``"bicubic"``.
            Validation LR is made the same way, seeded.
        iterations: training steps (cosine schedule to ``lr / 100``, EMA 0.999).
        holdout: images validated on and not trained on (default: a tenth, 1 to 5).

    Raises:
        ConfigError: an unknown model, a network that cannot be trained here (an ncnn file), a
            folder with fewer than 2 images, or a bad value.
    """
    source = _source(model)
    net = build(source)
    if net.name not in REGISTRY:
        what = "an ncnn network" if net.name == "ncnn" else f"a {net.name!r} network"
        raise ConfigError(f"--from {model}: {what} runs here but is not trained by sruscale; "
                          "choose one of sruscale's own models (sruscale models)")
    files = list_images(hr)
    if len(files) < 2:
        raise ConfigError(f"--hr {hr}: expected at least 2 images (one is held out for validation), got {len(files)}")
    entries = [source.entry] if source.entry is not None else [source.mix[0]] if source.mix is not None else []
    realworld = any(e.family == "realworld" for e in entries)
    spec = degradation or ("realistic" if realworld else "bicubic")
    held = holdout if holdout is not None else max(1, min(5, len(files) // 10))
    if held >= len(files):
        raise ConfigError(f"--holdout {held}: {hr} has {len(files)} images; at least one must be left to train on")
    hparams = {k: v for k, v in net.hparams.items() if k != "scale"}
    if "deploy" in hparams:  # train the re-parameterised form; it folds again on export
        hparams["deploy"] = False
    path = Path(os.path.expanduser(model))
    table = {
        "description": f"{model} fine-tuned on {Path(hr).name} ({len(files) - held} images), {Path(spec).name} LR",
        "iterations": iterations,
        "ema_decay": 0.999,
        "model": {"name": net.name, "scale": net.scale, "hparams": hparams,
                  "init_weights": str(path.resolve()) if path.is_file() else model},
        "data": {"train_hr": [str(Path(hr).resolve())], "degradation": spec, "patch_size": patch_size,
                 "batch_size": batch_size},
        "optim": {"lr": lr},
        "schedule": {"name": "cosine", "min_lr": lr / 100},
        "loss": [{"type": "l1"}],
        "val": {"holdout": held, "degradation": spec, "every": max(1, min(250, iterations // 4))},
        "checkpoint": {"every": max(1, min(250, iterations // 4)), "keep": 2},
        "log": {"every": 10, "tensorboard": False},
    }  # fmt: skip
    return _inline_pipeline(parse_config(table), Path.cwd())
