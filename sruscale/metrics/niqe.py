"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

"Making a 'completely blind' image quality analyzer". No reference image and no human ratings:
36 natural-scene-statistics features (an AGGD fit of the MSCN coefficients and of their products
with 4 neighbours, at two scales) are computed on 96x96 patches; a multivariate Gaussian fitted
to the patches of the test image is compared with one fitted to pristine images:

    NIQE = sqrt((mu_p - mu_d)^T ((Sigma_p + Sigma_d) / 2)^+ (mu_p - mu_d))      (lower is better)

The computation follows the authors' MATLAB release (``niqe_release``: ``computequality.m``,
``estimatemodelparam.m``) step by step: 7x7 Gaussian window (sigma 7/6) with replicated borders,
``C = 1``, no patch overlap, MATLAB ``imresize(im, 0.5)`` for the second scale, ``nanmean`` /
``nancov`` (complete rows). Fitting keeps only the patches whose mean local deviation exceeds
0.75 of the sharpest patch's. By default images are scored on the Y of MATLAB ``rgb2ycbcr``,
rounded to integers (what BasicSR and the PIRM tooling do); ``y_channel=False`` uses ``rgb2gray``.

Models: :func:`load_niqe_model` reads MATLAB's ``modelparameters.mat`` (``mu_prisparam``,
``cov_prisparam``) or an ``.npz`` with the same arrays (also BasicSR's ``mu_pris_param`` /
``cov_pris_param``). Without a model, ``weights/niqe_291.npz`` is used: fitted with
:func:`fit_niqe_model` on the 291 SR training images (T91 + BSD200), see ``weights/niqe_291.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Unpack

import numpy as np
import torch

from .._fs import atomic_write
from ..errors import CheckpointError, ImageError
from ._common import MetricOptions, Reduction, check_reduction, reduce
from ._nr import NoReferenceModule, luma_planes
from ._nss import aggd_fit, fspecial_gaussian, mscn, pair_products

__all__ = [
    "DEFAULT_NIQE_MODEL",
    "NIQE",
    "NIQEModel",
    "fit_niqe_model",
    "load_niqe_model",
    "niqe",
    "niqe_features",
    "niqe_score",
]

BLOCK = 96
SHARPNESS_THRESHOLD = 0.75
N_FEATURES = 36
#: the bundled pristine model's file name inside the weights folder
DEFAULT_NIQE_MODEL = "niqe_291.npz"


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    return fspecial_gaussian(7, 7 / 6)


@dataclass(frozen=True)
class NIQEModel:
    """A pristine multivariate Gaussian: ``mu`` ``(36,)`` and ``cov`` ``(36, 36)``, plus where it came from."""

    mu: np.ndarray
    cov: np.ndarray
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mu, cov = np.asarray(self.mu, np.float64).reshape(-1), np.asarray(self.cov, np.float64)
        if mu.shape != (N_FEATURES,) or cov.shape != (N_FEATURES, N_FEATURES):
            raise CheckpointError(
                f"NIQE model: expected mu (36,) and cov (36, 36), got {tuple(np.shape(self.mu))} and {cov.shape}"
            )
        if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
            raise CheckpointError("NIQE model: mu/cov contain NaN or inf")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "cov", cov)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an ``.npz`` with ``mu_prisparam``, ``cov_prisparam`` and the card as JSON (``card``)."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise CheckpointError(f"NIQE model files end in .npz, got {path.name!r}")
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu_prisparam=self.mu, cov_prisparam=self.cov, card=np.array(json.dumps(self.card)))
        return path


def _pick(arrays: dict[str, Any], names: tuple[str, ...], path: Path) -> np.ndarray:
    for n in names:
        if n in arrays:
            return np.asarray(arrays[n], dtype=np.float64)
    found = ", ".join(k for k in arrays if not k.startswith("__")) or "none"
    raise CheckpointError(f"{path}: expected an array named {' or '.join(names)}; found {found}")


