"""Task-based evaluation: OCR with Tesseract on rendered text, detection agreement, plugged-in classifiers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.errors import ConfigError
from sruscale.evaluation.tasks import box_agreement, char_accuracy, evaluate_task, levenshtein, resolve_task

LINES = ["THE QUICK BROWN FOX", "JUMPS OVER 12 LAZY DOGS"]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for f in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(f, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _text_image(path: Path, lines: list[str], scale: int = 1) -> None:
    img = Image.new("RGB", (520, 120), "white")
    d = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        d.text((16, 14 + 48 * i), line, fill="black", font=_font(32))
    if scale > 1:  # the "SR" of a blurry method: down then up
        img = img.resize((520 // scale, 120 // scale), Image.Resampling.BICUBIC).resize(
            (520, 120), Image.Resampling.BICUBIC
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_levenshtein_and_char_accuracy() -> None:
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3
    assert char_accuracy("THE QUICK", "THE QUICK") == 1.0
    assert char_accuracy("THE QUIOK", "THE QUICK") == pytest.approx(1 - 1 / 9)
    assert char_accuracy("", "") == 1.0 and char_accuracy("x", "") == 0.0 and char_accuracy("", "ab") == 0.0


def test_box_agreement() -> None:
    assert box_agreement([], []) == 1.0
    assert box_agreement([[0, 0, 10, 10]], [[0, 0, 10, 10]]) == 1.0
    assert box_agreement([[5, 0, 10, 10]], [[0, 0, 10, 10]]) == pytest.approx(50 / 150)
    assert box_agreement([], [[0, 0, 10, 10]]) == 0.0
    assert box_agreement([[0, 0, 10, 10], [50, 50, 5, 5]], [[0, 0, 10, 10]]) == 0.5  # an extra detection halves it


def test_ocr_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("pytesseract", reason="pytesseract not installed (.ci/run installs it)")
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr not installed (.ci/run: apt-get install -y tesseract-ocr)")
    _text_image(tmp_path / "gt" / "t.png", LINES)
    _text_image(tmp_path / "good" / "t_x4.png", LINES)
    _text_image(tmp_path / "blurry" / "t_x4.png", LINES, scale=8)
    task = resolve_task("ocr")
    assert "QUICK BROWN FOX" in task.run(np.asarray(Image.open(tmp_path / "gt" / "t.png")))
    good, blurry = evaluate_task(task, [tmp_path / "good", tmp_path / "blurry"], tmp_path / "gt")
    assert good.mean == 1.0 and blurry.mean < 0.95
    res = CliRunner().invoke(app, ["evaluate", "task", "--task", "ocr", str(tmp_path / "good"), "--gt",
                                   str(tmp_path / "gt"), "--out", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["methods"][0]["mean"] == 1.0


def test_plugged_classifier(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        arr = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        (tmp_path / "gt").mkdir(exist_ok=True)
        Image.fromarray(arr).save(tmp_path / "gt" / f"{name}.png")
        (tmp_path / "sr").mkdir(exist_ok=True)
        flipped = arr[:, :, ::-1] if name == "c" else arr  # c: colours swapped -> another "class"
        Image.fromarray(np.ascontiguousarray(flipped)).save(tmp_path / "sr" / f"{name}.png")
    plug = tmp_path / "cls.py"
    plug.write_text("def classify(img):\n    return int(img[..., 0].mean() > img[..., 2].mean())\n")
    (result,) = evaluate_task(resolve_task(f"{plug}:classify"), [tmp_path / "sr"], tmp_path / "gt")
    assert [r["agreement"] for r in result.images][:2] == [1.0, 1.0]
    assert result.images[2]["agreement"] in (0.0, 1.0)
    expected = 2 / 3 if result.images[2]["sr"] != result.images[2]["hr"] else 1.0
    assert result.mean == pytest.approx(expected)
    with pytest.raises(ConfigError, match="unknown task"):
        resolve_task("segmentation")


def test_faces_task_or_clear_error() -> None:
    import cv2

    if hasattr(cv2, "CascadeClassifier"):
        try:
            task = resolve_task("faces")
        except ConfigError as exc:
            pytest.skip(f"no Haar cascade file here: {exc}")
        assert task.run(np.full((64, 64, 3), 128, np.uint8)) == []  # a flat image has no face
    else:
        with pytest.raises(ConfigError, match="CascadeClassifier"):
            resolve_task("faces")
