"""Bundled weights: resolve a model name to a verified file through ``weights/manifest.toml``.

The weights folder is, in order: the ``SRUSCALE_WEIGHTS_DIR`` environment variable, the
copy packed into an installed wheel (``sruscale/_bundled_weights``), or ``weights/``
beside the package in a source checkout. It is never taken from the current directory.

Manifest entry (one ``[[weights]]`` table per file)::

    [[weights]]
    name = "fsrcnn-x2"                 # what --model accepts
    file = "fsrcnn_x2.safetensors"
    arch = "fsrcnn"
    scale = 2
    sha256 = "..."
    recipe = "train/fsrcnn_x2.toml"
    set5_psnr = 36.9                   # Y-PSNR, paper protocol; ranks the default model
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import CheckpointError, UnknownModelError

__all__ = ["WeightsEntry", "default_model_name", "find_weights", "list_weights", "verify", "weights_dir"]

_PKG = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file: Path
    arch: str
    scale: int
    sha256: str
    recipe: str = ""
    set5_psnr: float | None = None


def weights_dir() -> Path:
    """The folder holding ``manifest.toml`` (see module docstring for the search order)."""
    env = os.environ.get("SRUSCALE_WEIGHTS_DIR")
    if env:
        return Path(env)
    packed = _PKG / "_bundled_weights"
    if (packed / "manifest.toml").is_file():
        return packed
    return _PKG.parent / "weights"


@lru_cache(maxsize=8)
def _read_manifest(folder: Path) -> tuple[WeightsEntry, ...]:
    path = folder / "manifest.toml"
    if not path.is_file():
        return ()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable weights manifest ({exc})") from None
    entries = []
    for i, row in enumerate(data.get("weights", [])):
        try:
            entries.append(
                WeightsEntry(
                    name=str(row["name"]),
                    file=folder / str(row["file"]),
                    arch=str(row["arch"]),
                    scale=int(row["scale"]),
                    sha256=str(row["sha256"]).lower(),
                    recipe=str(row.get("recipe", "")),
                    set5_psnr=float(row["set5_psnr"]) if "set5_psnr" in row else None,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: entry {i} is malformed ({exc!r})") from None
    return tuple(entries)


def list_weights(folder: Path | None = None) -> list[WeightsEntry]:
    """Every entry of the manifest (empty when there is none)."""
    return list(_read_manifest((folder or weights_dir()).resolve()))


def find_weights(name: str, scale: int | None = None, *, folder: Path | None = None) -> WeightsEntry:
    """Resolve ``name`` (an entry name such as ``fsrcnn-x2``, or an arch plus ``scale``).

    Raises:
        UnknownModelError: nothing bundled matches.
    """
    entries = list_weights(folder)
    for e in entries:
        if e.name == name and (scale is None or e.scale == scale):
            return e
    matches = [e for e in entries if e.arch == name and (scale is None or e.scale == scale)]
    if matches:
        return max(matches, key=lambda e: e.set5_psnr or 0.0)
    have = ", ".join(f"{e.name}" for e in entries) or "none"
    want = f"{name!r}" + (f" at x{scale}" if scale else "")
    raise UnknownModelError(f"no bundled weights for {want} (bundled: {have}); pass --weights FILE")


def default_model_name(scale: int, *, folder: Path | None = None) -> str:
    """Best bundled model for ``scale`` by Set5 Y-PSNR, else ``"bicubic"``."""
    matches = [e for e in list_weights(folder) if e.scale == scale and e.file.is_file()]
    if not matches:
        return "bicubic"
    return max(matches, key=lambda e: e.set5_psnr or 0.0).name


def verify(entry: WeightsEntry) -> Path:
    """Check the file exists and matches its sha256; returns its path.

    Raises:
        CheckpointError: naming the file and the expected digest.
    """
    if not entry.file.is_file():
        raise CheckpointError(f"{entry.file}: bundled weights file for {entry.name!r} is missing")
    h = hashlib.sha256()
    with entry.file.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != entry.sha256:
        raise CheckpointError(
            f"{entry.file}: sha256 mismatch for {entry.name!r} (expected {entry.sha256[:12]}…, "
            f"got {h.hexdigest()[:12]}…); the file is corrupt or was replaced"
        )
    return entry.file