def load_niqe_model(path: str | os.PathLike[str] | None = None) -> NIQEModel:
    """Read a pristine model: MATLAB ``.mat`` (``mu_prisparam``, ``cov_prisparam``) or ``.npz``.

    ``None`` loads the bundled :data:`DEFAULT_NIQE_MODEL` from the weights folder. ``.mat`` needs scipy.

    Raises:
        CheckpointError: missing or unreadable file, missing arrays, wrong shapes.
    """
    if path is None:
        from ..weights import weights_dir

        path = weights_dir() / DEFAULT_NIQE_MODEL
    path = Path(path)
    if not path.is_file():
        hint = "fit one with `sruscale evaluate fit-niqe HR_DIR -o FILE`"
        raise CheckpointError(f"NIQE model not found: {path} ({hint})")
    suffix = path.suffix.lower()
    card: dict[str, Any] = {"source": str(path)}
    try:
        if suffix == ".mat":
            try:
                from scipy.io import loadmat
            except ImportError:
                raise CheckpointError(f"{path}: reading MATLAB .mat files needs scipy (pip install scipy)") from None
            arrays: dict[str, Any] = loadmat(str(path))
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if "card" in arrays:
                card = {**json.loads(str(arrays["card"])), "source": str(path)}
        else:
            raise CheckpointError(f"NIQE model must be .mat or .npz, got {path.name!r}")
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt files raise zipfile/ValueError/OSError/MatReadError
        raise CheckpointError(f"{path}: cannot read NIQE model ({type(exc).__name__}: {exc})") from None
    mu = _pick(arrays, ("mu_prisparam", "mu_pris_param"), path)
    cov = _pick(arrays, ("cov_prisparam", "cov_pris_param"), path)
    return NIQEModel(mu=mu, cov=cov, card=card)


@lru_cache(maxsize=4)
def _cached_model(path: str | None) -> NIQEModel:
    return load_niqe_model(path)


def _aggd_betas(x: np.ndarray) -> tuple[float, float, float]:
    alpha, left, right = aggd_fit(x)
    if not math.isfinite(alpha):
        return alpha, math.nan, math.nan
    k = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * k, right * k


def _block_features(m: np.ndarray) -> list[float]:
    alpha, bl, br = _aggd_betas(m)
    feat = [alpha, (bl + br) / 2]
    for prod in pair_products(m):
        a, l, r = _aggd_betas(prod)
        mean = (r - l) * math.gamma(2 / a) / math.gamma(1 / a) if math.isfinite(a) else math.nan
        feat += [a, mean, l, r]
    return feat


