"""Pairing SR files with their ground truth by name (never by sort order), for ``evaluate SR_DIR GT_DIR``,
and matching the images of several folders the same way (``evaluate --compare``, ``--grid --lr``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ImageError
from ..image import list_images

__all__ = ["DEFAULT_STRIP", "MAX_MODCROP", "Pair", "match_folders", "pair_files", "pairing_key"]

#: suffixes stripped from file stems before pairing (the one rule for evaluate, training, validation and
#: the MOS study); ``<N>`` stands for any scale: ``baby_x4`` (Set5 style) and ``0001x4`` (DIV2K style)
DEFAULT_STRIP: tuple[str, ...] = ("_x<N>", "x<N>", "_SR", "_sr", "_HR", "_hr", "_GT", "_gt")
#: with ``modcrop``, ground truth may exceed the SR image by at most this many pixels per dimension
MAX_MODCROP = 15


def _strip_patterns(strip: Sequence[str]) -> list[re.Pattern[str]]:
    out = []
    for s in strip:
        if not s:
            raise ConfigError("an empty --strip suffix would match everything")
        out.append(re.compile(re.escape(s).replace(re.escape("<N>"), r"\d+") + "$"))
    return out


def pairing_key(stem: str, strip: Sequence[str] = DEFAULT_STRIP) -> str:
    """The name a file is paired by: ``stem`` with the ``strip`` suffixes removed, repeatedly.

    ``"baby_x4_SR"`` -> ``"baby"``; ``"<N>"`` in a suffix matches any number. A stem that would
    become empty is kept as it is.
    """
    patterns = _strip_patterns(strip)
    key, changed = stem, True
    while changed:
        changed = False
        for pat in patterns:
            new = pat.sub("", key)
            if new != key and new:
                key, changed = new, True
    return key


@dataclass(frozen=True)
class Pair:
    """An SR file and its ground truth, paired by :func:`pairing_key`."""

    name: str
    sr: Path
    gt: Path


def _keyed(files: list[Path], strip: Sequence[str], role: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        key = pairing_key(f.stem, strip)
        if key in out:
            raise ImageError(f"two {role} files pair as {key!r}: {out[key].name} and {f.name}")
        out[key] = f
    return out


def pair_files(
    sr_dir: str | os.PathLike[str], gt_dir: str | os.PathLike[str], *, strip: Sequence[str] = DEFAULT_STRIP
) -> list[Pair]:
    """Pair the images of ``sr_dir`` with those of ``gt_dir`` by name, never by position.

    Both stems lose the ``strip`` suffixes (see :func:`pairing_key`); the extension is ignored
    (``baby_x4.png`` pairs with ``baby.bmp``). Every file must find exactly one partner.

    Returns:
        Pairs sorted by name.

    Raises:
        ImageError: a folder is missing or empty; two files of one folder give the same name;
            files without a partner (all of them are named, per folder).
    """
    sr = _keyed(list_images(sr_dir), strip, "SR")
    gt = _keyed(list_images(gt_dir), strip, "ground-truth")
    only_sr, only_gt = sorted(set(sr) - set(gt)), sorted(set(gt) - set(sr))
    if only_sr or only_gt:
        parts = []
        if only_sr:
            parts.append(f"no ground truth in {gt_dir} for: {', '.join(sr[k].name for k in only_sr)}")
        if only_gt:
            parts.append(f"no SR image in {sr_dir} for: {', '.join(gt[k].name for k in only_gt)}")
        hint = f" (names are compared after stripping {', '.join(strip)}; see --strip)"
        raise ImageError("; ".join(parts) + hint)
    return [Pair(name=k, sr=sr[k], gt=gt[k]) for k in sorted(sr)]


def match_folders(
    folders: Sequence[str | os.PathLike[str]], *, strip: Sequence[str] = DEFAULT_STRIP
) -> list[dict[str, Path]]:
    """Match the images of several folders by name (:func:`pairing_key`), as :func:`pair_files` pairs two.

    Every image must be in every folder: comparing folders on different images would rank the images,
    not the folders.

    Returns:
        One ``name -> file`` dict per folder, in the order given, all with the same names (sorted).

    Raises:
        ImageError: a folder is missing or empty; two files of one folder give the same name; images
            not in every folder (each named, with the folders that lack it).
    """
    keyed = [_keyed(list_images(f), strip, str(f)) for f in folders]
    common = set.intersection(*(set(k) for k in keyed)) if keyed else set()
    unmatched = []
    for folder, files in zip(folders, keyed, strict=True):
        for key in sorted(set(files) - common):
            lacking = [str(other) for other, o in zip(folders, keyed, strict=True) if key not in o]
            unmatched.append(f"{Path(folder) / files[key].name} (not in {', '.join(lacking)})")
    if unmatched:
        shown = "; ".join(unmatched[:10]) + (f"; and {len(unmatched) - 10} more" if len(unmatched) > 10 else "")
        raise ImageError(
            f"images must match by name across folders: {shown} "
            f"(names are compared after stripping {', '.join(strip)}; see --strip)"
        )
    return [{k: files[k] for k in sorted(common)} for files in keyed]
