"""What a run writes to its folder: training checkpoints, the model card, and the CSV / JSONL / TensorBoard logs.

These formats are read back by ``--resume`` (possibly by a newer sruscale): keep the checkpoint
keys, :data:`CHECKPOINT_FORMAT` / :data:`CHECKPOINT_VERSION`, the file names and the CSV columns
stable, or bump the version.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._claims import lock_folder
from .._fs import atomic_write, remove_stale_temps, write_error, write_text_atomic
from .._version import __version__
from ..distributed import dist_info
from ..errors import CheckpointError, ConfigError, SruscaleError
from ..models import SRModel
from ..weights._checkpoint import load_state_into
from ..weights._files import TRAINING_CHECKPOINT_FORMAT, torch_load_safely
from .config import TrainConfig, config_to_dict, parse_config

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "RUN_LOCK", "RUN_MARKER", "resume_changes"]

CHECKPOINT_FORMAT = TRAINING_CHECKPOINT_FORMAT  # one definition, in sruscale.weights._checkpoint (loading reads it too)
CHECKPOINT_VERSION = 1
#: the file that marks a folder as a sruscale run folder (written when ``fit`` creates the run)
RUN_MARKER = ".sruscale-run"
#: the lock file of a run folder while a run writes into it (holder pid, host, start time as JSON)
RUN_LOCK = ".sruscale-lock"

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- run folder


def _check_run_dir(out: Path) -> None:
    """Refuse an ``out`` that is neither new, empty, nor a sruscale run folder (one that has
    :data:`RUN_MARKER`, or checkpoints and ``config.json`` from a sruscale that predates the marker).

    Raises:
        ConfigError: ``out`` is a file, or a folder holding files sruscale did not write.
    """
    if not out.exists() or not dist_info().is_main:  # other ranks never write (and rank 0 may be creating it)
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if (out / RUN_MARKER).is_file() or (_checkpoints(out) and (out / "config.json").is_file()):
        return
    try:
        empty = [p.name for p in itertools.islice(out.iterdir(), 2)] in ([], [RUN_LOCK])  # new, or a run starting
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot list the folder ({exc.strerror or exc})") from None
    if not empty:
        raise ConfigError(
            f"--out {out} is not empty and not a sruscale run folder (no {RUN_MARKER}): "
            "choose a new or empty folder, so no file of yours is overwritten"
        )


@contextmanager
def _hold_run_dir(out: Path) -> Iterator[None]:
    """Hold ``out`` for this run (rank 0; other ranks never write): a second run into the same
    folder, ``--resume`` included, is refused before it writes anything, naming the holder.

    A folder that is not a run folder is refused untouched first (:func:`_check_run_dir`). The lock
    (:data:`RUN_LOCK`, see :func:`sruscale._claims.lock_folder`) goes away with its process, so the
    folder of a killed run is taken over silently.

    Raises:
        BusyError: another live run holds ``out``.
        ConfigError: ``out`` is a file, or a folder holding files sruscale did not write.
    """
    if not dist_info().is_main:
        yield
        return
    _check_run_dir(out)
    with lock_folder(out, name=RUN_LOCK, what=f"--out {out}",
                     hint="wait for it to finish, or choose another --out"):  # fmt: skip
        yield


def _open_run_dir(out: Path) -> None:
    """Create ``out`` (and its parents) and mark it as a run folder; call right before the first write.

    Temporary files that a killed run left (a checkpoint half-written at ``kill -9``) are removed.
    """
    remove_stale_temps(out, recursive=True)
    marker = out / RUN_MARKER
    if not marker.is_file():
        write_text_atomic(marker, json.dumps({"sruscale_version": __version__, "created": time.time()}) + "\n")


# --------------------------------------------------------------------------- training state


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("iter_*.pt"))


def _save_state(out: Path, state: dict[str, Any], iteration: int, keep: int) -> Path:
    path = out / "checkpoints" / f"iter_{iteration:08d}.pt"
    with atomic_write(path) as tmp:
        torch.save(state, tmp)
    older = [p for p in _checkpoints(out) if p.name < path.name]  # newer ones: unloadable, skipped at resume
    for old in older[: max(0, len(older) - (keep - 1))]:
        old.unlink(missing_ok=True)
    return path


def _load_state(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """A training checkpoint (``mmap``: tensors mapped, not read: a cheap check that the file loads)."""
    state = torch_load_safely(path, mmap=mmap)  # a refused pickle never passes on torch's weights_only advice
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a sruscale training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')}, expected {CHECKPOINT_VERSION}")
    return state


def _checkpoint_to_resume(out: Path, resume: bool) -> Path | None:
    """The newest checkpoint in ``out`` that loads when resuming, else None (and ``out`` must hold none).

    Unloadable newer checkpoints (empty or truncated by a crash) are skipped with a warning.

    Raises:
        ConfigError: ``out`` is not new, empty, or a run folder (see :func:`_check_run_dir`).
        CheckpointError: checkpoints without ``resume``; ``resume`` and no checkpoint that loads.
    """
    _check_run_dir(out)
    found = _checkpoints(out)
    if not resume:
        if found:
            raise CheckpointError(f"{out} already holds checkpoints; pass --resume or choose another --out")
        return None
    if not found:
        raise CheckpointError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    errors = []
    for path in reversed(found):
        try:
            _load_state(path, mmap=True)
        except CheckpointError as exc:
            errors.append(str(exc))
            log.warning("skipping checkpoint %s: %s", path.name, str(exc).removeprefix(f"{path}: "))
            continue
        if errors:
            log.warning("resuming from %s instead", path.name)
        return path
    raise CheckpointError(f"--resume: no checkpoint in {out / 'checkpoints'} loads ({'; '.join(errors)})")


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


#: values renamed since a checkpoint's config was written: (section, key) -> {old: new}
_RENAMED_VALUES = {("val", "metric"): {"psnr_y": "psnr", "ssim_y": "ssim"}}


def _upgrade_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config in today's schema: renamed values mapped, keys added since filled
    with their defaults (so a new option at its default is no change). Unparseable: as saved."""
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in saved.items()}
    for (section, key), renames in _RENAMED_VALUES.items():
        table = cfg.get(section)
        if isinstance(table, dict) and table.get(key) in renames:
            table[key] = renames[table[key]]
    try:
        return config_to_dict(parse_config(cfg))
    except SruscaleError:
        return cfg


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
    allowed, refused = resume_changes(_upgrade_config(state["config"]), config_to_dict(config))
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
    """Create and mark the run folder (:func:`_open_run_dir`); write ``recipe.toml`` (the recipe as
    given, at the first start) and ``config.json`` (the resolved config)."""
    _open_run_dir(out)
    if recipe_path is not None and not (out / "recipe.toml").exists():
        write_text_atomic(out / "recipe.toml", Path(recipe_path).read_text(encoding="utf-8"))
    write_text_atomic(out / "config.json", json.dumps(config_to_dict(config), indent=2) + "\n")


