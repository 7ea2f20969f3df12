"""What a run writes to its folder: training checkpoints, the model card, and the CSV / JSONL / TensorBoard logs.

These formats are read back by ``--resume`` (possibly by a newer sruscale): keep the checkpoint
keys, :data:`CHECKPOINT_FORMAT` / :data:`CHECKPOINT_VERSION`, the file names and the CSV columns
stable, or bump the version.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._fs import atomic_write
from ..checkpoint import load_state_into
from ..errors import CheckpointError
from ..models import SRModel
from .config import TrainConfig, config_to_dict

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "resume_changes"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sruscale-train"
CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------- training state


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("iter_*.pt"))


def _save_state(out: Path, state: dict[str, Any], iteration: int, keep: int) -> Path:
    path = out / "checkpoints" / f"iter_{iteration:08d}.pt"
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    for old in _checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: cannot load training checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a sruscale training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state


def _checkpoint_to_resume(out: Path, resume: bool) -> Path | None:
    """The newest checkpoint in ``out`` when resuming, else None (and ``out`` must hold none)."""
    if not resume and _checkpoints(out):
        raise CheckpointError(f"{out} already holds checkpoints; pass --resume or choose another --out")
    ckpt_path = _checkpoints(out)[-1] if resume and _checkpoints(out) else None
    if resume and ckpt_path is None:
        raise CheckpointError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    return ckpt_path


@dataclass(frozen=True)
class _Trainables:
    """The objects whose state a checkpoint holds (the model unwrapped: no DDP, no pyramid wrapper)."""

    model: SRModel
    optimizer: torch.optim.Optimizer
    ema_model: nn.Module | None = None
    scaler: Any = None
    disc: nn.Module | None = None
    disc_optimizer: torch.optim.Optimizer | None = None


def _training_state(
    iteration: int, config: TrainConfig, t: _Trainables, *, best: dict[str, Any] | None, val: dict[str, float]
) -> dict[str, Any]:
    """The checkpoint dict: everything ``--resume`` needs to continue bit for bit."""
    return {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "iteration": iteration,
        "config": config_to_dict(config), "model": t.model.state_dict(),
        "ema": t.ema_model.state_dict() if t.ema_model is not None else None,
        "optimizer": t.optimizer.state_dict(), "scaler": t.scaler.state_dict() if t.scaler is not None else None,
        "disc": t.disc.state_dict() if t.disc is not None else None,
        "disc_optimizer": t.disc_optimizer.state_dict() if t.disc_optimizer is not None else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "best": best, "val": val,
    }


#: config keys a resumed run may change freely (they do not change what is learned or when)
_RESUME_FREE = ("data.workers", "log.", "checkpoint.", "val.every", "val.max_images", "description")
#: schedules whose learning rate at an iteration depends on the total ``iterations``
_SCHEDULES_NEEDING_TOTAL = ("cosine",)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: list(d) if isinstance(d, tuple) else d}


def resume_changes(saved: dict[str, Any], now: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Compare a checkpoint's config with the resumed run's: ``(allowed changes, refused changes)``.

    ``iterations`` may change when the LR schedule does not depend on it (constant, multistep):
    the schedule then continues unchanged. Anything that changes what is learned (model, data,
    loss, optimiser, schedule, or ``iterations`` under a cosine schedule) is refused, so a
    resumed run never silently restarts or reshapes its learning-rate schedule.
    """
    a, b = _flat(saved), _flat(now)
    allowed: list[str] = []
    refused: list[str] = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key), b.get(key)
        if old == new:
            continue
        line = f"{key}: {old!r} -> {new!r}"
        schedule = b.get("schedule.name")
        if key.startswith(_RESUME_FREE):
            allowed.append(line)
        elif key == "iterations" and schedule not in _SCHEDULES_NEEDING_TOTAL:
            allowed.append(f"{line} (the {schedule} LR schedule does not depend on it and continues unchanged)")
        elif key == "iterations":
            refused.append(f"{line} (the {schedule} LR schedule spans all iterations: it would jump)")
        else:
            refused.append(line)
    return allowed, refused


