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
    gflops_per_mp = 1.6                # optional: cost per output megapixel; ranks "fast"
    family = "realworld"               # optional: a special-purpose model family (see below)
    denoise = 1.0                      # optional, within a family: its denoise strength

Entries with a ``family`` are models for another task than the bicubic benchmark (``realworld``:
noisy, compressed photos). ``--model FAMILY`` names them; they never serve as the default, an
alias's pick, or an architecture's bundled weights. A family with two entries at one scale whose
``denoise`` values differ is blended by weight interpolation (see :func:`family_entries`).

Aliases (optional ``[aliases]`` table) name a bundled model per scale: ``alias = "entry-name"``
for a fixed file, or ``alias = { highest = "FIELD" }`` / ``{ lowest = "FIELD" }`` to pick,
among the files at the requested scale that carry the numeric FIELD, the best one. Built in
(a manifest may redefine them): ``best = { highest = "set5_psnr" }`` and
``fast = { lowest = "gflops_per_mp" }``.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UnknownModelError
from ._pretrained import installed_rows

__all__ = [
    "WeightsEntry",
    "bundled_models",
    "default_model_name",
    "entry_named",
    "family_entries",
    "find_weights",
    "list_weights",
    "resolve_alias",
    "verify",
    "weights_dir",
]

#: aliases every manifest has unless it redefines them
BUILTIN_ALIASES: dict[str, str | dict[str, str]] = {
    "best": {"highest": "set5_psnr"},
    "fast": {"lowest": "gflops_per_mp"},
}

_PKG = Path(__file__).resolve().parents[1]  # the sruscale package folder


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    file: Path
    arch: str
    scale: int
    sha256: str
    recipe: str = ""
    set5_psnr: float | None = None
    #: special-purpose family (``"realworld"``), "" for the bicubic-benchmark models
    family: str = ""
    #: every other numeric field of the entry (e.g. ``gflops_per_mp``), for alias rules
    numbers: dict[str, float] = field(default_factory=dict, compare=False)
    #: the registry package a pretrained network comes from ("" for a bundled file; see ``_pretrained``)
    source: str = ""

    def number(self, key: str) -> float | None:
        """The numeric manifest field ``key`` (``set5_psnr`` included), or None."""
        return self.set5_psnr if key == "set5_psnr" else self.numbers.get(key)


@dataclass(frozen=True)
class _Manifest:
    entries: tuple[WeightsEntry, ...]
    aliases: dict[str, str | dict[str, str]]


def weights_dir() -> Path:
    """The folder holding ``manifest.toml`` (see module docstring for the search order)."""
    env = os.environ.get("SRUSCALE_WEIGHTS_DIR")
    if env:
        return Path(env)
    packed = _PKG / "_bundled_weights"
    if (packed / "manifest.toml").is_file():
        return packed
    return _PKG.parent / "weights"


_KNOWN = {"name", "file", "arch", "scale", "sha256", "recipe", "set5_psnr", "family"}


@lru_cache(maxsize=8)
def _read_manifest(folder: Path) -> _Manifest:
    path = folder / "manifest.toml"
    if not path.is_file():
        return _Manifest((), dict(BUILTIN_ALIASES))
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
                    family=str(row.get("family", "")),
                    numbers=_numbers(row),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: entry {i} is malformed ({exc!r})") from None
    aliases = {**BUILTIN_ALIASES, **_aliases(data.get("aliases", {}), path)}
    return _Manifest(tuple(entries), aliases)


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    numeric = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {k: float(v) for k, v in numeric.items() if k not in _KNOWN}


def _aliases(table: object, path: Path) -> dict[str, str | dict[str, str]]:
    if not isinstance(table, dict):
        raise CheckpointError(f"{path}: [aliases] must be a table of name = target")
    out: dict[str, str | dict[str, str]] = {}
    for name, target in table.items():
        rule_ok = (
            isinstance(target, dict)
            and len(target) == 1
            and next(iter(target)) in ("highest", "lowest")
            and isinstance(next(iter(target.values())), str)
        )
        if not (isinstance(target, str) or rule_ok):
            raise CheckpointError(
                f"{path}: alias {name!r} must be an entry name or {{ highest = FIELD }} / {{ lowest = FIELD }}, "
                f"got {target!r}"
            )
        out[str(name)] = target
    return out


#: measured output MP/s of the listed models, written by ``benchmarks/model_speed.py``
SPEED_TABLE = Path(__file__).with_name("speed.toml")


@lru_cache(maxsize=1)
def measured_speed() -> tuple[str, dict[str, float]]:
    """``(where and when it was measured, {model name: output MP/s})``; empty when not measured."""
    try:
        data = tomllib.loads(SPEED_TABLE.read_text(encoding="utf-8"))
        table = {str(k): float(v) for k, v in data.get("out_mp_s", {}).items()}
        return str(data.get("measured_on", "")), table
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError):
        return "", {}


def list_weights(folder: Path | None = None, *, families: bool = True) -> list[WeightsEntry]:
    """Every entry of the manifest (empty when there is none), then, without ``folder``, the installed
    pretrained networks of registry packages (:mod:`._pretrained`); ``families=False`` leaves out the
    special-purpose families (the models that may serve as a default or an architecture's weights)."""
    entries = list(_read_manifest((folder or weights_dir()).resolve()).entries)
    if folder is None:
        entries += _pretrained_entries()
    return [e for e in entries if families or not e.family]


