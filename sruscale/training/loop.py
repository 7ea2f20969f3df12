"""``fit()``: the training loop over a typed config (forward, loss, backward, step, log, validate, checkpoint)."""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._proc import available_cpus, die_with_parent
from ..data import PatchBatches
from ..distributed import DistInfo, barrier, dist_info, init_process_group
from ..errors import ConfigError
from ..losses import build_loss
from ..models import SRModel
from ..weights import save_model
from .checkpoints import (
    _checkpoint_to_resume,
    _checkpoints,
    _hold_run_dir,
    _model_card_base,
    _open_run_dir,
    _restore,
    _RunLog,
    _save_state,
    _Trainables,
    _training_state,
    _write_run_files,
)
from .components import (
    _autocast_factory,
    _build_gan,
    _color,
    _load_data,
    _make_model,
    _resolve_device,
    _wrap,
)
from .config import TrainConfig, lr_at, project_root, resolve_data_root
from .steps import _EMA, _Parts, _train_step
from .validation import validate

__all__ = ["FitResult", "fit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns."""

    #: completed iterations
    iteration: int
    #: True when ``iteration == config.iterations``
    complete: bool
    #: last validation scores (empty without validation)
    val: dict[str, float]
    #: best validation score and its iteration (None without validation)
    best: dict[str, float] | None
    last_weights: Path | None
    best_weights: Path | None
    checkpoint: Path | None
    #: steps skipped by the NaN/Inf guard
    skipped: int


def fit(
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    device: str = "auto",
    data_root: str | os.PathLike[str] | None = None,
    recipe_path: str | os.PathLike[str] | None = None,
    command: str | None = None,
    stop_at: int | None = None,
    backbone_weights: str | os.PathLike[str] | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``config.model`` for ``config.iterations`` iterations; write logs, checkpoints, weights.

    Args:
        config: the recipe (see :class:`TrainConfig`).
        out_dir: run folder (layout in the :mod:`sruscale.training` docstring).
        resume: continue from the newest checkpoint in ``out_dir/checkpoints`` (model, EMA,
            optimizer, grad scaler, discriminator, RNG states, iteration); the schedule and the
            batches are functions of the iteration, so the continuation is exact.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``; under ``torchrun`` each rank uses
            its local GPU (or CPU with gloo).
        data_root: the folder of the data paths, replacing the recipe's ``data_root`` (default: that, relative
            to the project root of ``recipe_path``; without it the project root).
        recipe_path: the recipe file, recorded with its text in the model card.
        command: the command line, recorded in the model card.
        backbone_weights: torchvision-format classifier weights for perceptual/style losses and
            feature discriminators (default: the torch hub cache).
        stop_at: stop (with a checkpoint) after this many iterations although the schedule runs
            to ``config.iterations``. SIGINT/SIGTERM stop the same way at the end of the step.
        on_event: ``callback(kind, record)`` for progress display (rank 0): kinds ``teacher``
            (``done``/``total`` distillation targets, before the start), ``start``, ``note``, ``step``,
            ``train``, ``val``, ``checkpoint``, ``skip``, ``end``.

    Returns:
        :class:`FitResult`.

    Raises:
        ConfigError: bad data folders, model hyperparameters, losses, devices.
        CheckpointError: ``resume`` without a checkpoint, or one that does not fit the config;
            a fresh run into a folder that already holds checkpoints.
        BusyError: another live run is writing into ``out_dir`` (a lock file in it names the holder).
    """
    if stop_at is not None and stop_at < 1:
        raise ConfigError(f"stop_at must be >= 1 (iterations to run before stopping), got {stop_at}")
    with _hold_run_dir(Path(out_dir)):  # a second run into out_dir is refused, naming this one
        run = _set_up(
            config, out=Path(out_dir), resume=resume, device=device, data_root=data_root, recipe_path=recipe_path,
            command=command, backbone_weights=backbone_weights, on_event=on_event,
        )
        progress = _Progress(done=run.start, best=run.restored_best, last_val=run.restored_val)
        end = min(config.iterations, stop_at) if stop_at is not None else config.iterations
        run.emit("start", {"iter": run.start, "iterations": config.iterations, "end": end, "color": run.color,
                           "images": len(run.dataset.pairs), "device": str(run.device), "world": run.dist.world_size})
        for note in run.notes:
            run.record("note", {"text": note})
        stop = _StopFlag()
        try:
            for it, batch in zip(range(run.start, end), _batches(run.dataset, run.start, end, config.data.workers),
                                 strict=False):
                _train_iteration(run, progress, it, batch)
                done = progress.done
                if done % config.log.every == 0 or done == end:
                    _log_training(run, progress, it)
                if run.val_pairs and (done % config.val.every == 0 or done == end):
                    _validate_and_keep_best(run, progress)
                if done % config.checkpoint.every == 0 and run.dist.is_main:
                    progress.ckpt = _checkpoint(run, progress)
                if stop.check(run.dist, run.device):
                    break
        finally:
            stop.restore()
        return _finish(run, progress)


# --------------------------------------------------------------------------- the steps fit() calls


@dataclass
class _Run:
    """What a run is made of: built once by :func:`_set_up`, read by the steps (never reassigned)."""

    config: TrainConfig
    out: Path
    device: torch.device
    dist: DistInfo
    own_group: bool  # fit() initialised the process group, so it destroys it
    color: Literal["y", "rgb"]
    model: SRModel
    ema: _EMA | None
    trainables: _Trainables
    parts: _Parts
    dataset: PatchBatches
    val_pairs: list[Any]
    runlog: _RunLog | None
    card_base: dict[str, Any]
    emit: Callable[[str, dict[str, Any]], None]
    start: int
    restored_best: dict[str, float] | None
    restored_val: dict[str, float]
    #: what the set-up decided that the user should see (partial start, held-out images, teacher)
    notes: list[str] = field(default_factory=list)

    @property
    def inference_model(self) -> SRModel:
        """The model that validation and the exported weights use: the EMA copy when kept."""
        return self.ema.model if self.ema is not None else self.model  # type: ignore[return-value]  # EMA deep-copies an SRModel

    def record(self, kind: str, rec: dict[str, Any]) -> None:
        if self.runlog is not None:
            self.runlog.write(kind, rec)
        self.emit(kind, rec)


@dataclass
class _Progress:
    """What changes as the run goes: the iteration done, the scores, the stats window."""

    done: int
    best: dict[str, float] | None
    last_val: dict[str, float]
    skipped: int = 0
    ckpt: Path | None = None
    window: list[dict[str, float]] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)


def _set_up(
    config: TrainConfig,
    *,
    out: Path,
    resume: bool,
    device: str,
    data_root: str | os.PathLike[str] | None,
    recipe_path: str | os.PathLike[str] | None,
    command: str | None,
    backbone_weights: str | os.PathLike[str] | None,
    on_event: Callable[[str, dict[str, Any]], None] | None,
) -> _Run:
    """Device and process group, seeds, model, data, optimizer/EMA/GAN, restored state, run files.

    The order is fixed: the seeds come before anything draws random numbers, so a resumed run
    continues exactly.
    """
    d = dist_info()
    dev = _resolve_device(device, d)
    own_group = d.is_distributed and not torch.distributed.is_initialized()
    if d.is_distributed and not init_process_group(d, backend="nccl" if dev.type == "cuda" else "gloo"):
        raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start with torchrun")
    project = project_root(recipe_path)
    root = resolve_data_root(config, project, data_root)
    ckpt_path = _checkpoint_to_resume(out, resume)  # the folder is created at the first write

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    color = _color(config)
    model, init_note = _make_model(config, project)
    model = model.to(dev).train()
    if model.in_channels != (1 if color == "y" else 3):
        raise ConfigError(f"data.color: {color!r} does not fit a model with in_channels={model.in_channels}")
    emit = on_event if (on_event is not None and d.is_main) else (lambda kind, rec: None)
    if config.data.teacher:
        if d.is_main:
            _open_run_dir(out)  # the teacher's cache is written first: a rerun of a stopped run must find a run folder
        barrier()  # the other ranks write their share of the cache only once the folder is checked and marked
    dataset, val_pairs, data_note = _load_data(
        config, root, color=color, rank=d.rank, world=d.world_size, with_val=d.is_main,
        root_given=data_root is not None,
        teacher_cache=out / "teacher", progress=lambda done, total: emit("teacher", {"done": done, "total": total}),
    )
    if config.progressive is not None and not hasattr(model, "forward_pyramid"):
        raise ConfigError(f"progressive: model {config.model.name!r} has no forward_pyramid()")

    ema, trainables, parts = _build_trainables(config, model, dev, d, backbone_weights)
    start, best, last_val = _restore(ckpt_path, config, trainables) if ckpt_path is not None else (0, None, {})
    if d.is_main:
        _write_run_files(out, config, recipe_path)  # creates and marks the run folder
    runlog = _RunLog(out, start=start, tensorboard=config.log.tensorboard) if d.is_main else None
    return _Run(
        config=config, out=out, device=dev, dist=d, own_group=own_group, color=color, model=model, ema=ema,
        trainables=trainables, parts=parts, dataset=dataset, val_pairs=val_pairs, runlog=runlog,
        card_base=_model_card_base(config, color=color, recipe_path=recipe_path, command=command, ema=ema is not None),
        emit=emit,
        start=start, restored_best=best, restored_val=last_val, notes=[n for n in (init_note, data_note) if n],
    )


def _build_trainables(
    config: TrainConfig, model: SRModel, dev: torch.device, d: DistInfo,
    backbone_weights: str | os.PathLike[str] | None,
) -> tuple[_EMA | None, _Trainables, _Parts]:
    """Optimizer, EMA, grad scaler, discriminator and losses around ``model``; the step's parts."""
    o = config.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    ema = _EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(dev.type) if config.precision == "fp16" else None
    disc = disc_opt = None
    if config.gan is not None:
        disc, disc_opt = _build_gan(config, dev, model.in_channels, backbone_weights)
    loss = build_loss(config.loss, backbone_weights=backbone_weights)
    plain_loss = loss.without_adversarial()  # before gan.start: the same modules, so the same extractors
    trainables = _Trainables(model=model, optimizer=optimizer, ema_model=ema.model if ema is not None else None,
                             scaler=scaler, disc=disc, disc_optimizer=disc_opt)
    parts = _Parts(
        model=_wrap(model, config, dev, d), loss=loss.to(dev),
        plain_loss=plain_loss.to(dev) if plain_loss is not None else None, optimizer=optimizer, scaler=scaler,
        autocast=_autocast_factory(config.precision, dev), grad_clip=o.grad_clip, progressive=config.progressive,
        levels=max(1, round(math.log2(config.model.scale))), disc=disc, disc_optimizer=disc_opt, gan=config.gan,
        distributed=d.is_distributed,
    )
    return ema, trainables, parts


def _train_iteration(run: _Run, progress: _Progress, it: int, batch: dict[str, torch.Tensor]) -> None:
    """Set the learning rate, run one step, update the EMA (or count a skipped step)."""
    for group in run.trainables.optimizer.param_groups:
        group["lr"] = lr_at(it, run.config)
    stats = _train_step(run.parts, batch["lr"].to(run.device), batch["hr"].to(run.device), it)
    progress.done = it + 1
    if stats.pop("skipped"):
        progress.skipped += 1
        log.warning("iteration %d: non-finite loss or gradient (loss %s); step skipped", progress.done, stats["loss"])
        run.record("skip", {"iter": progress.done, "loss": stats["loss"]})
    elif run.ema is not None:
        run.ema.update(run.model, step=it)
    progress.window.append(stats)
    run.emit("step", {"iter": progress.done, "loss": stats.get("loss")})  # every iteration; the display rate-limits


def _log_training(run: _Run, progress: _Progress, it: int) -> None:
    """One ``train`` record: the mean of every stat since the last one, and iterations per second."""
    now = time.perf_counter()
    window = progress.window
    rec = {"iter": progress.done, "lr": lr_at(it, run.config), "it_s": len(window) / max(now - progress.t0, 1e-9)}
    rec.update({k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]})
    progress.window, progress.t0 = [], now
    run.record("train", rec)


