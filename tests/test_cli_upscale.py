"""`sruscale upscale` end to end on tiny images the tests create; the CLI error boundary (`cli.main`)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from typer.testing import CliRunner

import sruscale
from sruscale.cli import app, main

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
rng = np.random.default_rng(0)


def upscale(*args: str | Path, **env: str) -> object:
    return runner.invoke(app, ["upscale", *map(str, args)], env={"COLUMNS": "250", **env})


def flat(text: str) -> str:
    """Text without whitespace and box drawing, so wrapped rich output can be searched."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│╭╮╰╯─┃━┏┓┗┛┡┩└┘┌┐├┤")


def rgb(path: Path, h: int = 12, w: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def names(folder: Path) -> list[str]:
    """Sorted names in ``folder``, without the hidden .sruscale folder of settings records."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".sruscale")


def files(folder: Path) -> list[str]:
    """Sorted relative paths of the files below ``folder``, settings records left out."""
    found = folder.rglob("*")
    return sorted(p.relative_to(folder).as_posix() for p in found if p.is_file() and ".sruscale" not in p.parts)


def no_temp_files(folder: Path) -> bool:
    """No temporary files (the .sruscale folder of settings records is expected)."""
    return not [p for p in folder.rglob("*") if (p.name.startswith(".") and p.name != ".sruscale") or ".tmp" in p.name]


pytestmark = pytest.mark.usefixtures("isolated_env")  # conftest: no bundled weights, no torchrun variables


@pytest.fixture
def fsrcnn_file(tmp_path: Path) -> Path:
    model = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1, residual=True)
    with torch.no_grad():
        model.deconv.weight.normal_(std=0.05)
    return sruscale.save_model(model, tmp_path / "tiny_fsrcnn_x2.safetensors")


# ------------------------------------------------------------------ formats and modes


def test_mixed_folder_keeps_depth_modes_orientation_and_icc(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    h, w = 10, 16
    cv2.imwrite(str(src / "rgb16.png"), rng.integers(0, 65536, (h, w, 3), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).save(src / "gray16.png")
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(src / "gray.png")
    Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA").save(src / "la.png")
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert("P").save(src / "palette.png")
    Image.new("CMYK", (w, h), (10, 200, 30, 5)).save(src / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / "rotated.jpg", exif=exif)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(src / "icc.png", icc_profile=icc)

    out = tmp_path / "out"
    res = upscale(src, "-o", out, "--model", "bicubic", "--scale", "2")
    assert res.exit_code == 0, res.stdout + res.stderr
    assert flat("processed9") in flat(res.stdout) and flat("failed0") in flat(res.stdout)

    def cv(name: str) -> np.ndarray:
        return cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)

    assert cv("rgb16_x2.png").dtype == np.uint16 and cv("rgb16_x2.png").shape == (2 * h, 2 * w, 3)
    assert cv("gray16_x2.png").dtype == np.uint16 and cv("gray16_x2.png").shape == (2 * h, 2 * w)
    assert Image.open(out / "gray_x2.png").mode == "L"
    assert Image.open(out / "la_x2.png").mode == "LA"
    up = Image.open(out / "rgba_x2.png")
    assert up.mode == "RGBA" and up.size == (2 * w, 2 * h)
    # alpha upscaled with the model (bicubic here) from the source alpha plane
    alpha = np.asarray(up)[:, :, 3].astype(np.float64)
    ref = sruscale.imresize(torch.from_numpy(rgba[:, :, 3] / 255.0)[None, None].float(), 2).clamp(0, 1)
    assert np.abs(alpha - ref[0, 0].numpy() * 255).max() <= 1.0
    assert Image.open(out / "palette_x2.png").mode == "RGB"
    cmyk = Image.open(out / "cmyk_x2.jpg")
    assert cmyk.mode == "RGB" and cmyk.size == (2 * w, 2 * h)
    rot = Image.open(out / "rotated_x2.jpg")
    assert rot.size == (2 * h, 2 * w)  # orientation applied: width and height swapped
    assert rot.getexif().get(0x0112, 1) == 1
    assert Image.open(out / "icc_x2.png").info.get("icc_profile") == icc
    assert no_temp_files(out)


def test_unicode_and_space_paths(tmp_path: Path) -> None:
    src = rgb(tmp_path / "dossier ü" / "photo été.png")
    out = tmp_path / "sortie ü"
    res = upscale(src, "-o", out, "--model", "bicubic", "--scale", "3")
    assert res.exit_code == 0, res.stderr
    assert Image.open(out / "photo été_x3.png").size == (30, 36)


# ------------------------------------------------------------------ discovery and naming


def test_folder_recursive_and_glob(tmp_path: Path) -> None:
    src = tmp_path / "in"
    rgb(src / "a.png")
    rgb(src / "sub" / "b.png")
    rgb(src / "sub" / "deeper" / "c.jpg")
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(b"")

    flat_out = tmp_path / "flat"
    res = upscale(src, "-o", flat_out, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0, res.stderr
    assert [Path(f).name for f in files(flat_out)] == ["a_x2.png"]

    rec = tmp_path / "rec"
    res = upscale(src, "-o", rec, "-m", "bicubic", "-s", "2", "--recursive")
    assert res.exit_code == 0, res.stderr
    got = files(rec)
    assert got == ["a_x2.png", "sub/b_x2.png", "sub/deeper/c_x2.jpg"]

    glb = tmp_path / "glob"
    res = upscale(f"{src}/**/*.png", "-o", glb, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0, res.stderr
    got = files(glb)
    assert got == ["a_x2.png", "sub/b_x2.png"]


def test_output_folder_inside_input_folder_is_not_reread(tmp_path: Path) -> None:
    src = tmp_path / "photos"
    rgb(src / "a.png")
    for _ in range(2):
        res = upscale(src, "-o", src / "up", "-m", "bicubic", "-s", "2", "-r")
        assert res.exit_code == 0, res.stderr
    assert names(src / "up") == ["a_x2.png"]


def test_skip_then_overwrite(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png")
    out = tmp_path / "out"
    assert upscale(src, "-o", out, "-m", "bicubic", "-s", "2").exit_code == 0
    target = out / "a_x2.png"
    target.write_bytes(b"sentinel")
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0 and target.read_bytes() == b"sentinel"
    assert "skipped" in res.stdout and flat("skipped(samesettings)1") in flat(res.stdout)
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2", "--overwrite")
    assert res.exit_code == 0 and Image.open(target).size == (20, 24)
    assert no_temp_files(out)


def test_suffix_format_and_quality(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png", 40, 40)
    out = tmp_path / "out"
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2", "--suffix", "_big", "--format", "jpg", "--quality", "20")
    assert res.exit_code == 0, res.stderr
    low = (out / "a_big.jpg").stat().st_size
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2", "--suffix", "_hq", "-f", "jpg", "--quality", "98")
    assert res.exit_code == 0, res.stderr
    assert Image.open(out / "a_hq.jpg").format == "JPEG" and (out / "a_hq.jpg").stat().st_size > low
    for fmt, ext in (("webp", ".webp"), ("tiff", ".tiff"), ("png", ".png")):
        res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2", "-f", fmt)
        assert res.exit_code == 0, res.stderr
        assert Image.open(out / f"a_x2{ext}").size == (80, 80)


def test_rgba_to_jpeg_notes_dropped_alpha(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA").save(path)
    res = upscale(path, "-o", tmp_path / "out", "-m", "bicubic", "-s", "2", "-f", "jpg")
    assert res.exit_code == 0, res.stderr
    assert "note:" in res.stdout and "alpha" in res.stdout


def test_outscale(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png", 12, 10)
    out = tmp_path / "out"
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "4", "--outscale", "2.5")
    assert res.exit_code == 0, res.stderr
    assert Image.open(out / "a_x2.5.png").size == (25, 30)


def test_learned_model_from_weights_file_tiled(tmp_path: Path, fsrcnn_file: Path) -> None:
    src = rgb(tmp_path / "a.png", 30, 27)
    out = tmp_path / "out"
    # tiles of 24 px (several per image) with the default overlap must equal the untiled result
    res = upscale(src, "-o", out, "--weights", fsrcnn_file, "--tile", "24")
    assert res.exit_code == 0, res.stderr
    got = np.asarray(Image.open(out / "a_x2.png")).astype(np.float64)  # scale taken from the file: x2
    assert got.shape == (60, 54, 3)
    model = sruscale.load_model(weights=fsrcnn_file)
    x = sruscale.upscale_image(src, model, tile=0).pixels
    expected = (x[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - expected).max() <= 1.0
    bicubic = (sruscale.imresize(sruscale.image.read_image(src).pixels, 2).clamp(0, 1) * 255).round()
    assert np.abs(got - bicubic[0].permute(1, 2, 0).numpy()).max() > 2  # really the learned model


def test_self_ensemble(tmp_path: Path, fsrcnn_file: Path) -> None:
    src = rgb(tmp_path / "a.png", 10, 10)
    out = tmp_path / "out"
    res = upscale(src, "-o", out, "--weights", fsrcnn_file, "--self-ensemble", "--suffix", "_ens")
    assert res.exit_code == 0, res.stderr
    got = np.asarray(Image.open(out / "a_ens.png")).astype(np.float64)
    model = sruscale.load_model(weights=fsrcnn_file)
    for ensemble, close in ((True, True), (False, False)):
        ref = sruscale.upscale_image(src, model, self_ensemble=ensemble).pixels
        diff = np.abs(got - (ref[0].permute(1, 2, 0).numpy() * 255).round()).max()
        assert (diff <= 1.0) == close, (ensemble, diff)


def test_alpha_bicubic_with_a_learned_model(tmp_path: Path, fsrcnn_file: Path) -> None:
    rgba = rng.integers(0, 256, (9, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = tmp_path / "out"
    for mode in ("bicubic", "model"):
        res = upscale(tmp_path / "a.png", "-o", out, "-w", fsrcnn_file, "--alpha", mode, "--suffix", f"_{mode}")
        assert res.exit_code == 0, res.stderr
    a = torch.from_numpy(rgba[:, :, 3] / 255.0)[None, None].float()
    ref = {"bicubic": sruscale.imresize(a, 2), "model": sruscale.load_model(weights=fsrcnn_file)(a)}
    for mode, expected in ref.items():
        got = np.asarray(Image.open(out / f"a_{mode}.png"))[:, :, 3].astype(np.float64)
        assert np.abs(got - (expected.clamp(0, 1)[0, 0].numpy() * 255).round()).max() <= 1.0, mode


def test_interrupted_run_leaves_no_partial_file_and_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sruscale import upscaling

    for name in "abc":
        rgb(tmp_path / "in" / f"{name}.png")
    out = tmp_path / "out"
    real = upscaling.write_image
    calls = []

    real_replace = os.replace

    def interrupted_replace(*args: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the temporary file is written, before the rename

    def write_then_interrupt(path: Path, image: object, **kw: object) -> list[str]:
        calls.append(path)
        if len(calls) == 2:
            monkeypatch.setattr(os, "replace", interrupted_replace)
        try:
            return real(path, image, **kw)
        finally:
            monkeypatch.setattr(os, "replace", real_replace)

    monkeypatch.setattr(upscaling, "write_image", write_then_interrupt)
    res = upscale(tmp_path / "in", "-o", out, "-m", "bicubic", "-s", "2")
    assert res.exit_code != 0
    assert names(out) == ["a_x2.png"] and no_temp_files(out)
    monkeypatch.setattr(upscaling, "write_image", real)
    res = upscale(tmp_path / "in", "-o", out, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0
    assert flat("processed2") in flat(res.stdout) and flat("skipped(samesettings)1") in flat(res.stdout)
    assert names(out) == ["a_x2.png", "b_x2.png", "c_x2.png"]


def test_bundled_model_by_name_and_sha256_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    model = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1)
    path = sruscale.save_model(model, folder / "fsrcnn_x2.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "manifest.toml").write_text(
        f'[[weights]]\nname = "fsrcnn-x2"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = 2\n'
        f'sha256 = "{digest}"\nset5_psnr = 36.0\n'
    )
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(folder))
    src = rgb(tmp_path / "a.png")
    res = upscale(src, "-o", tmp_path / "o1", "--model", "fsrcnn-x2")
    assert res.exit_code == 0, res.stderr
    assert Image.open(tmp_path / "o1" / "a_x2.png").size == (20, 24)
    res = upscale(src, "-o", tmp_path / "o2", "--scale", "2")  # default model for x2 = the bundled one
    assert res.exit_code == 0 and (tmp_path / "o2" / "a_x2.png").is_file()

    path.write_bytes(path.read_bytes()[:-2] + b"\x00\x00")
    code, _, err = run_main(["upscale", str(src), "-o", str(tmp_path / "o3"), "--model", "fsrcnn-x2"])
    assert code == 1
    assert err.count("\n") == 1 and "error:" in err and "sha256 mismatch" in err and str(path) in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ dry run, quiet, progress


def test_dry_run_lists_work_and_loads_nothing(tmp_path: Path) -> None:
    a, b = rgb(tmp_path / "a.png"), rgb(tmp_path / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_x4.png").write_bytes(b"done before")
    # espcn has no bundled weights: loading it would be a usage error, so exit 0 proves no model is loaded
    res = upscale(a, b, "-o", out, "--model", "espcn", "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert f"{a} -> {out / 'a_x4.png'}\n" in res.stdout
    assert f"{b} -> {out / 'b_x4.png'} (redo: no settings record)" in res.stdout
    assert "2 files: 1 to write, 1 to redo (no settings record)" in res.stderr
    assert names(out) == ["b_x4.png"]


def test_quiet_silences_progress_and_summary_but_not_errors(tmp_path: Path) -> None:
    good = rgb(tmp_path / "a.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    res = upscale(good, bad, "-o", tmp_path / "out", "-m", "bicubic", "-s", "2", "--quiet")
    assert res.exit_code == 1
    assert res.stdout == ""
    assert "bad.png" in res.stderr and "upscaling" not in res.stderr


def test_progress_bar_shows_megapixels_per_second(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png")
    res = upscale(src, "-o", tmp_path / "out", "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0
    assert "upscaling" in res.stderr and "MP/s" in res.stderr and "1/1" in res.stderr


# ------------------------------------------------------------------ bad inputs and exit codes


def test_bad_files_are_reported_and_the_batch_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    rgb(src / "good1.png")
    rgb(src / "good2.png")
    (src / "empty.png").write_bytes(b"")
    full = (src / "good1.png").read_bytes()
    (src / "truncated.png").write_bytes(full[: len(full) // 2])
    (src / "garbage.jpg").write_bytes(os.urandom(300))
    rgb(src / "locked.png")
    rgb(src / "huge.png", 40, 40)
    locked = src / "locked.png"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads anything: simulate the permission error the OS would raise
        real = os.open

        def deny(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: object) -> int:
            if Path(path).name == "locked.png":
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", deny)
    out = tmp_path / "out"
    try:
        res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2", "--max-pixels", "1000")
    finally:
        locked.chmod(0o644)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert names(out) == ["good1_x2.png", "good2_x2.png"]
    for name, reason in [
        ("empty.png", "empty"),
        ("truncated.png", "truncated"),
        ("garbage.jpg", "not an image"),
        ("locked.png", "permission denied"),
        ("huge.png", "max-pixels"),
    ]:
        line = next((ln for ln in res.stderr.splitlines() if name in ln), "")
        assert "failed:" in line and reason in line.lower(), (name, res.stderr)
        assert flat(name) in flat(res.stdout)  # in the summary's failure table
    assert flat("processed2") in flat(res.stdout) and flat("failed5") in flat(res.stdout)
    assert no_temp_files(out)


@pytest.mark.parametrize(
    "args",
    [
        ["--precision", "fp64"],
        ["--device", "tpu"],
        ["--quality", "0"],
        ["--outscale", "-1"],
        ["--suffix", "a/b"],
        ["--format", "gif"],
        ["--alpha", "nearest"],
        ["--tile", "-1"],
        ["--scale", "5"],
        ["--model", "nonexistent"],
        ["--model", "espcn"],  # no bundled weights and no --weights
        ["--tile", "4"],  # not larger than the overlap
        ["--precision", "fp16", "--device", "cpu"],
    ],
)
def test_bad_option_values_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    src = rgb(tmp_path / "a.png")
    res = upscale(src, "-o", tmp_path / "out", *args)
    assert res.exit_code == 2, (args, res.stdout, res.stderr)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_input_problems_are_usage_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = upscale(empty, "-o", tmp_path / "out")
    assert res.exit_code == 2 and "noinputimagesfound" in flat(res.stderr)
    res = upscale(tmp_path / "missing.png", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "inputnotfound" in flat(res.stderr)
    res = upscale(f"{tmp_path}/*.webp", "-o", tmp_path / "out")
    assert res.exit_code == 2 and "noimagefilesmatch" in flat(res.stderr)
    res = upscale("-o", tmp_path / "out")
    assert res.exit_code == 2


def test_two_inputs_for_one_output_name_both(tmp_path: Path) -> None:
    a, b = rgb(tmp_path / "x" / "a.png"), rgb(tmp_path / "y" / "a.png")
    res = upscale(a, b, "-o", tmp_path / "out", "-m", "bicubic", "-s", "2")
    assert res.exit_code == 2
    assert flat(str(a)) in flat(res.stderr) and flat(str(b)) in flat(res.stderr)
    c = rgb(tmp_path / "x" / "a.jpg")
    res = upscale(a, c, "-o", tmp_path / "out", "-m", "bicubic", "-s", "2", "--format", "png")
    assert res.exit_code == 2 and flat(str(c)) in flat(res.stderr)


def test_refuses_to_overwrite_an_input_or_scan_the_output_folder(tmp_path: Path) -> None:
    a = rgb(tmp_path / "a.png")
    res = upscale(a, "-o", tmp_path, "-m", "bicubic", "-s", "2", "--suffix", "")
    assert res.exit_code == 2 and "overwriteinput" in flat(res.stderr)
    res = upscale(tmp_path, "-o", tmp_path, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 2 and "istheoutputfolder" in flat(res.stderr)
    res = upscale(a, "-o", tmp_path, "-m", "bicubic", "-s", "2")  # a file named explicitly is fine
    assert res.exit_code == 0 and (tmp_path / "a_x2.png").is_file()


# ------------------------------------------------------------------ help and the error boundary


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    """Call ``sruscale.cli.main`` in-process like the console script; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["sruscale", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.getvalue(), err.getvalue()


def test_main_exit_codes(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png")
    assert run_main(["upscale", str(src), "-o", str(tmp_path / "o"), "-m", "bicubic", "-s", "2", "-q"])[0] == 0
    (tmp_path / "bad.png").write_bytes(b"")
    code, _, err = run_main(["upscale", str(tmp_path / "bad.png"), "-o", str(tmp_path / "o"), "-m", "bicubic", "-q"])
    assert code == 1 and "empty" in err
    code, _, err = run_main(["upscale", str(src), "-o", str(tmp_path / "o"), "--precision", "fp64"])
    assert code == 2 and "Traceback" not in err
    code, out, _ = run_main(["upscale", "--help"])
    assert code == 0 and "--outscale" in out


def test_library_error_is_one_line_unless_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = rgb(tmp_path / "a.png")
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"not safetensors at all")
    argv = ["upscale", str(src), "-o", str(tmp_path / "o"), "--weights", str(weights)]
    code, _, err = run_main(argv)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1 and str(weights) in err
    monkeypatch.setenv("SRUSCALE_DEBUG", "1")
    with pytest.raises(sruscale.CheckpointError):
        sys.argv, old = ["sruscale", *argv], sys.argv
        try:
            main()
        finally:
            sys.argv = old


def test_help_mentions_every_option() -> None:
    res = runner.invoke(app, ["upscale", "--help"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    for opt in (
        "--output --scale --model --weights --tile --overlap --precision --device --outscale --self-ensemble "
        "--alpha --recursive --suffix --format --quality --overwrite --max-pixels --dry-run --quiet "
        "--width --height --long-side --wrap --backend --skip-existing --progress"
    ).split():
        assert opt in res.stdout, opt
    assert "torchrun" in res.stdout and flat("bicubic interpolation only when asked for") in flat(res.stdout)


def test_python_m_sruscale_help() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "sruscale", "--help"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "upscale" in proc.stdout
