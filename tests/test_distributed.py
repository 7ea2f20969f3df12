"""torchrun helpers: env parsing, sharding, and a real 2-process CPU run of `sruscale upscale`."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sruscale import distributed
from sruscale.distributed import DistInfo, dist_info, shard
from sruscale.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_dist_info_single_process_by_default() -> None:
    info = dist_info({})
    assert info == DistInfo(rank=0, world_size=1, local_rank=0)
    assert not info.is_distributed and info.is_main


def test_dist_info_reads_torchrun_variables() -> None:
    info = dist_info({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert info == DistInfo(rank=3, world_size=4, local_rank=1)
    assert info.is_distributed and not info.is_main


@pytest.mark.parametrize(
    "env",
    [
        {"RANK": "x", "WORLD_SIZE": "2"},
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "-1", "WORLD_SIZE": "2"},
        {"WORLD_SIZE": "0"},
        {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "-1"},
    ],
)
def test_dist_info_rejects_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        dist_info(env)


@pytest.mark.parametrize("world", [1, 2, 3, 5, 8])
def test_shards_partition_the_sorted_list(world: int) -> None:
    items = [f"img_{i:03d}.png" for i in range(17)]
    shuffled = random.sample(items, len(items))
    parts = [shard(shuffled, r, world) for r in range(world)]
    assert sorted(x for p in parts for x in p) == items  # every item exactly once
    for r, part in enumerate(parts):
        assert part == items[r::world]  # every w-th of the *sorted* list: independent of input order


def test_shard_with_key_and_bad_arguments() -> None:
    assert shard([(2, "b"), (1, "a"), (3, "c")], 0, 2, key=lambda t: t[1]) == [(1, "a"), (3, "c")]
    with pytest.raises(ValueError):
        shard([1, 2], 2, 2)
    with pytest.raises(ValueError):
        shard([1, 2], 0, 0)


def test_collectives_are_no_ops_without_a_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.init_process_group(DistInfo()) is False
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert distributed.init_process_group(DistInfo(rank=0, world_size=2)) is False  # nowhere to rendezvous
    assert distributed.gather_to_rank0({"x": 1}) == [{"x": 1}]
    distributed.barrier()
    distributed.cleanup()


def test_torchrun_two_cpu_processes_write_every_output_once(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    names = [f"p{i}.png" for i in range(5)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(src / name)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "sruscale", "upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = sorted(p.name for p in out.iterdir() if p.name != ".sruscale")  # .sruscale: settings records
    assert written == sorted(n.replace(".png", "_x2.png") for n in names)
    for n in names:
        assert Image.open(out / n.replace(".png", "_x2.png")).size == (20, 24)
    # rank 0 prints one combined summary: 5 processed, none skipped (a file done twice would show 6+ or a skip)
    assert proc.stdout.count("2 ranks") == 1, proc.stdout
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in proc.stdout.splitlines() if "│" in line}
    assert rows["processed"] == "5" and rows["skipped"] == "0" and rows["failed"] == "0", rows
