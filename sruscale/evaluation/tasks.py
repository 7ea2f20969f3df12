"""Task-based evaluation: run a downstream task on SR images and on their ground truth, report agreement.

A :class:`Task` is a function ``run(image) -> output`` (``image``: ``(H, W, 3)`` ``uint8`` RGB numpy
array) and ``agreement(sr_output, hr_output) -> float`` in ``[0, 1]``. Each method's score is the
mean agreement over its images: how much of what the task finds in HR it still finds in SR.

Built in (no downloaded weights):

* ``ocr``: Tesseract (``tesseract-ocr`` + ``pytesseract``) reads both; agreement = character
  accuracy ``1 - levenshtein(sr_text, hr_text) / len(hr_text)`` (clipped at 0).
* ``faces``: OpenCV's Haar cascade ``haarcascade_frontalface_default.xml`` (``cv2.data.haarcascades``
  or Debian's ``opencv-data``); agreement = detection IoU agreement (:func:`box_agreement`).
  Needs an OpenCV with ``CascadeClassifier`` (4.x; OpenCV 5 moved it out of the main module).

Plugging in a real model: ``--task my_tasks.py:classify`` (or ``package.module:classify``) where
``classify(image) -> label`` (any comparable value, e.g. an ImageNet class index from your own
classifier and weights); agreement is then top-1 agreement (1 if the SR label equals the HR label).
A function that returns a :class:`Task` (``def make_task() -> Task``) is used as that task, so
detectors can reuse :func:`box_agreement` with their own ``run``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..image import read_image
from .pairing import pair_files

__all__ = [
    "BUILTIN_TASKS",
    "Task",
    "TaskResult",
    "box_agreement",
    "char_accuracy",
    "evaluate_task",
    "face_task",
    "levenshtein",
    "ocr_task",
    "resolve_task",
]


@dataclass(frozen=True)
class Task:
    """A downstream task: ``run(image) -> output`` and ``agreement(sr_out, hr_out) -> [0, 1]``."""

    name: str
    run: Callable[[np.ndarray], Any]
    agreement: Callable[[Any, Any], float]
    description: str = ""


@dataclass
class TaskResult:
    """One method: per-image agreement and outputs, and their mean."""

    method: str
    task: str
    images: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean([r["agreement"] for r in self.images])) if self.images else float("nan")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i]
        for j, cb in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(sr_text: str, hr_text: str) -> float:
    """``max(0, 1 - levenshtein / len(hr))`` on whitespace-normalised text (1.0 when both are empty)."""
    a, b = " ".join(sr_text.split()), " ".join(hr_text.split())
    if not b:
        return 1.0 if not a else 0.0
    return max(0.0, 1.0 - levenshtein(a, b) / len(b))


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def box_agreement(sr_boxes: Sequence[Sequence[float]], hr_boxes: Sequence[Sequence[float]]) -> float:
    """Detection agreement of ``(x, y, w, h)`` boxes: greedy one-to-one matching by IoU, summed IoU
    divided by ``max(len(sr), len(hr))`` (missed and extra detections both count as 0); 1.0 when both are empty."""
    if not len(hr_boxes) and not len(sr_boxes):
        return 1.0
    pairs = sorted(((_iou(s, h), i, j) for i, s in enumerate(sr_boxes) for j, h in enumerate(hr_boxes)), reverse=True)
    used_s, used_h, total = set(), set(), 0.0
    for iou, i, j in pairs:
        if iou > 0 and i not in used_s and j not in used_h:
            used_s.add(i)
            used_h.add(j)
            total += iou
    return total / max(len(sr_boxes), len(hr_boxes))


def ocr_task(*, lang: str = "eng", config: str = "--psm 6") -> Task:
    """Tesseract OCR; agreement = :func:`char_accuracy`.

    Raises:
        ConfigError: pytesseract or the tesseract program is missing.
    """
    try:
        import pytesseract  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError("the ocr task needs pytesseract (pip install pytesseract) and tesseract-ocr") from None
    try:
        pytesseract.get_tesseract_version()
    except Exception:
        raise ConfigError("the ocr task needs the tesseract program (e.g. apt-get install tesseract-ocr)") from None

    def run(image: np.ndarray) -> str:
        return str(pytesseract.image_to_string(image, lang=lang, config=config)).strip()

    return Task("ocr", run, char_accuracy, "Tesseract text; character accuracy of SR vs HR reading")


def _cascade_file(name: str) -> Path:
    dirs = []
    try:
        import cv2

        dirs.append(Path(getattr(cv2, "data").haarcascades))  # noqa: B009 - cv2.data is missing on some builds
    except (ImportError, AttributeError):
        pass
    dirs += [Path("/usr/share/opencv4/haarcascades"), Path("/usr/share/opencv/haarcascades")]
    for d in dirs:
        if (d / name).is_file():
            return d / name
    raise ConfigError(f"{name} not found (looked in {', '.join(map(str, dirs))}; Debian: apt-get install opencv-data)")


def face_task(*, min_size: int = 24) -> Task:
    """OpenCV Haar-cascade frontal faces; agreement = :func:`box_agreement`.

    Raises:
        ConfigError: this OpenCV has no ``CascadeClassifier`` (OpenCV 5), or the cascade file is missing.
    """
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise ConfigError(
            f"the faces task needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} does not have "
            "(it is in OpenCV 4.x: pip install 'opencv-python-headless<5'); "
            "or plug in a detector with --task FILE.py:fn"
        )
    cascade = cv2.CascadeClassifier(str(_cascade_file("haarcascade_frontalface_default.xml")))

    def run(image: np.ndarray) -> list[list[float]]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
        return [list(map(float, b)) for b in found]

    return Task("faces", run, box_agreement, "Haar frontal faces; detection IoU agreement of SR vs HR")


BUILTIN_TASKS: dict[str, Callable[[], Task]] = {"ocr": ocr_task, "faces": face_task}


def _top1(sr_out: Any, hr_out: Any) -> float:
    return 1.0 if sr_out == hr_out else 0.0


def resolve_task(spec: str) -> Task:
    """A built-in name (``ocr``, ``faces``) or ``FILE.py:fn`` / ``module:fn`` (see the module docstring).

    Raises:
        ConfigError: unknown name, an import failure, a missing or non-callable function.
    """
    if spec in BUILTIN_TASKS:
        return BUILTIN_TASKS[spec]()
    if ":" not in spec:
        raise ConfigError(f"unknown task {spec!r}; choose from {', '.join(BUILTIN_TASKS)} or give FILE.py:FUNCTION")
    from .perception import load_scorer

    fn = load_scorer(spec)
    params = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
    if not params:  # a factory
        task = fn()  # type: ignore[call-arg]
        if not isinstance(task, Task):
            raise ConfigError(f"{spec}: a function without arguments must return a sruscale Task")
        return task
    return Task(spec, fn, _top1, f"user function {spec}; top-1 agreement of SR vs HR output")


def _rgb8(path: Path) -> np.ndarray:
    x = read_image(path).pixels[0]
    arr = (x.double().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else np.ascontiguousarray(arr)


def evaluate_task(
    task: Task,
    sr_dirs: Sequence[str | os.PathLike[str]],
    gt_dir: str | os.PathLike[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> list[TaskResult]:
    """Run ``task`` on the ground truth once and on every method's images (paired by name).

    Raises:
        ImageError: folders that do not pair (see :func:`~sruscale.evaluation.pair_files`).
    """
    plans = [(Path(d), pair_files(d, gt_dir)) for d in sr_dirs]
    hr_cache: dict[Path, Any] = {}
    results = []
    for folder, pairs in plans:
        res = TaskResult(method=folder.name, task=task.name)
        for p in pairs:
            if p.gt not in hr_cache:
                hr_cache[p.gt] = task.run(_rgb8(p.gt))
            sr_out = task.run(_rgb8(p.sr))
            hr_out = hr_cache[p.gt]
            res.images.append({"image": p.name, "agreement": float(task.agreement(sr_out, hr_out)),
                               "sr": sr_out, "hr": hr_out})  # fmt: skip
            if progress is not None:
                progress(p.name)
        results.append(res)
    return results
