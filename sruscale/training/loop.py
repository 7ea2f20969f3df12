"""``fit()``: the training loop over a typed config (forward, loss, backward, step, log, validate, checkpoint)."""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_model
from ..data import PatchBatches
from ..distributed import DistInfo, dist_info, init_process_group
from ..errors import ConfigError
from .checkpoints import (
    _checkpoint_to_resume,
    _checkpoints,
    _model_card_base,
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
    _build_losses,
    _color,
    _load_data,
    _make_model,
    _resolve_device,
    _wrap,
)
from .config import TrainConfig, default_data_root, lr_at
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
        data_root: base of relative data paths (default: the project root of ``recipe_path``).
        recipe_path: the recipe file, recorded with its text in the model card.
        command: the command line, recorded in the model card.
        backbone_weights: torchvision-format classifier weights for perceptual/style losses and
            feature discriminators (default: the torch hub cache).
        stop_at: stop (with a checkpoint) after this many iterations although the schedule runs
            to ``config.iterations``. SIGINT/SIGTERM stop the same way at the end of the step.
        on_event: ``callback(kind, record)`` for progress display (rank 0): kinds ``start``,
            ``train``, ``val``, ``checkpoint``, ``skip``, ``end``.

    Returns:
        :class:`FitResult`.

    Raises:
        ConfigError: bad data folders, model hyperparameters, losses, devices.
        CheckpointError: ``resume`` without a checkpoint, or one that does not fit the config;
            a fresh run into a folder that already holds checkpoints.
    """
    out = Path(out_dir)
    d = dist_info()
    dev = _resolve_device(device, d)
    own_group = d.is_distributed and not torch.distributed.is_initialized()
    if d.is_distributed and not init_process_group(d, backend="nccl" if dev.type == "cuda" else "gloo"):
        raise ConfigError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start with torchrun")
    root = Path(data_root) if data_root is not None else default_data_root(recipe_path)
    emit = on_event if (on_event is not None and d.is_main) else (lambda kind, rec: None)
    ckpt_path = _checkpoint_to_resume(out, resume)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    scale, color = config.model.scale, _color(config)
    model = _make_model(config, root).to(dev).train()
    if model.in_channels != (1 if color == "y" else 3):
        raise ConfigError(f"data.color: {color!r} does not fit a model with in_channels={model.in_channels}")
    dataset, val_pairs = _load_data(config, root, color=color, rank=d.rank, with_val=d.is_main)
    if config.progressive is not None and not hasattr(model, "forward_pyramid"):
        raise ConfigError(f"progressive: model {config.model.name!r} has no forward_pyramid()")

    o = config.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    ema = _EMA(model, config.ema_decay) if config.ema_decay > 0 else None
    scaler = torch.amp.GradScaler(dev.type) if config.precision == "fp16" else None
    disc = disc_opt = None
    if config.gan is not None:
        disc, disc_opt = _build_gan(config, dev, model.in_channels, backbone_weights)
    loss, plain_loss = _build_losses(config, backbone_weights)
    trainables = _Trainables(model=model, optimizer=optimizer, ema_model=ema.model if ema is not None else None,
                             scaler=scaler, disc=disc, disc_optimizer=disc_opt)
    start, best, last_val = _restore(ckpt_path, config, trainables) if ckpt_path is not None else (0, None, {})
    parts = _Parts(
        model=_wrap(model, config, dev, d), loss=loss.to(dev),
        plain_loss=plain_loss.to(dev) if plain_loss is not None else None, optimizer=optimizer, scaler=scaler,
        autocast=_autocast_factory(config.precision, dev), grad_clip=o.grad_clip, progressive=config.progressive,
        levels=max(1, round(math.log2(scale))), disc=disc, disc_optimizer=disc_opt, gan=config.gan,
        distributed=d.is_distributed,
    )
    runlog = _RunLog(out, start=start, tensorboard=config.log.tensorboard) if d.is_main else None
    if d.is_main:
        _write_run_files(out, config, recipe_path)
    card_base = _model_card_base(config, color=color, recipe_path=recipe_path, command=command, ema=ema is not None)

    def record(kind: str, rec: dict[str, Any]) -> None:
        if runlog is not None:
            runlog.write(kind, rec)
        emit(kind, rec)

    def export(name: str, iteration: int) -> Path:
        card = {**card_base, "iterations": iteration, "validation": {"last": last_val, "best": best}}
        return save_model(ema.model if ema is not None else model, out / name, extra=card)  # type: ignore[arg-type]

    def checkpoint(iteration: int) -> Path:
        state = _training_state(iteration, config, trainables, best=best, val=last_val)
        path = _save_state(out, state, iteration, config.checkpoint.keep)
        export("last.safetensors", iteration)
        record("checkpoint", {"iter": iteration, "path": str(path)})
        return path

    stop = _StopFlag()
    end = min(config.iterations, stop_at) if stop_at is not None else config.iterations
    emit("start", {"iter": start, "iterations": config.iterations, "end": end, "color": color,
                   "images": len(dataset.pairs), "device": str(dev), "world": d.world_size})
    skipped, ckpt, window, t0, done = 0, None, [], time.perf_counter(), start
    try:
        for it, batch in zip(range(start, end), _batches(dataset, start, end, config.data.workers), strict=False):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(it, config)
            stats = _train_step(parts, batch["lr"].to(dev), batch["hr"].to(dev), it)
            done = it + 1
            if stats.pop("skipped"):
                skipped += 1
                log.warning("iteration %d: non-finite loss or gradient (loss %s); step skipped", done, stats["loss"])
                record("skip", {"iter": done, "loss": stats["loss"]})
            elif ema is not None:
                ema.update(model)
            window.append(stats)
            emit("step", {"iter": done, "loss": stats.get("loss")})  # every iteration; the display rate-limits
            if done % config.log.every == 0 or done == end:
                now = time.perf_counter()
                rec = {"iter": done, "lr": lr_at(it, config), "it_s": len(window) / max(now - t0, 1e-9)}
                rec.update({k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]})
                window, t0 = [], now
                record("train", rec)
            if val_pairs and (done % config.val.every == 0 or done == end):
                last_val = validate(ema.model if ema else model, val_pairs, scale=scale, color=color, device=dev)
                score = last_val.get(config.val.metric, -math.inf)
                if best is None or score > best["score"]:
                    best = {"score": score, "iter": done, **last_val}
                    export("best.safetensors", done)
                record("val", {"iter": done, **last_val, "best": best["score"]})
                t0 = time.perf_counter()  # validation time is not training speed
            if done % config.checkpoint.every == 0 and d.is_main:
                ckpt = checkpoint(done)
            if stop.check(d, dev):
                break
    finally:
        stop.restore()
    if d.is_main and done > start and (ckpt is None or ckpt.name != f"iter_{done:08d}.pt"):
        ckpt = checkpoint(done)
    elif ckpt is None and _checkpoints(out):
        ckpt = _checkpoints(out)[-1]
    result = FitResult(
        iteration=done, complete=done >= config.iterations, val=last_val, best=best,
        last_weights=out / "last.safetensors" if (out / "last.safetensors").exists() else None,
        best_weights=out / "best.safetensors" if best is not None else None, checkpoint=ckpt, skipped=skipped,
    )
    record("end", {"iter": done, "complete": result.complete, "skipped": skipped})
    if runlog is not None:
        runlog.close()
    if d.is_distributed:
        torch.distributed.barrier()
        if own_group:
            torch.distributed.destroy_process_group()
    return result


def _batches(dataset: PatchBatches, start: int, stop: int, workers: int) -> Iterator[dict[str, torch.Tensor]]:
    if workers == 0:
        return (dataset[i] for i in range(start, stop))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=range(start, stop), num_workers=workers, persistent_workers=False,
        prefetch_factor=4,
    )
    return iter(loader)


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