def _pretrained_entries() -> list[WeightsEntry]:
    out = []
    for row, path in installed_rows():
        numbers = {k: v for k, v in row.numbers.items() if k != "set5_psnr"}
        out.append(
            WeightsEntry(
                name=row.name, file=path, arch="ncnn", scale=row.scale, sha256=row.sha256,
                set5_psnr=row.numbers.get("set5_psnr"), family=row.family, numbers=numbers, source=row.package,
            )  # fmt: skip
        )
    return out


def family_entries(family: str, scale: int, *, folder: Path | None = None) -> list[WeightsEntry]:
    """The entries of ``family`` at ``scale``, by increasing ``denoise`` (empty when ``family`` is
    not a family of the manifest).

    Raises:
        UnknownModelError: the family exists, but not at ``scale`` (the message lists its scales).
    """
    members = [e for e in list_weights(folder) if e.family == family]
    if not members:
        return []
    at = [e for e in members if e.scale == scale]
    if not at:
        scales = sorted({e.scale for e in members})
        have = ", ".join(f"x{s}" for s in scales)
        use = next((s for s in scales if s > scale), scales[-1])
        raise UnknownModelError(
            f"{family!r} is bundled at {have}, not at x{scale}: for a x{scale} result use "
            f"--scale {use} --outscale {scale} (the x{use} model, then a MATLAB bicubic resize)"
        )
    return sorted(at, key=lambda e: e.number("denoise") or 0.0)


def entry_named(name: str, *, folder: Path | None = None) -> WeightsEntry | None:
    """The manifest entry called ``name`` (e.g. ``fsrcnn-x2``), or None."""
    return next((e for e in list_weights(folder) if e.name == name), None)


def resolve_alias(name: str, scale: int, *, folder: Path | None = None) -> WeightsEntry | None:
    """The entry alias ``name`` picks at ``scale``; None when ``name`` is not an alias.

    Raises:
        UnknownModelError: an alias with nothing to pick at ``scale`` (or a dangling target).
    """
    aliases = _read_manifest((folder or weights_dir()).resolve()).aliases
    if name not in aliases:
        return None
    target = aliases[name]
    if isinstance(target, str):
        entry = entry_named(target, folder=folder)
        if entry is None:
            raise UnknownModelError(f"alias {name!r} points to {target!r}, which is not in the weights manifest")
        return entry
    ((how, key),) = target.items()
    candidates = [
        e
        for e in list_weights(folder, families=False)
        if e.scale == scale and e.number(key) is not None and e.file.is_file()
    ]
    if not candidates:
        raise UnknownModelError(f"alias {name!r}: no bundled weights at x{scale} with {key!r} to choose from")
    pick = max if how == "highest" else min
    return pick(candidates, key=lambda e: e.number(key) or 0.0)


def find_weights(name: str, scale: int | None = None, *, folder: Path | None = None) -> WeightsEntry:
    """Resolve ``name`` (an entry name such as ``fsrcnn-x2``, or an arch plus ``scale``).

    Raises:
        UnknownModelError: nothing bundled matches.
    """
    entries = list_weights(folder)
    for e in entries:
        if e.name == name and (scale is None or e.scale == scale):
            return e
    matches = [e for e in entries if not e.family and e.arch == name and (scale is None or e.scale == scale)]
    if matches:
        return max(matches, key=lambda e: e.set5_psnr or 0.0)
    have = ", ".join(f"{e.name}" for e in entries) or "none"
    want = f"{name!r}" + (f" at x{scale}" if scale else "")
    raise UnknownModelError(f"no bundled weights for {want} (bundled: {have}); pass --weights FILE")


def bundled_models(arch: str | None = None, *, folder: Path | None = None) -> list[tuple[str, int]]:
    """``(name, scale)`` of the bundled models whose files are present, for the scale-choice rule.

    Within a scale the default model comes first: the ``best`` alias's pick (see
    :func:`default_model_name`) when ``arch`` is None, else the highest Set5 PSNR of ``arch``.
    """
    entries = [e for e in list_weights(folder, families=False) if e.file.is_file() and (arch is None or e.arch == arch)]
    first: set[str] = set()
    if arch is None:
        first = {default_model_name(s, folder=folder) for s in {e.scale for e in entries}}
    ranked = sorted(entries, key=lambda e: (e.scale, e.name not in first, -(e.set5_psnr or 0.0)))
    return [(e.name, e.scale) for e in ranked]


def default_model_name(scale: int, *, folder: Path | None = None) -> str:
    """The ``best`` alias at ``scale`` (highest Set5 Y-PSNR unless redefined), else ``"bicubic"``."""
    try:
        entry = resolve_alias("best", scale, folder=folder)
    except UnknownModelError:
        return "bicubic"
    return entry.name if entry is not None and entry.scale == scale else "bicubic"


def verify(entry: WeightsEntry) -> Path:
    """Check the file exists and matches its sha256 (a pretrained network: its ``.param`` then ``.bin``
    bytes); returns its path.

    Raises:
        CheckpointError: naming the file and the expected digest.
    """
    files = [entry.file, entry.file.with_suffix(".bin")] if entry.source else [entry.file]
    what = f"{entry.source}'s file" if entry.source else "bundled weights file"
    h = hashlib.sha256()
    for path in files:
        if not path.is_file():
            raise CheckpointError(f"{path}: {what} for {entry.name!r} is missing")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    if h.hexdigest() != entry.sha256:
        fix = f"; reinstall {entry.source}" if entry.source else ""
        raise CheckpointError(
            f"{entry.file}: sha256 mismatch for {entry.name!r} (expected {entry.sha256[:12]}…, "
            f"got {h.hexdigest()[:12]}…); the file is corrupt or was replaced{fix}"
        )
    return entry.file
