"""Multi-process helpers for ``torchrun``: who am I, which share of the work is mine, gather.

``torchrun --nproc_per_node N ...`` (or ``python -m torch.distributed.run``) starts N
processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in each. Without those variables everything here describes a single
process (rank 0 of 1) and the collective helpers are no-ops, so callers never branch
on "am I distributed" beyond reading :attr:`DistInfo.is_distributed`.

Work is split deterministically: rank ``r`` of ``w`` takes items ``r, r + w, r + 2w, ...``
of the *sorted* list (:func:`shard`), so every rank computes the same split without
talking to the others and a rerun gives the same split.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .errors import ConfigError

__all__ = [
    "DistInfo",
    "barrier",
    "cleanup",
    "map_shards",
    "dist_info",
    "gather_to_rank0",
    "init_process_group",
    "shard",
]

T = TypeVar("T")
R = TypeVar("R")

#: collectives wait this long for the slowest rank (ranks of a batch can finish far apart)
DEFAULT_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {key} must be an integer, got {raw!r}") from None


def dist_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (as set by torchrun).

    Args:
        env: the environment to read; ``os.environ`` by default.

    Raises:
        ConfigError: a variable is not an integer, or ``0 <= RANK < WORLD_SIZE`` fails.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank if world > 1 else 0)
    if world < 1:
        raise ConfigError(f"WORLD_SIZE must be >= 1, got {world}")
    if not 0 <= rank < world:
        raise ConfigError(f"RANK must be in [0, WORLD_SIZE={world}), got {rank}")
    if local < 0:
        raise ConfigError(f"LOCAL_RANK must be >= 0, got {local}")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def shard(items: Iterable[T], rank: int, world_size: int, *, key: Callable[[T], Any] | None = None) -> list[T]:
    """Every ``world_size``-th item of ``sorted(items, key=key)``, starting at ``rank``.

    The shards of ranks ``0 .. world_size - 1`` are disjoint and together hold every item once.

    Example:
        >>> shard(["d", "a", "c", "b", "e"], 1, 2)
        ['b', 'd']
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return sorted(items, key=key)[rank::world_size]  # type: ignore[type-var, arg-type]  # key gives comparable values


def init_process_group(
    info: DistInfo, *, backend: str | None = None, timeout: datetime.timedelta = DEFAULT_TIMEOUT
) -> bool:
    """Join the torchrun process group if this is a multi-process run and none exists yet.

    Args:
        info: from :func:`dist_info`.
        backend: ``"gloo"`` (CPU objects, works everywhere) or ``"nccl"``; default
            ``"nccl"`` when CUDA is available, else ``"gloo"``.
        timeout: how long a collective waits for the slowest rank.

    Returns:
        True when a process group is initialised after the call (this call or earlier);
        False for a single process, or when ``MASTER_ADDR``/``MASTER_PORT`` are missing
        (ranks then run independently and cannot gather).
    """
    if not info.is_distributed or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout)
    return True


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def gather_to_rank0(obj: T) -> list[T] | None:
    """Collect one picklable object per rank on rank 0.

    Returns:
        On rank 0, the objects of ranks ``0 .. w - 1`` in rank order (``[obj]`` without a
        process group); on other ranks ``None``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    world = dist.get_world_size()
    out: list[T] | None = [None] * world if dist.get_rank() == 0 else None  # type: ignore[list-item]  # filled by gather_object
    dist.gather_object(obj, out, dst=0)
    return out


def map_shards(
    items: Iterable[T], work: Callable[[list[T]], R], *, info: DistInfo, key: Callable[[T], Any] | None = None
) -> tuple[R, list[R] | None, bool]:
    """Run ``work`` on this rank's :func:`shard` of ``items`` and gather the results on rank 0.

    Under ``torchrun`` (with ``MASTER_ADDR``/``MASTER_PORT``) the ranks form a gloo group for
    the gather and leave it afterwards; a single process just runs ``work(list(items))``.

    Returns:
        ``(result, results, grouped)``: this rank's result; every rank's result in rank order on
        rank 0 (this rank's alone when no group could be formed), ``None`` on the other ranks;
        whether the ranks were gathered.
    """
    mine = shard(items, info.rank, info.world_size, key=key)
    grouped = init_process_group(info, backend="gloo")
    try:
        result = work(mine)
        return result, (gather_to_rank0(result) if grouped else [result]), grouped
    finally:
        cleanup()


def cleanup() -> None:
    """Destroy the process group if one was initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