def _validate_and_keep_best(run: _Run, progress: _Progress) -> None:
    """Score the inference model on the validation images; export ``best.safetensors`` on a new best."""
    progress.last_val = validate(run.inference_model, run.val_pairs, scale=run.config.model.scale, device=run.device)
    score = progress.last_val.get(run.config.val.metric, -math.inf)
    if progress.best is None or score > progress.best["score"]:
        progress.best = {"score": score, "iter": progress.done, **progress.last_val}
        _export(run, progress, "best.safetensors")
    run.record("val", {"iter": progress.done, **progress.last_val, "best": progress.best["score"]})
    progress.t0 = time.perf_counter()  # validation time is not training speed


def _export(run: _Run, progress: _Progress, name: str) -> Path:
    """Write the inference model as ``out/name`` with its model card."""
    card = {**run.card_base, "iterations": progress.done,
            "validation": {"last": progress.last_val, "best": progress.best}}
    return save_model(run.inference_model, run.out / name, extra=card)


def _checkpoint(run: _Run, progress: _Progress) -> Path:
    """Export ``last.safetensors``, then save the training state (``checkpoints/iter_*.pt``).

    In this order a kill between the two resumes from the previous checkpoint and redoes the steps, so the
    exported weights and the newest checkpoint always match.
    """
    state = _training_state(progress.done, run.config, run.trainables, best=progress.best, val=progress.last_val)
    _export(run, progress, "last.safetensors")  # first: a kill between the two redoes the steps, so both match
    path = _save_state(run.out, state, progress.done, run.config.checkpoint.keep)
    run.record("checkpoint", {"iter": progress.done, "path": str(path)})
    return path