class _RunLog:
    """CSV + JSONL + optional TensorBoard logs, written by rank 0 only."""

    def __init__(self, out: Path, *, start: int, tensorboard: bool) -> None:
        self.out = out
        self.jsonl = out / "log.jsonl"
        for name in ("train.csv", "val.csv", "log.jsonl"):
            _truncate_after(out / name, start)
        self._csv_fields: dict[str, list[str]] = {}
        self._checked: set[Path] = set()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=start + 1 if start else None)
            except ImportError:
                self.tb = None

    def write(self, kind: str, record: dict[str, Any]) -> None:
        record = {"event": kind, "time": round(time.time(), 3), **record}
        self._append(self.jsonl, json.dumps(record) + "\n")
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
            buf = io.StringIO(newline="")
            writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
            if not path.exists() or path.stat().st_size == 0:
                writer.writeheader()
            writer.writerow(row)
            self._append(path, buf.getvalue())
            if self.tb is not None:
                for k, v in row.items():
                    if k not in ("iter", "time") and isinstance(v, int | float):
                        self.tb.add_scalar(f"{kind}/{k}", v, record["iter"])

    def _append(self, path: Path, text: str) -> None:
        """Append ``text`` on a line of its own (never glued to a torn last line); write errors -> WriteError."""
        try:
            with path.open("ab") as f:
                if path not in self._checked:
                    self._checked.add(path)
                    if f.tell() > 0:
                        with path.open("rb") as r:
                            r.seek(-1, os.SEEK_END)
                            if r.read(1) != b"\n":
                                f.write(b"\n")
                f.write(text.encode("utf-8"))
        except OSError as exc:
            raise write_error(exc, path) from None  # type: ignore[misc]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _rewrite_csv(path: Path, fields: list[str]) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _csv_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), None)


def _row_iter(path: Path, line: str, header: list[str] | None) -> int | None:
    """The ``iter`` of one log line, or None when the line is not a well-formed row."""
    try:
        if header is None:  # JSONL
            rec = json.loads(line)
            return int(rec.get("iter", 0)) if isinstance(rec, dict) else None
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            return None
        return int(fields[header.index("iter") if "iter" in header else 0])
    except (ValueError, TypeError, StopIteration):
        return None


def _truncate_after(path: Path, iteration: int) -> None:
    """Drop log rows written after ``iteration`` (a resumed run rewrites them).

    Rows that do not parse (a torn last line after a crash or a full disk, or a line merged with
    one by an older sruscale) are dropped with a warning, so the file ends with a newline and the
    next row starts on a line of its own.
    """
    if not path.exists():
        return
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CheckpointError(f"cannot read log {path}: {exc.strerror or exc}") from None
    lines = text.splitlines(keepends=True)
    header: list[str] | None = None
    keep: list[str] = []
    if path.suffix != ".jsonl" and lines:
        if lines[0].endswith("\n"):
            header = next(csv.reader([lines[0]]), None) or None
        if header is None:  # a torn header: start the file afresh
            log.warning("%s: dropped a torn header line", path)
            write_text_atomic(path, "")
            return
        keep.append(lines[0])
        lines = lines[1:]
    dropped = []
    for n, line in enumerate(lines, 2 if header is not None else 1):
        it = _row_iter(path, line, header) if line.endswith("\n") else None
        if it is None:
            if line.strip():
                dropped.append(n)
        elif it <= iteration:
            keep.append(line)
    if dropped:
        log.warning("%s: dropped %d malformed line(s) (line %s; torn by an interrupted write)",
                    path, len(dropped), ", ".join(map(str, dropped[:5])))
    new = "".join(keep)
    if new != text:
        write_text_atomic(path, new)
