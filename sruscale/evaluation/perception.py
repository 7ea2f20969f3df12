"""Library side of the perceptual tools of ``sruscale evaluate``: NIQE fitting from folders, PI inputs.

Image listing and reading go through :mod:`sruscale.image` (:func:`~sruscale.image.list_images`),
the metric maths through :mod:`sruscale.metrics`; directions and labels come from
:data:`sruscale.evaluation.METRICS`. :func:`~sruscale.evaluation.run_evaluation` calls :func:`add_pi`
and :func:`write_pd_plot` for ``evaluate --metrics ...,pi`` and ``--plot``.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError
from ..image import DEFAULT_MAX_PIXELS, list_images, read_image
from ..metrics._nr import luma_planes
from ..metrics.niqe import BLOCK, SHARPNESS_THRESHOLD, NIQEModel, fit_niqe_model
from .pairing import pairing_key
from .protocol import METRICS, DatasetResult

__all__ = [
    "MaScorer",
    "add_pi",
    "fit_niqe_folders",
    "load_ma_scores",
    "load_scorer",
    "pd_axes",
    "perceptual_index",
    "plot_points_from_results",
    "write_pd_plot",
]

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

    ``image`` is the file name or stem of the scored image; it is keyed like the evaluation pairs
    files (:func:`~sruscale.evaluation.pairing_key`: ``baby_x4_SR.png`` -> ``baby``).

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
            key = pairing_key(Path(row["image"].strip()).stem)
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
    return fn


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


def add_pi(
    datasets: Sequence[DatasetResult],
    *,
    ma_scores: Mapping[str, float] | None = None,
    scorer: MaScorer | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> None:
    """Fill ``values["pi"]`` of every image from its NIQE and its Ma et al. score (in place).

    The Ma score comes from ``ma_scores`` (keyed by image name, see :func:`load_ma_scores`) or
    from ``scorer`` run on the SR file. Never from a stand-in: without either, this raises.

    Raises:
        ConfigError: neither or both sources; an image without a Ma score; a scorer with no SR file
            to read (model mode: use a scores file); a result without NIQE.
    """
    if (ma_scores is None) == (scorer is None):
        raise ConfigError(
            "PI needs Ma et al. scores, which sruscale cannot compute (no trained model ships): "
            "give exactly one of --ma-scores FILE.csv or --ma-scorer MODULE:FUNCTION"
        )
    missing = []
    for d in datasets:
        for r in d.images:
            if "niqe" not in r.values:
                raise ConfigError(f"{r.image}: PI needs NIQE")
            if ma_scores is not None:
                if r.image not in ma_scores:
                    missing.append(r.image)
                    continue
                ma = ma_scores[r.image]
            else:
                if r.sr_path is None:
                    raise ConfigError("--ma-scorer reads the SR files: use pairing mode, or give --ma-scores")
                assert scorer is not None
                ma = float(scorer(read_image(r.sr_path, max_pixels=max_pixels).pixels))
            r.values["pi"] = perceptual_index(ma, r.values["niqe"])
    if missing:
        raise ConfigError(f"no Ma score for: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------- plot


def pd_axes(metrics: Sequence[str]) -> tuple[str, str]:
    """The perception-distortion axes for ``metrics``: x = pi (or niqe), y = psnr (or lpips).

    Raises:
        ConfigError: ``metrics`` lacks one of the two axes.
    """
    x = "pi" if "pi" in metrics else "niqe" if "niqe" in metrics else None
    y = "psnr" if "psnr" in metrics else "lpips" if "lpips" in metrics else None
    if x is None or y is None:
        raise ConfigError("the perception-distortion plot needs niqe or pi, and psnr or lpips, in --metrics")
    return x, y


_W, _H, _M = 640, 480, 70


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n)) if span > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def write_pd_plot(
    points: Sequence[tuple[str, float, float]],
    path: str | os.PathLike[str],
    *,
    x_metric: str,
    y_metric: str,
    title: str = "perception-distortion",
) -> Path:
    """Draw the perception-distortion plane (Blau & Michaeli 2018; PIRM 2018) as a PNG with Pillow.

    Args:
        points: ``(label, x, y)`` per method (e.g. ``x`` = NIQE or PI, ``y`` = PSNR or LPIPS).
        x_metric, y_metric: metric names (axis labels carry the better direction from :data:`METRICS`).

    Raises:
        ConfigError: no finite point.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .._fs import atomic_write

    pts = [(lbl, x, y) for lbl, x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        raise ConfigError("nothing to plot: no finite (x, y) values")
    xs, ys = [p[1] for p in pts], [p[2] for p in pts]

    def pad(lo: float, hi: float) -> tuple[float, float]:
        d = (hi - lo) * 0.15 or max(abs(hi) * 0.05, 0.5)
        return lo - d, hi + d

    (x0, x1), (y0, y1) = pad(min(xs), max(xs)), pad(min(ys), max(ys))
    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = _M, _W - 20, 40, _H - _M

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    draw.rectangle((left, top, right, bottom), outline="black")
    for t in _ticks(x0, x1):
        u = px(t, y0)[0]
        draw.line((u, bottom, u, bottom + 5), fill="black")
        draw.line((u, top, u, bottom), fill=(230, 230, 230))
        draw.text((u - 12, bottom + 8), f"{t:g}", fill="black", font=font)
    for t in _ticks(y0, y1):
        v = px(x0, t)[1]
        draw.line((left - 5, v, left, v), fill="black")
        draw.line((left, v, right, v), fill=(230, 230, 230))
        draw.text((8, v - 6), f"{t:g}", fill="black", font=font)

    def label(m: str) -> str:
        info = METRICS.get(m)
        title = (info.label or m.upper()) if info else m
        return f"{title} ({'higher' if info is None or info.higher_is_better else 'lower'} is better)"

    draw.text((left, bottom + 28), label(x_metric), fill="black", font=font)
    draw.text((8, 8), f"{title}; y: {label(y_metric)}", fill="black", font=font)
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]
    for i, (lbl, x, y) in enumerate(pts):
        u, v = px(x, y)
        c = colours[i % len(colours)]
        draw.ellipse((u - 5, v - 5, u + 5, v + 5), fill=c, outline="black")
        text = f"{lbl} ({x:.2f}, {y:.3g})"
        width = draw.textlength(text, font=font)
        draw.text((u + 8 if u + 8 + width < _W - 4 else u - 8 - width, v - 14), text, fill=c, font=font)
    path = Path(path)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def plot_points_from_results(
    files: Sequence[str | os.PathLike[str]], *, x_metric: str, y_metric: str
) -> list[tuple[str, float, float]]:
    """One point per results JSON (``evaluate --out r.json``) and dataset: means of the two metrics.

    Raises:
        ConfigError: unreadable file, or a metric the file does not hold.
    """
    import json

    points = []
    for f in files:
        try:
            data = json.loads(Path(f).read_text(encoding="utf-8"))
            proto, datasets = data["protocol"], data["datasets"]
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{f}: not an evaluate results JSON ({type(exc).__name__}: {exc})") from None
        label = proto.get("model") or proto.get("sr_dir") or Path(f).stem
        for d in datasets:
            mean = d.get("mean", {})
            if x_metric not in mean or y_metric not in mean:
                raise ConfigError(
                    f"{f}: dataset {d.get('name')!r} has no {x_metric} and {y_metric} (has {', '.join(mean)})"
                )
            name = label if len(datasets) == 1 else f"{label} / {d.get('name')}"
            points.append((name, float(mean[x_metric]), float(mean[y_metric])))
    return points