def _finish(run: _Run, progress: _Progress) -> FitResult:
    """Final checkpoint (unless the last iteration just wrote one), the result, logs closed, group left."""
    done, out = progress.done, run.out
    if run.dist.is_main and done > run.start and (progress.ckpt is None or progress.ckpt.name != f"iter_{done:08d}.pt"):
        progress.ckpt = _checkpoint(run, progress)
    elif progress.ckpt is None and _checkpoints(out):
        progress.ckpt = _checkpoints(out)[-1]
    result = FitResult(
        iteration=done, complete=done >= run.config.iterations, val=progress.last_val, best=progress.best,
        last_weights=out / "last.safetensors" if (out / "last.safetensors").exists() else None,
        best_weights=out / "best.safetensors" if progress.best is not None else None, checkpoint=progress.ckpt,
        skipped=progress.skipped,
    )
    run.record("end", {"iter": done, "complete": result.complete, "skipped": progress.skipped})
    if run.runlog is not None:
        run.runlog.close()
    if run.dist.is_distributed:
        torch.distributed.barrier()
        if run.own_group:
            torch.distributed.destroy_process_group()
    return result


def _batches(dataset: PatchBatches, start: int, stop: int, workers: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches ``start .. stop - 1``, built here (``workers = 0``) or by worker processes that die
    with this process (even by ``kill -9``); ``workers`` is bounded by the CPUs (:func:`_worker_count`)."""
    workers = _worker_count(workers)
    if workers == 0:
        return (dataset[i] for i in range(start, stop))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=range(start, stop), num_workers=workers, persistent_workers=False,
        prefetch_factor=4, worker_init_fn=functools.partial(_init_worker, os.getpid()),
    )
    return iter(loader)


def _worker_count(requested: int) -> int:
    """``data.workers`` clamped to the CPUs this process may use, with a logged note when clamped:
    more workers than CPUs only cost memory and start-up time (100000 would start hundreds of processes)."""
    cpus = available_cpus()
    if requested > cpus:
        log.warning("data.workers = %d: using %d DataLoader workers (the CPUs available)", requested, cpus)
        return cpus
    return requested


def _init_worker(parent: int, worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the worker exits when the training process dies."""
    die_with_parent(parent)


class _StopFlag:
    """SIGINT/SIGTERM set a flag checked at the end of each step (a second SIGINT interrupts)."""

    def __init__(self, *, install: bool = True) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}
        if install and sys.platform != "win32":
            import threading

            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stop requested (signal %d): saving a checkpoint after this step", signum)

    def check(self, d: DistInfo, device: torch.device) -> bool:
        if not d.is_distributed:
            return self.requested
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()
