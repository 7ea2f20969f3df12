"""Training: a typed recipe (frozen dataclasses parsed from TOML) and ``fit()``, one readable loop.

The recipe is a TOML file; :func:`load_recipe` parses it into :class:`TrainConfig`, rejecting
unknown keys and wrong types with a :class:`~sruscale.errors.ConfigError` that names the key
path (``optim.lrr: unknown key (did you mean 'lr'?)``). :func:`fit` trains for a number of
iterations (not epochs); the learning rate is a pure function of the iteration
(:func:`lr_at`), batches are a pure function of ``(seed, rank, iteration)``
(:class:`sruscale.data.PatchBatches`), so ``--resume`` continues bit for bit.

Output folder layout (``out_dir``)::

    recipe.toml            the recipe as given (copied at the first start)
    config.json            the resolved config (after command-line overrides)
    train.csv, val.csv     one row per log interval / validation
    log.jsonl              every event (train, val, checkpoint, skip, end) as JSON lines
    checkpoints/iter_XXXXXXXX.pt   full training state, atomic, the last ``checkpoint.keep`` kept
    last.safetensors       latest weights (EMA when enabled) + model card, at every checkpoint
    best.safetensors       weights with the best validation score + model card
    tb/                    TensorBoard events (when tensorboard is installed)
    .sruscale-run          marks a run folder: ``out_dir`` must be new, empty or marked (nothing else is touched)
    .sruscale-lock         while a run writes: its pid, host and start time; a second run is refused

Modules: :mod:`~sruscale.training.config` (recipe schema, parsing, overrides, :func:`lr_at`),
:mod:`~sruscale.training.loop` (:func:`fit`), :mod:`~sruscale.training.steps` (one optimization
step), :mod:`~sruscale.training.components` (device, model, data, discriminator built from the config),
:mod:`~sruscale.training.validation`, :mod:`~sruscale.training.checkpoints` (the on-disk formats:
training checkpoints, model card, logs). Import from ``sruscale.training``; the ``_``-prefixed
names in the modules are internal to this package.
"""

from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from .config import (
    OVERRIDES,
    CheckpointConfig,
    DataConfig,
    GANConfig,
    LogConfig,
    ModelConfig,
    OptimConfig,
    OverrideError,
    ProgressiveConfig,
    ScheduleConfig,
    TrainConfig,
    ValConfig,
    config_to_dict,
    load_recipe,
    lr_at,
    parse_config,
    project_root,
    resolve_data_root,
    with_overrides,
)
from .loop import FitResult, fit
from .validation import load_val_images, validate

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "OVERRIDES",
    "CheckpointConfig",
    "DataConfig",
    "FitResult",
    "GANConfig",
    "LogConfig",
    "ModelConfig",
    "OptimConfig",
    "OverrideError",
    "ProgressiveConfig",
    "ScheduleConfig",
    "TrainConfig",
    "ValConfig",
    "config_to_dict",
    "project_root",
    "resolve_data_root",
    "fit",
    "load_recipe",
    "load_val_images",
    "lr_at",
    "parse_config",
    "validate",
    "with_overrides",
]