def niqe_features(plane: np.ndarray, *, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Patch features of one image, as ``computequality.m`` / ``estimatemodelparam.m`` compute them.

    Args:
        plane: ``(H, W)`` float64 on the 0..255 scale, at least ``block`` pixels on each side.
        block: patch side at the first scale (half of it at the second).

    Returns:
        ``(features, sharpness)``: ``(N, 36)`` (18 per scale) and ``(N,)`` (mean local deviation
        of each patch at the first scale), ``N = floor(H / block) * floor(W / block)``.
    """
    h, w = plane.shape
    nh, nw = h // block, w // block
    if nh == 0 or nw == 0:
        raise ImageError(f"NIQE needs images of at least {block}x{block} pixels, got {h}x{w}")
    img = plane[: nh * block, : nw * block]
    feats, sharp = [], np.empty(0)
    for scale in (1, 2):
        m, sigma = mscn(img, _window())
        b = block // scale
        rows = [_block_features(m[i * b : (i + 1) * b, j * b : (j + 1) * b]) for j in range(nw) for i in range(nh)]
        feats.append(np.asarray(rows, dtype=np.float64))
        if scale == 1:
            sharp = np.array(
                [sigma[i * b : (i + 1) * b, j * b : (j + 1) * b].mean() for j in range(nw) for i in range(nh)]
            )
            from ..resize import imresize

            img = imresize(torch.from_numpy(img)[None, None], 0.5)[0, 0].numpy()
    return np.concatenate(feats, axis=1), sharp


def _mvg(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``nanmean`` and ``nancov`` (rows with a NaN dropped) of ``(N, 36)`` features."""
    mu = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    cov = np.cov(complete, rowvar=False) if complete.shape[0] > 1 else np.zeros((feats.shape[1],) * 2)
    return mu, cov


def niqe_score(plane: np.ndarray, model: NIQEModel, *, block: int = BLOCK) -> float:
    """NIQE of one ``(H, W)`` 0..255 plane against ``model`` (lower = more natural)."""
    feats, _ = niqe_features(plane, block=block)
    mu, cov = _mvg(feats)
    d = model.mu - mu
    inv = np.linalg.pinv((model.cov + cov) / 2)
    return float(np.sqrt(d @ inv @ d))


def fit_niqe_model(
    planes: Iterable[np.ndarray],
    *,
    block: int = BLOCK,
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
    card: dict[str, Any] | None = None,
) -> NIQEModel:
    """Fit a pristine model (``estimatemodelparam.m``): sharp patches of every image, one MVG.

    Args:
        planes: ``(H, W)`` float64 0..255 planes of pristine images (smaller than ``block``: skipped).
        sharpness_threshold: per image, keep patches whose sharpness exceeds this fraction of the maximum.
        card: metadata stored with the model (data, conversion, ...); patch/image counts are added.

    Raises:
        ImageError: fewer than 2 usable patches.
    """
    kept, n_images, n_skipped = [], 0, 0
    for plane in planes:
        if min(plane.shape) < block:
            n_skipped += 1
            continue
        feats, sharp = niqe_features(plane, block=block)
        kept.append(feats[sharp > sharpness_threshold * sharp.max()])
        n_images += 1
    allf = np.concatenate(kept) if kept else np.empty((0, N_FEATURES))
    if allf.shape[0] < 2:
        raise ImageError(f"NIQE fitting needs at least 2 sharp {block}x{block} patches, got {allf.shape[0]}")
    mu, cov = _mvg(allf)
    info = {
        **(card or {}),
        "images": n_images,
        "images_skipped_too_small": n_skipped,
        "patches": int(allf.shape[0]),
        "block": block,
        "sharpness_threshold": sharpness_threshold,
    }
    return NIQEModel(mu=mu, cov=cov, card=info)


def niqe(
    x: torch.Tensor,
    *,
    model: NIQEModel | str | os.PathLike[str] | None = None,
    data_range: float = 1.0,
    y_channel: bool = True,
    round_8bit: bool = True,
    crop_border: int = 0,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """NIQE of each image (no reference; lower is better).

    Args:
        x: ``(B, C, H, W)`` in ``[0, data_range]``, ``C`` = 1 or 3; each side >= 96 after cropping.
        model: a :class:`NIQEModel`, a ``.mat``/``.npz`` path, or ``None`` for the bundled 291-image model.
        y_channel: score the Y of MATLAB ``rgb2ycbcr`` (default); ``False``: MATLAB ``rgb2gray``.
        round_8bit: round the plane to integers first, as MATLAB does with ``uint8`` images.
        crop_border: pixels shaved off every side first.

    Returns:
        ``(B,)`` float64 (or its mean/sum).

    Raises:
        ImageError: an image smaller than 96x96. CheckpointError: an unreadable model.

    Example:
        >>> niqe(read_image("baboon.png").pixels, model="modelparameters.mat")  # tensor([5.7296])
    """
    check_reduction(reduction)
    m = model if isinstance(model, NIQEModel) else _cached_model(None if model is None else str(model))
    planes = luma_planes(
        x, data_range=data_range, y_channel=y_channel, round_8bit=round_8bit, crop_border=crop_border,
        min_side=BLOCK, metric="NIQE",
    )  # fmt: skip
    return reduce(torch.tensor([niqe_score(p, m) for p in planes], dtype=torch.float64), reduction)


class NIQE(NoReferenceModule):
    """:func:`niqe` as a module (the model is loaded once, at construction). Options (keyword-only,
    defaults as in :func:`niqe` but ``reduction="mean"``): ``data_range``, ``y_channel``,
    ``round_8bit``, ``crop_border``, ``reduction``."""

    _metric = staticmethod(niqe)

    def __init__(
        self, *, model: NIQEModel | str | os.PathLike[str] | None = None, **options: Unpack[MetricOptions]
    ) -> None:
        super().__init__(model=model if isinstance(model, NIQEModel) else load_niqe_model(model), **options)