def _restore(
    ckpt_path: Path, config: TrainConfig, t: _Trainables
) -> tuple[int, dict[str, Any] | None, dict[str, float]]:
    """Load a checkpoint into freshly built trainables; return ``(iteration, best, val)``.

    Raises:
        CheckpointError: unreadable file, another format or version, another model or scale.
    """
    state = _load_state(ckpt_path)
    saved = state["config"]["model"]
    if (saved["name"], saved["scale"]) != (config.model.name, config.model.scale):
        raise CheckpointError(
            f"{ckpt_path}: holds {saved['name']} x{saved['scale']}, "
            f"recipe asks {config.model.name} x{config.model.scale}"
        )
    allowed, refused = resume_changes(state["config"], config_to_dict(config))
    if refused:
        raise CheckpointError(
            f"{ckpt_path}: the run was started with other settings: {'; '.join(refused)}. Resume with the "
            "original recipe and --iters, or start a new run with another --out"
        )
    for line in allowed:
        log.warning("resuming with a changed setting: %s", line)
    load_state_into(t.model, state["model"], source=str(ckpt_path))
    t.optimizer.load_state_dict(state["optimizer"])
    if t.ema_model is not None and state.get("ema") is not None:
        load_state_into(t.ema_model, state["ema"], source=f"{ckpt_path} (ema)")  # type: ignore[arg-type]  # the EMA copy is typed nn.Module; it is the SRModel
    if t.scaler is not None and state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    if t.disc is not None and state.get("disc") is not None:
        t.disc.load_state_dict(state["disc"])
        assert t.disc_optimizer is not None
        t.disc_optimizer.load_state_dict(state["disc_optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    if torch.cuda.is_available() and state["rng"].get("cuda"):
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["iteration"]), state.get("best"), state.get("val", {})


def _model_card_base(
    config: TrainConfig, *, color: str, recipe_path: str | os.PathLike[str] | None, command: str | None, ema: bool
) -> dict[str, Any]:
    """The model card of ``last.safetensors`` / ``best.safetensors``, less the per-export fields
    (``iterations``, ``validation``)."""
    return {
        "arch": config.model.name,
        "scale": config.model.scale,
        "hparams": config.model.hparams,
        "color": color,
        "data": {"train_hr": list(config.data.train_hr), "train_lr": list(config.data.train_lr),
                 "degradation": config.data.degradation, "val": config.val.hr},
        "recipe": {"path": str(recipe_path) if recipe_path else None,
                   "text": Path(recipe_path).read_text(encoding="utf-8") if recipe_path else None,
                   "config": config_to_dict(config)},
        "command": command,
        "ema": ema,
    }


# --------------------------------------------------------------------------- logs


def _write_run_files(out: Path, config: TrainConfig, recipe_path: str | os.PathLike[str] | None) -> None:
    """``recipe.toml`` (the recipe as given, at the first start) and ``config.json`` (the resolved config)."""
    if recipe_path is not None and not (out / "recipe.toml").exists():
        (out / "recipe.toml").write_text(Path(recipe_path).read_text(encoding="utf-8"), encoding="utf-8")
    (out / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n", encoding="utf-8")


class _RunLog:
    """CSV + JSONL + optional TensorBoard logs, written by rank 0 only."""

    def __init__(self, out: Path, *, start: int, tensorboard: bool) -> None:
        self.out = out
        self.jsonl = out / "log.jsonl"
        for name in ("train.csv", "val.csv", "log.jsonl"):
            _truncate_after(out / name, start)
        self._csv_fields: dict[str, list[str]] = {}
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1 if start else None)
            except ImportError:
                self.tb = None

    def write(self, kind: str, record: dict[str, Any]) -> None:
        record = {"event": kind, "time": round(time.time(), 3), **record}
        with self.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if kind in ("train", "val"):
            path = self.out / f"{kind}.csv"
            row = {k: v for k, v in record.items() if k != "event"}
            fields = self._csv_fields.get(kind)
            if fields is None:
                fields = _csv_header(path) or list(row)
                self._csv_fields[kind] = fields
            if any(k not in fields for k in row):  # a new column (curriculum level, GAN start): widen
                fields = fields + [k for k in row if k not in fields]
                self._csv_fields[kind] = fields
                _rewrite_csv(path, fields)
            new = not path.exists() or path.stat().st_size == 0
            with path.open("a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
            if self.tb is not None:
                for k, v in row.items():
                    if k not in ("iter", "time") and isinstance(v, int | float):
                        self.tb.add_scalar(f"{kind}/{k}", v, record["iter"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _rewrite_csv(path: Path, fields: list[str]) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _csv_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), None)


def _truncate_after(path: Path, iteration: int) -> None:
    """Drop log rows written after ``iteration`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if path.suffix == ".jsonl":
        keep = [ln for ln in lines if json.loads(ln).get("iter", 0) <= iteration]
    else:
        if not lines:
            return
        col = next(csv.reader([lines[0]])).index("iter") if "iter" in lines[0] else 0
        keep = lines[:1] + [ln for ln in lines[1:] if int(next(csv.reader([ln]))[col]) <= iteration]
    if len(keep) != len(lines):
        path.write_text("".join(keep), encoding="utf-8")
