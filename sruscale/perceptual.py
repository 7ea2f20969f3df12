"""Library side of the perceptual tools of ``sruscale evaluate``: NIQE fitting from folders, PI inputs.

Image listing and reading go through :mod:`sruscale.image` / :func:`sruscale.evaluation.list_images`,
the metric maths through :mod:`sruscale.metrics`.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .errors import ConfigError
from .evaluation import list_images
from .image import read_image
from .metrics._nr import luma_planes
from .metrics.niqe import BLOCK, SHARPNESS_THRESHOLD, NIQEModel, fit_niqe_model

__all__ = ["MaScorer", "fit_niqe_folders", "load_ma_scores", "load_scorer", "perceptual_index"]

Progress = Callable[[str], None]


def fit_niqe_folders(
    folders: Sequence[str | os.PathLike[str]],
    *,
    y_channel: bool = True,
    block: int = BLOCK,
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
    progress: Progress | None = None,
) -> NIQEModel:
    """Fit a NIQE pristine model on every image of ``folders`` (see :func:`~sruscale.metrics.niqe.fit_niqe_model`).

    Images are converted like :func:`~sruscale.metrics.niqe.niqe` scores them (integer Y of MATLAB
    ``rgb2ycbcr`` by default), so a model and the scores it gives always agree on the conversion.
    """
    files = [f for folder in folders for f in list_images(folder)]

    def planes() -> object:
        for f in files:
            x = read_image(f).pixels
            yield luma_planes(
                x, data_range=1.0, y_channel=y_channel, round_8bit=True, crop_border=0, min_side=1, metric="NIQE"
            )[0]
            if progress is not None:
                progress(f.name)

    card = {
        "what": "NIQE pristine multivariate Gaussian (mu_prisparam, cov_prisparam), Mittal et al. 2013",
        "data": [str(Path(f)) for f in folders],
        "conversion": "Y of MATLAB rgb2ycbcr, rounded" if y_channel else "MATLAB rgb2gray, rounded",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sruscale_version": __version__,
    }
    return fit_niqe_model(planes(), block=block, sharpness_threshold=sharpness_threshold, card=card)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- PI inputs

#: a Ma et al. (2017) scorer: ``(1, 3, H, W)`` RGB in [0, 1] -> score in [0, 10] (higher is better)
MaScorer = Callable[[object], float]


def load_ma_scores(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read per-image Ma et al. scores from a CSV with columns ``image,ma`` (header required).

    ``image`` is the file name or stem of the scored image; the stem is the key.

    Raises:
        ConfigError: missing file or columns, a value that is not a number in [0, 10], a name given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Ma score file not found: {path}")
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"image", "ma"} <= set(reader.fieldnames):
            raise ConfigError(f"{path}: expected a header with columns image,ma; got {reader.fieldnames}")
        for i, row in enumerate(reader, start=2):
            key = Path(row["image"].strip()).stem
            try:
                value = float(row["ma"])
            except ValueError:
                raise ConfigError(f"{path}, line {i}: ma must be a number, got {row['ma']!r}") from None
            if not 0 <= value <= 10:
                raise ConfigError(f"{path}, line {i}: ma must be in [0, 10], got {value}")
            if key in out:
                raise ConfigError(f"{path}, line {i}: image {key!r} listed twice")
            out[key] = value
    return out


def load_scorer(spec: str) -> MaScorer:
    """Import a scorer given as ``module:function`` or ``path/to/file.py:function``.

    Raises:
        ConfigError: malformed spec, module/file not importable, attribute missing or not callable.
    """
    mod_name, sep, attr = spec.rpartition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}")
    try:
        if mod_name.endswith(".py"):
            file = Path(mod_name)
            if not file.is_file():
                raise ConfigError(f"scorer file not found: {file}")
            loader_spec = importlib.util.spec_from_file_location(f"_sruscale_user_{file.stem}", file)
            if loader_spec is None or loader_spec.loader is None:
                raise ConfigError(f"cannot import {file}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot import {mod_name!r}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"{mod_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def perceptual_index(ma: float, niqe_value: float) -> float:
    """PIRM 2018 Perceptual Index ``((10 - Ma) + NIQE) / 2`` (lower is better).

    Raises:
        ConfigError: ``ma`` outside [0, 10] or a non-finite input.
    """
    if not (math.isfinite(ma) and 0 <= ma <= 10):
        raise ConfigError(f"Ma score must be in [0, 10], got {ma}")
    if not math.isfinite(niqe_value):
        raise ConfigError(f"NIQE must be finite, got {niqe_value}")
    return float(((10.0 - ma) + niqe_value) / 2.0)
