"""`sruscale upscale` for real folders: settings-keyed skips, scale choice, progress, interrupts,
colour management, --wrap, help/version, lazy imports, the onnxruntime backend (issue 15)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from typer.testing import CliRunner

import sruscale
from sruscale.cli import app
from sruscale.image import ImageData, from_srgb, read_image, to_srgb
from sruscale.resize import imresize
from sruscale.upscaling import TargetSize
from sruscale.weights import choose_model

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
rng = np.random.default_rng(0)


def upscale(*args: str | Path) -> object:
    return runner.invoke(app, ["upscale", *map(str, args)], env={"COLUMNS": "250"})


def flat(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│╭╮╰╯─┃━┏┓┗┛┡┩└┘┌┐├┤┬┴┼")


def rgb(path: Path, h: int = 12, w: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def tiny_fsrcnn(scale: int, seed: int = 0) -> sruscale.SRModel:
    torch.manual_seed(seed)
    model = sruscale.create_model("fsrcnn", scale=scale, d=8, s=4, m=1, residual=True)
    with torch.no_grad():
        model.deconv.weight.normal_(std=0.05)
    return model


pytestmark = pytest.mark.usefixtures("isolated_env")  # conftest: no bundled weights, no torchrun variables


def bundle(folder: Path, scales: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with tiny FSRCNN models at ``scales`` and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in scales:
        path = sruscale.save_model(tiny_fsrcnn(s, seed=s), folder / f"fsrcnn_x{s}.safetensors")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append(
            f'[[weights]]\nname = "fsrcnn-x{s}"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = {s}\n'
            f'sha256 = "{digest}"\nset5_psnr = 30.0\n'
        )
    (folder / "manifest.toml").write_text("\n".join(rows))
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(folder))
    return folder


# ------------------------------------------------------------------ 1. skip-existing by settings


def test_rerun_with_another_model_reprocesses_and_says_why(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png", 16, 16)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    assert upscale(src, "-o", out, "-m", "bicubic", "-s", "2").exit_code == 0
    bicubic = (out / "a_x2.png").read_bytes()
    res = upscale(src, "-o", out, "--weights", weights)  # same output name, another model
    assert res.exit_code == 0, res.stderr
    assert (out / "a_x2.png").read_bytes() != bicubic
    assert flat("replaced(modelchanged)1") in flat(res.stdout)
    res = upscale(src, "-o", out, "--weights", weights)
    assert flat("skipped(samesettings)1") in flat(res.stdout) and flat("processed0") in flat(res.stdout)


def test_changed_quality_or_outscale_reprocesses_and_skip_existing_keeps(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png", 16, 16)
    out = tmp_path / "out"
    base = ("-o", out, "-m", "bicubic", "-s", "2", "-f", "jpg", "--suffix", "_up")
    assert upscale(src, *base, "--quality", "90").exit_code == 0
    res = upscale(src, *base, "--quality", "50")
    assert flat("replaced(qualitychanged)1") in flat(res.stdout)
    out_file = out / "a_up.jpg"
    out_file.write_bytes(b"kept")
    res = upscale(src, *base, "--outscale", "1.5", "--skip-existing")
    assert res.exit_code == 0 and out_file.read_bytes() == b"kept"
    assert flat("skipped(outputexists)1") in flat(res.stdout)
    res = upscale(src, *base, "--quality", "50", "--overwrite")
    assert out_file.read_bytes() != b"kept" and flat("replaced(--overwrite)1") in flat(res.stdout)
    assert upscale(src, *base, "--overwrite", "--skip-existing").exit_code == 2


def test_output_without_settings_record_is_redone(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_x2.png").write_bytes(b"made by something else")
    res = upscale(src, "-o", out, "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0 and flat("replaced(nosettingsrecord)1") in flat(res.stdout)
    assert Image.open(out / "a_x2.png").size == (20, 24)


# ------------------------------------------------------------------ 2. scales


def test_choose_model_rule() -> None:
    bundled = [("a-x2", 2), ("b-x4", 4), ("c-x3", 3), ("d-x4", 4)]
    assert choose_model(3, bundled=bundled).name == "c-x3" and choose_model(3, bundled=bundled).exact
    assert choose_model(4, bundled=bundled).name == "b-x4"  # first (best) entry of the scale
    pick = choose_model(2.5, bundled=bundled)
    assert (pick.name, pick.scale, pick.exact) == ("c-x3", 3, False) and "downscale to x2.5" in pick.describe()
    assert choose_model(1.5, bundled=bundled).name == "a-x2"
    beyond = choose_model(8, bundled=bundled)  # above the largest scale: the largest, then enlarged
    assert (beyond.name, beyond.scale) == ("b-x4", 4) and "enlargement to x8" in beyond.describe()
    with pytest.raises(sruscale.UnknownModelError, match="--model bicubic"):
        choose_model(2, bundled=[])
    with pytest.raises(sruscale.ConfigError, match="positive size factor"):
        choose_model(float("nan"), bundled=bundled)


def test_target_sizes_say_one_note_and_shrink_without_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle(tmp_path / "w", (2, 4), monkeypatch)
    for name, size in (("a", (10, 12)), ("b", (11, 13)), ("c", (40, 50))):
        rgb(tmp_path / "in" / f"{name}.png", *size)
    res = upscale(tmp_path / "in", "-o", tmp_path / "out", "--width", "39")  # x3.9, x3, x0.78
    assert res.exit_code == 0, res.stdout + res.stderr
    text = flat(res.stderr)
    assert text.count("fsrcnn-x4(x4),thendownscaled") == 1 and "x3.9" not in text  # one note, not one per factor
    assert text.count("MATLABbicubic(antialiased)resize,noSRmodel") == 1
    small = np.asarray(Image.open(tmp_path / "out" / "c_w39.png"), dtype=np.float64)
    src = torch.from_numpy(np.asarray(Image.open(tmp_path / "in" / "c.png"), dtype=np.float64) / 255)
    want = imresize(src.permute(2, 0, 1)[None], size=small.shape[:2])[0].permute(1, 2, 0).clamp(0, 1)
    assert np.abs(small - (want.numpy() * 255).round()).max() <= 1  # one antialiased resize


def test_target_size_keeps_aspect() -> None:
    assert TargetSize(width=100).size_for(30, 50) == (60, 100)
    assert TargetSize(height=90).size_for(30, 50) == (90, 150)
    assert TargetSize(long_side=200).size_for(30, 50) == (120, 200)
    assert TargetSize(long_side=200).size_for(50, 30) == (200, 120)
    assert TargetSize(width=100, height=30).size_for(30, 50) == (30, 50)  # fits inside both


def test_scale_above_bundled_uses_the_largest_then_enlarges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle(tmp_path / "w", (2, 3, 4), monkeypatch)
    src = rgb(tmp_path / "a.png", 10, 12)
    for scale in ("8", "5"):
        res = upscale(src, "-o", tmp_path / "out", "--scale", scale)
        assert res.exit_code == 0, res.stderr
        assert flat(f"usingfsrcnn-x4(x4),thenaMATLABbicubic(antialiased)enlargementtox{scale}") in flat(res.stderr)
        assert Image.open(tmp_path / "out" / f"a_x{scale}.png").size == (12 * int(scale), 10 * int(scale))
        # --model best is the same request (one rule): the same pixels
        res = upscale(src, "-o", tmp_path / "best", "--scale", scale, "--model", "best")
        assert res.exit_code == 0, res.stderr
        a, b = (np.asarray(Image.open(d / f"a_x{scale}.png")) for d in (tmp_path / "out", tmp_path / "best"))
        assert np.array_equal(a, b)


def test_export_and_library_default_follow_the_same_scale_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sruscale.weights import choose_model
    from sruscale.weights._manifest import bundled_models

    bundle(tmp_path / "w", (2, 4), monkeypatch)
    assert bundled_models() == [("fsrcnn-x2", 2), ("fsrcnn-x4", 4)]
    assert choose_model(3).name == "fsrcnn-x4" and not choose_model(3).exact
    assert sruscale.load_model(scale=2).name == "fsrcnn"  # exact bundled scale
    assert choose_model(8).name == "fsrcnn-x4" and "enlargement to x8" in choose_model(8).describe()
    assert sruscale.load_model(scale=8).name == "bicubic"  # the library's model must be exactly x8


def test_outscale_uses_the_exact_bundled_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle(tmp_path / "w", (2, 3, 4), monkeypatch)
    src = rgb(tmp_path / "a.png", 10, 12)
    res = upscale(src, "-o", tmp_path / "out", "--outscale", "3")
    assert res.exit_code == 0, res.stderr
    assert flat("default:bundledfsrcnn-x3,x3") in flat(res.stdout) and "downscale" not in res.stderr
    assert Image.open(tmp_path / "out" / "a_x3.png").size == (36, 30)


def test_scale_between_bundled_ones_uses_next_up_then_downscales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle(tmp_path / "w", (2, 4), monkeypatch)
    src = rgb(tmp_path / "a.png", 10, 12)
    res = upscale(src, "-o", tmp_path / "out", "--scale", "3")
    assert res.exit_code == 0, res.stderr
    assert flat("nobundledx3model:usingfsrcnn-x4(x4),thenaMATLABbicubic(antialiased)downscaletox3") in flat(res.stderr)
    assert Image.open(tmp_path / "out" / "a_x3.png").size == (36, 30)


def test_width_height_long_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle(tmp_path / "w", (2, 4), monkeypatch)
    src = rgb(tmp_path / "a.png", 10, 20)
    out = tmp_path / "out"
    assert upscale(src, "-o", out, "--width", "50").exit_code == 0
    assert Image.open(out / "a_w50.png").size == (50, 25)
    assert upscale(src, "-o", out, "--height", "30").exit_code == 0
    assert Image.open(out / "a_h30.png").size == (60, 30)
    assert upscale(src, "-o", out, "--long-side", "80").exit_code == 0
    assert Image.open(out / "a_l80.png").size == (80, 40)
    # x10, beyond every bundled scale: the largest model, then enlarged; the same with --model best
    for name, args in (("default", ()), ("best", ("--model", "best"))):
        res = upscale(src, "-o", tmp_path / name, "--long-side", "200", *args)
        assert res.exit_code == 0, res.stdout + res.stderr
        assert flat("fsrcnn-x4(x4),thenenlargedtothetargetsize") in flat(res.stderr)
    a, b = (np.asarray(Image.open(tmp_path / d / "a_l200.png")) for d in ("default", "best"))
    assert a.shape == (100, 200, 3) and np.array_equal(a, b)


# ------------------------------------------------------------------ 3. progress


def test_progress_json_lines(tmp_path: Path) -> None:
    big = rgb(tmp_path / "in" / "big.png", 64, 64)
    rgb(tmp_path / "in" / "small.png", 8, 8)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    res = upscale(tmp_path / "in", "-o", tmp_path / "out", "-w", weights, "--tile", "32", "--progress", "json")
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    tiles = [r for r in lines if r["event"] == "tile" and r["file"] == str(big)]
    assert tiles and tiles[-1]["tiles_done"] == tiles[-1]["tiles_total"] > 1
    assert {"out_mp_per_s", "eta_s"} <= set(tiles[-1])
    files = [r for r in lines if r["event"] == "file"]
    assert [Path(r["file"]).name for r in files] == ["big.png", "small.png"] and files[-1]["eta_s"] == 0
    assert lines[-1]["event"] == "summary" and lines[-1]["processed"] == 2
    assert "upscaling" not in res.stderr


def test_progress_bar_names_the_file_and_counts_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.progress import Progress

    src = rgb(tmp_path / "photo_one.png", 64, 64)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    updates: list[dict[str, object]] = []
    real = Progress.update

    def spy(self: Progress, task: object, **kw: object) -> None:
        updates.append(kw)
        real(self, task, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Progress, "update", spy)
    res = upscale(src, "-o", tmp_path / "out", "-w", weights, "--tile", "32")
    assert res.exit_code == 0, res.stderr
    assert any(u.get("description") == "photo_one.png" for u in updates)
    assert any(str(u.get("tiles", "")).startswith("tile 3/") for u in updates)
    assert any(isinstance(u.get("eta"), float) for u in updates) and "MP/s" in res.stderr and "eta" in res.stderr


# ------------------------------------------------------------------ 4. interrupts


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_prints_summary_and_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    from sruscale import upscaling

    for name in "abc":
        rgb(tmp_path / "in" / f"{name}.png")
    real = upscaling.forward_stage
    calls: list[Path] = []

    def forward(st: upscaling.Staged, *args: object, **kw: object) -> None:
        calls.append(st.job.source)
        if len(calls) == 2:  # while a is written behind and c is read ahead
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt
        real(st, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(upscaling, "forward_stage", forward)
    monkeypatch.setattr(upscaling, "BATCH_MAX_PIXELS", 0)  # one file at a time
    before = signal.getsignal(signal.SIGTERM)
    res = upscale(tmp_path / "in", "-o", tmp_path / "out", "-m", "bicubic", "-s", "2")
    assert res.exit_code == 130
    assert flat("processed1") in flat(res.stdout) and "interrupted" in res.stdout
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a_x2.png"]
    assert not list((tmp_path / "out").glob(".*.claim"))  # no claim of b or c (read ahead) is left behind
    assert signal.getsignal(signal.SIGTERM) is before  # restored


def test_degrade_and_evaluate_interrupts_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.cli import degrade, evaluate

    rgb(tmp_path / "hr" / "a.png", 16, 16)

    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(degrade, "run_degrade", interrupted)
    res = runner.invoke(app, ["degrade", str(tmp_path / "hr"), str(tmp_path / "pairs"), "--scale", "2"])
    assert res.exit_code == 130 and "interrupted" in res.stderr and "pairs written" in res.stderr
    monkeypatch.setattr(evaluate, "run_evaluation", interrupted)
    rgb(tmp_path / "sr" / "a.png", 16, 16)
    res = runner.invoke(app, ["evaluate", str(tmp_path / "sr"), str(tmp_path / "hr"), "--scale", "2"])
    assert res.exit_code == 130 and "interrupted" in res.stderr


def test_train_stopped_by_signal_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sruscale.training as training
    from sruscale.training.loop import FitResult

    fields = {f: None for f in FitResult.__dataclass_fields__}
    stopped = FitResult(**{**fields, "iteration": 3, "complete": False, "skipped": 0})  # type: ignore[arg-type]
    monkeypatch.setattr(training, "fit", lambda *a, **k: stopped)
    res = runner.invoke(app, ["train", str(REPO / "train" / "fsrcnn_x2.toml"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 130, res.output


def test_resume_with_changed_settings_is_explained() -> None:
    from sruscale.training.checkpoints import resume_changes

    base = {"iterations": 100, "schedule": {"name": "multistep"}, "optim": {"lr": 1e-3}, "data": {"workers": 0}}
    allowed, refused = resume_changes(base, {**base, "iterations": 200, "data": {"workers": 4}})
    assert not refused and any("iterations: 100 -> 200" in a and "continues unchanged" in a for a in allowed)
    cosine = {**base, "schedule": {"name": "cosine"}}
    _, refused = resume_changes(cosine, {**cosine, "iterations": 200})
    assert refused and "cosine" in refused[0] and "100 -> 200" in refused[0]
    _, refused = resume_changes(base, {**base, "optim": {"lr": 1e-4}})
    assert refused == ["optim.lr: 0.001 -> 0.0001"]


# ------------------------------------------------------------------ 5. colour and edges


def _matrix_profile(desc: str, rgb_xyz: list[tuple[float, float, float]], gamma: float) -> bytes:
    """A minimal ICC v2 RGB matrix/TRC display profile (D50 PCS)."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    text = desc.encode() + b"\0"
    tags = [
        (b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 12 + b"\0" * 67),
        (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
        (b"rXYZ", xyz(rgb_xyz[0])),
        (b"gXYZ", xyz(rgb_xyz[1])),
        (b"bXYZ", xyz(rgb_xyz[2])),
        (b"rTRC", b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"),
        (b"cprt", b"text\0\0\0\0no copyright\0"),
    ]
    tags += [(b"gTRC", tags[5][1]), (b"bTRC", tags[5][1])]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I", size) + b"\0" * 4 + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
    header += b"\0" * (68 - len(header)) + s15(0.9642) + s15(1.0) + s15(0.8249)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


P3 = _matrix_profile(
    "Display P3 (test)",
    [(0.515102, 0.241182, -0.00105), (0.291965, 0.692236, 0.041882), (0.157153, 0.066582, 0.784168)],
    2.2,
)


def test_wide_gamut_is_converted_to_srgb_and_back() -> None:
    ImageCms.ImageCmsProfile(io.BytesIO(P3))  # a valid profile
    # colours inside both gamuts (saturated P3 colours outside sRGB are clipped by the conversion)
    x = torch.tensor([[180, 120, 100], [120, 160, 140], [90, 110, 170], [128, 128, 128]], dtype=torch.float32)
    x = x.T.reshape(1, 3, 1, 4) / 255
    for depth in (8, 16):
        img = ImageData(x, None, depth, icc_profile=P3)
        work, profile = to_srgb(img)
        assert profile == P3 and work.icc_profile == P3
        moved = (work.pixels - x).abs().amax().item() * 255
        assert moved > 8  # P3 primaries are more saturated than sRGB's: values change
        back = from_srgb(work, profile)
        assert (back.pixels - x).abs().amax().item() * 255 <= 2.0
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert to_srgb(ImageData(x, None, 8, icc_profile=srgb)) == (ImageData(x, None, 8, icc_profile=srgb), None)


def test_cli_feeds_the_network_srgb_and_reembeds_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale import upscaling

    arr = np.full((8, 8, 3), (180, 120, 100), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "p3.png", icc_profile=P3)
    seen: list[torch.Tensor] = []
    real = upscaling.upscale_image

    def spy(image: ImageData, *args: object, **kw: object) -> object:
        seen.append(image.pixels.clone())
        return real(image, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(upscaling, "upscale_image", spy)
    res = upscale(tmp_path / "p3.png", "-o", tmp_path / "out", "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0, res.stderr
    expected = np.asarray(
        ImageCms.profileToProfile(
            Image.fromarray(arr), ImageCms.ImageCmsProfile(io.BytesIO(P3)), ImageCms.createProfile("sRGB")
        )
    )[0, 0]
    assert np.abs(seen[0][0, :, 0, 0].numpy() * 255 - expected).max() <= 1
    out = Image.open(tmp_path / "out" / "p3_x2.png")
    assert out.info.get("icc_profile") == P3
    assert np.abs(np.asarray(out).astype(int) - arr.astype(int)[0, 0]).max() <= 2


def test_wrap_output_tiles_seamlessly(tmp_path: Path) -> None:
    model = tiny_fsrcnn(2)
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    mosaic = x.repeat(1, 1, 3, 3)  # the texture tiled 3x3: its centre has true neighbours
    ref = sruscale.upscale_image(mosaic, model, tile=0)[..., 40:80, 48:96]
    wrapped = sruscale.upscale_image(x, model, tile=0, wrap=True)
    plain = sruscale.upscale_image(x, model, tile=0)
    assert (wrapped - ref).abs().max() < 1e-5
    assert (plain - ref).abs().max() > 1e-3  # mirrored edges differ: the test can fail
    # left and right edges continue each other: the seam step is like any interior step
    seam = (wrapped[..., 0] - wrapped[..., -1]).abs().mean()
    assert abs(seam - (ref[..., 1] - ref[..., 0]).abs().mean()) < 0.02 or seam < 0.2
    tiled = sruscale.upscale_image(x, model, tile=28, wrap=True)
    assert (tiled - wrapped).abs().max() < 1e-5


def test_wrap_in_cli(tmp_path: Path) -> None:
    src = rgb(tmp_path / "t.png", 16, 16)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    assert upscale(src, "-o", tmp_path / "a", "-w", weights, "--wrap").exit_code == 0
    assert upscale(src, "-o", tmp_path / "b", "-w", weights).exit_code == 0
    a = np.asarray(Image.open(tmp_path / "a" / "t_x2.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "b" / "t_x2.png")).astype(int)
    assert a.shape == b.shape == (32, 32, 3) and np.abs(a - b)[:, 0].max() > 0  # edges differ from mirroring


def test_small_overlap_warns_with_the_safe_value(tmp_path: Path) -> None:
    src = rgb(tmp_path / "a.png", 40, 40)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    safe = 2 * tiny_fsrcnn(2).receptive_field
    res = upscale(src, "-o", tmp_path / "out", "-w", weights, "--tile", "24", "--overlap", "0")
    assert res.exit_code == 0, res.stderr
    assert flat("--tile24with--overlap0mayshowseams") in flat(res.stderr) and flat(f"--overlap{safe}ormore") in flat(
        res.stderr
    )
    res = upscale(src, "-o", tmp_path / "out2", "-w", weights, "--tile", "48", "--overlap", str(safe))
    assert "seams" not in res.stderr


# ------------------------------------------------------------------ 6. help, version, hints


@pytest.mark.parametrize("command", [[], ["upscale"], ["degrade"], ["evaluate"], ["train"], ["models"], ["export"]])
def test_help_in_plain_words(command: list[str]) -> None:
    res = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for word in ("<bool>", "<int>", "<float>", "<str>", "<path>", "NoneType", "Optional", "int | None", "<list"):
        assert word not in res.stdout, (command, word)


def test_overlap_help_states_the_real_default() -> None:
    res = runner.invoke(app, ["upscale", "--help"], env={"COLUMNS": "250"})
    assert flat("Default:twicethemodel'sreceptivefield") in flat(res.stdout)


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"sruscale {sruscale.__version__}"


def test_hint_for_subfolders_without_recursive(tmp_path: Path) -> None:
    rgb(tmp_path / "in" / "top.png")
    rgb(tmp_path / "in" / "holiday" / "deep.png")
    res = upscale(tmp_path / "in", "-o", tmp_path / "out", "-m", "bicubic", "-s", "2")
    assert res.exit_code == 0
    assert "hint:" in res.stderr and "holiday" in res.stderr and "-r" in res.stderr
    res = upscale(tmp_path / "in", "-o", tmp_path / "out2", "-m", "bicubic", "-s", "2", "-r")
    assert "hint:" not in res.stderr


# ------------------------------------------------------------------ 7. lazy imports


@pytest.mark.parametrize("args", [["--help"], ["upscale", "--help"], ["--version"]])
def test_help_does_not_import_torch(args: list[str]) -> None:
    code = (
        "import sys\nfrom sruscale.cli import main\n"
        f"sys.argv = ['sruscale', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("NO-TORCH")


# ------------------------------------------------------------------ 9. onnxruntime backend


def test_onnxruntime_backend_matches_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sruscale.weights._onnx import OnnxRuntimeModel

    model = tiny_fsrcnn(2).eval()
    ort_model = OnnxRuntimeModel.from_model(model, folder=tmp_path / "cache")
    x = torch.rand(1, 3, 40, 36)
    a = sruscale.upscale_image(x, model, tile=16, overlap=8)
    b = sruscale.upscale_image(x, ort_model, tile=16, overlap=8)
    assert (a - b).abs().max() <= 1 / 255
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1  # exported once, cached
    src = rgb(tmp_path / "a.png", 20, 20)
    weights = sruscale.save_model(model, tmp_path / "tiny.safetensors")
    assert upscale(src, "-o", tmp_path / "o1", "-w", weights, "--backend", "onnxruntime").exit_code == 0
    assert upscale(src, "-o", tmp_path / "o2", "-w", weights).exit_code == 0
    d = np.abs(
        np.asarray(Image.open(tmp_path / "o1" / "a_x2.png")).astype(int)
        - np.asarray(Image.open(tmp_path / "o2" / "a_x2.png"))
    )
    assert d.max() <= 1
    res = upscale(src, "-o", tmp_path / "o1", "-w", weights)  # same weights: the torch rerun skips
    assert flat("skipped(samesettings)1") in flat(res.stdout)


def test_read_image_roundtrip_keeps_p3_profile(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "p.png", icc_profile=P3)
    assert read_image(tmp_path / "p.png").icc_profile == P3


# ------------------------------------------------------------------ training bar


def test_training_bar_updates_every_step_and_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from sruscale.cli import train as train_cli

    sink = io.StringIO()
    monkeypatch.setattr(train_cli, "_console", Console(file=sink, width=80, force_terminal=False))
    display = train_cli._Display()
    display(
        "start", {"iter": 0, "end": 1000, "iterations": 1000, "images": 91, "color": "y", "device": "cpu", "world": 1}
    )
    display("step", {"iter": 7, "loss": 0.1})
    assert display.progress.tasks[0].completed == 7  # between log rows, every iteration moves the bar
    gan = {"loss": 0.0123, "l1": 0.011, "perceptual": 0.52, "adversarial_loss": 0.0071, "d_loss": 0.69, "d_real": 0.51}
    display("train", {"iter": 10, "lr": 1e-4, "it_s": 3.2, "time": 1.0, **gan})
    display.progress.stop()
    out = Console(file=io.StringIO(), width=80, record=True)
    out.print(display.progress.get_renderable())
    lines = out.export_text().splitlines()
    assert lines and all(len(line) <= 80 for line in lines) and len(lines) == 1, lines
    assert "10/1000" in lines[0] and "lr=" in lines[0]
    assert display.progress.live.refresh_per_second <= 4


# ------------------------------------------------------------------ 8. small images batched


def test_small_images_share_one_forward_with_the_same_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale import upscaling

    for k in range(5):
        rgb(tmp_path / "in" / f"s{k}.png", 16, 12)
    rgb(tmp_path / "in" / "z_other_size.png", 10, 10)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "tiny.safetensors")
    assert upscale(tmp_path / "in", "-o", tmp_path / "single", "-w", weights, "-q").exit_code == 0  # reference
    batches: list[int] = []
    real = upscaling.upscale_image

    def spy(image: object, *args: object, **kw: object) -> object:
        if isinstance(image, torch.Tensor):
            batches.append(image.shape[0])
        return real(image, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(upscaling, "upscale_image", spy)
    res = upscale(tmp_path / "in", "-o", tmp_path / "batched", "-w", weights)
    assert res.exit_code == 0, res.stderr
    assert 5 in batches  # the five 16x12 images went through one forward
    for k in [*range(5)]:
        a = np.asarray(Image.open(tmp_path / "single" / f"s{k}_x2.png")).astype(int)
        b = np.asarray(Image.open(tmp_path / "batched" / f"s{k}_x2.png")).astype(int)
        assert np.abs(a - b).max() <= 1
    assert (tmp_path / "batched" / "z_other_size_x2.png").is_file()
    res = upscale(tmp_path / "in", "-o", tmp_path / "batched", "-w", weights)
    assert flat("skipped(samesettings)6") in flat(res.stdout)


# ------------------------------------------------------------------ 10. your own photos end to end


def family_bundle(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with fsrcnn-x2 and a ``realworld`` family at x4 (rw-light: denoise 0, rw-strong: 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, scale, seed, extra in (
        ("fsrcnn-x2", 2, 2, "set5_psnr = 30.0\n"),
        ("rw-light", 4, 4, 'family = "realworld"\ndenoise = 0.0\n'),
        ("rw-strong", 4, 5, 'family = "realworld"\ndenoise = 1.0\n'),
    ):
        path = sruscale.save_model(tiny_fsrcnn(scale, seed=seed), folder / f"{name}.safetensors")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append(
            f'[[weights]]\nname = "{name}"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = {scale}\n'
            f'sha256 = "{digest}"\n{extra}'
        )
    (folder / "manifest.toml").write_text("\n".join(rows))
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(folder))
    return folder


def record(out: Path, name: str) -> dict[str, object]:
    return json.loads((out / ".sruscale" / f"{name}.json").read_text())


def test_record_and_summary_name_the_whole_recipe_in_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sruscale.upscaling import model_digest

    family_bundle(tmp_path / "w", monkeypatch)
    src, out = rgb(tmp_path / "a.png"), tmp_path / "out"
    res = runner.invoke(app, ["upscale", str(src), "-o", str(out), "-m", "realworld"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.stderr
    rec = record(out, "a_x4.png")
    digest = model_digest(sruscale.load_model("realworld"))
    assert rec["request"] == {"model": "realworld", "weights": None, "scale": 4, "outscale": None}
    assert rec["model"] == "realworld at denoise 0.75 (bundled rw-light + rw-strong)" and rec["arch"] == "fsrcnn"
    assert rec["family"] == "realworld" and rec["denoise"] == 0.75 and rec["weights_sha256"] == digest
    text = flat(res.stdout)
    assert flat("realworld at denoise 0.75 (bundled rw-light + rw-strong), x4") in text
    assert flat("family realworld, denoise 0.75") in text and digest[:16] in text
    assert max(map(len, res.stdout.splitlines())) <= 80
    res = runner.invoke(app, ["upscale", str(src), "-o", str(out), "-m", "realworld", "--denoise", "0.3"])
    assert flat("replaced(denoisechanged)1") in flat(res.stdout) and record(out, "a_x4.png")["denoise"] == 0.3
    deep = tmp_path / ("long_folder_name_" * 5) / "my_own_model_with_a_long_name.safetensors"
    deep.parent.mkdir()
    weights = sruscale.save_model(tiny_fsrcnn(2), deep)
    res = runner.invoke(app, ["upscale", str(src), "-o", str(out), "-w", str(weights)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.stderr
    assert max(map(len, res.stdout.splitlines())) <= 80 and res.stdout.splitlines()[0].strip() == "sruscale upscale"
    assert flat(str(weights)) in flat(res.stdout)


def test_older_record_is_kept_when_nothing_that_matters_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    family_bundle(tmp_path / "w", monkeypatch)
    src, out = rgb(tmp_path / "a.png"), tmp_path / "out"
    assert upscale(src, "-o", out, "-m", "fsrcnn-x2").exit_code == 0
    new = record(out, "a_x2.png")
    old_keys = ("weights_sha256", "scale", "outscale", "target", "self_ensemble", "alpha", "precision", "wrap")
    old = {k: new[k] for k in (*old_keys, "format", "quality")} | {"model": "fsrcnn"}  # what sruscale 0.1 wrote
    (out / ".sruscale" / "a_x2.png.json").write_text(json.dumps(old))
    res = upscale(src, "-o", out, "-m", "fsrcnn-x2", "--dry-run")
    assert "(check: record of an older sruscale: the weights decide)" in res.stdout
    res = upscale(src, "-o", out, "-m", "fsrcnn-x2")
    assert flat("skipped(samesettings)1") in flat(res.stdout)
    assert record(out, "a_x2.png") == new  # brought up to date
    (out / ".sruscale" / "a_x2.png.json").write_text(json.dumps(old | {"weights_sha256": "0" * 64}))
    res = upscale(src, "-o", out, "-m", "fsrcnn-x2")
    assert flat("replaced(weightschanged)1") in flat(res.stdout)


def test_dry_run_says_what_would_be_written_skipped_redone_or_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sruscale import batch

    family_bundle(tmp_path / "w", monkeypatch)
    a, b, c = (rgb(tmp_path / "in" / f"{n}.png") for n in "abc")
    out = tmp_path / "out"
    assert upscale(a, b, "-o", out, "-m", "fsrcnn-x2").exit_code == 0
    (out / ".sruscale" / "b_x2.png.json").unlink()

    def no_loading(*args: object, **kw: object) -> None:
        raise AssertionError("--dry-run loaded a model")

    real = batch.load_model
    monkeypatch.setattr(batch, "load_model", no_loading)
    res = upscale(a, b, c, "-o", out, "-m", "fsrcnn-x2", "-s", "2", "-n")
    assert res.exit_code == 0, res.stderr
    assert f"{a} -> {out / 'a_x2.png'} (skip: same settings)" in res.stdout
    assert f"{b} -> {out / 'b_x2.png'} (redo: no settings record)" in res.stdout
    assert f"{c} -> {out / 'c_x2.png'}\n" in res.stdout
    assert "3 files: 1 to write, 1 to skip (same settings), 1 to redo (no settings record)" in res.stderr
    res = upscale(a, b, "-o", out, "-m", "bicubic", "-s", "2", "--quality", "80", "-f", "png", "-n")
    assert "2 to redo (model, quality changed: 1, no settings record: 1)" in res.stderr
    monkeypatch.setattr(batch, "load_model", real)  # the run agrees with the prediction
    res = upscale(a, b, "-o", out, "-m", "bicubic", "-s", "2", "--quality", "80", "-f", "png")
    assert flat("replaced(model,qualitychanged)1") in flat(res.stdout)
    weights = sruscale.save_model(tiny_fsrcnn(2), tmp_path / "mine.safetensors")
    assert upscale(a, "-o", out, "-w", weights).exit_code == 0
    res = upscale(a, "-o", out, "-w", weights, "-n")
    assert "(check: --weights file: its weights decide)" in res.stdout and "1 to check" in res.stderr


def test_suffix_fields_let_models_share_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sruscale.errors import ConfigError
    from sruscale.upscaling import render_suffix

    family_bundle(tmp_path / "w", monkeypatch)
    src, out = rgb(tmp_path / "a.png"), tmp_path / "out"
    for model in ("fsrcnn-x2", "realworld"):
        assert upscale(src, "-o", out, "-m", model, "--suffix", "_{model}_x{scale}_d{denoise}").exit_code == 0
    assert names(out) == ["a_fsrcnn-x2_x2_d.png", "a_realworld_x4_d0.75.png"]  # no denoise control: empty
    assert upscale(src, "-o", out, "-m", "bicubic", "-s", "2").exit_code == 0
    res = upscale(src, "-o", out, "-m", "fsrcnn-x2")  # the default suffix: the other model's output is replaced
    assert flat("replaced(modelchanged)1") in flat(res.stdout) and "a_x2.png" in names(out)
    res = upscale(src, "-o", out, "--suffix", "_{model}_{size}")
    assert res.exit_code == 2 and flat("unknown --suffix field {size}") in flat(res.stderr)
    assert flat("expected one of {model}, {scale}, {outscale}, {denoise}, {width}, {height}") in flat(res.stderr)
    assert render_suffix("_{{w}}{width}", {"width": "640"}) == "_{w}640"
    for bad in ("_{scale:02d}", "_{scale", "_{}"):
        with pytest.raises(ConfigError, match="--suffix"):
            render_suffix(bad, {"scale": "4"})


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_family_without_the_scale_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    family_bundle(tmp_path / "w", monkeypatch)
    res = upscale(rgb(tmp_path / "a.png"), "-o", tmp_path / "out", "-m", "realworld", "--scale", "3")
    assert res.exit_code == 2 and flat("use--scale4--outscale3") in flat(res.stderr)


@pytest.mark.parametrize("mode", ["bar", "json"])
def test_interrupt_while_the_model_loads_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from sruscale import batch

    def loading(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "prepare_models", loading)
    res = upscale(rgb(tmp_path / "a.png"), "-o", tmp_path / "out", "-m", "bicubic", "--progress", mode)
    assert res.exit_code == 130
    if mode == "json":
        summary = json.loads(res.stdout.splitlines()[-1])
        assert summary["event"] == "summary" and summary["interrupted"] and summary["processed"] == 0
    else:
        assert flat("processed0") in flat(res.stdout) and flat("interruptedyes") in flat(res.stdout)
        assert "nothing was written" in res.stderr


def test_eta_waits_out_the_warm_up_and_counts_output_megapixels() -> None:
    from sruscale.batch import PreparedModels, output_megapixels
    from sruscale.cli.upscale import _Tracker
    from sruscale.models.bicubic import Bicubic
    from sruscale.upscaling import UpscaleSettings

    t, now, etas = _Tracker(total_mp=100.0), 0.0, []
    for tile in range(1, 20):  # 1 MP tiles: the first takes 10 s (warm-up), the others 1 s
        now += 10.0 if tile == 1 else 1.0
        t.done_mp = t.busy_mp = float(tile)
        t.rate.observe(t.busy_mp, now=now)
        etas.append(t.eta())
    assert etas[:2] == [None, None]  # never extrapolated from the first tile (990 s), nor from 1 s of work
    assert etas[2] == pytest.approx(97, rel=0.01) and etas[-1] == pytest.approx(81, rel=0.01)  # 1 MP/s once warm
    bicubic = Bicubic(scale=2)
    prepared = PreparedModels(bicubic, bicubic, [], UpscaleSettings())
    assert output_megapixels((1000, 500), prepared) == pytest.approx(2.0)  # the unit: output megapixels
    prepared = PreparedModels(bicubic, bicubic, [], UpscaleSettings(target=TargetSize(width=1000)))
    assert output_megapixels((1000, 500), prepared) == pytest.approx(2.0)
    assert output_megapixels(None, prepared) == 0.0


def test_help_explains_suffix_fields_dry_run_and_units() -> None:
    res = runner.invoke(app, ["upscale", "--help"], env={"COLUMNS": "250"})
    text = flat(res.stdout)
    assert flat("_{model}_x{scale}") in text and flat("is left empty") in text
    assert flat("write, skip, redo") in text and flat("Loads no model") in text
    assert flat("output megapixels per second") in text and "out_mp_per_s" in text


def test_interrupt_during_the_imports_waits_for_them() -> None:
    """A Ctrl-C while torch is imported (option parsing, the command's first lines) cannot be followed by a
    summary if it cuts the import short: it waits until the imports are done, and --device imports no torch."""
    from sruscale.cli._interrupt import interrupts_deferred

    before = signal.getsignal(signal.SIGINT)
    reached = False
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        reached = True  # the block runs to its end
    assert reached and signal.getsignal(signal.SIGINT) is before
    code = "import sys; from sruscale.cli._options import check_device as c; c('cuda:1'); print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


# ------------------------------------------------------------------ 5. the pipelined batch


def test_pipelined_batch_writes_the_bytes_of_one_file_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading ahead and writing behind change neither the bytes nor the order: outputs equal
    process_job's one at a time, events come in job order, a bad file fails alone, a second run skips."""
    from sruscale import batch, upscaling

    monkeypatch.setattr(upscaling, "BATCH_MAX_PIXELS", 0)  # every file through the pipeline
    src = tmp_path / "in"
    rgb(src / "a.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 65535, (20, 18, 3), dtype=np.uint16).astype(np.uint16)[..., 0]
                    ).save(src / "b16.png")  # fmt: skip
    (src / "c.png").write_bytes(b"not a png")
    rgba = np.random.default_rng(2).integers(0, 256, (17, 23, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(src / "d.png")
    rgb(src / "e.png")
    weights = tmp_path / "w.safetensors"
    torch.manual_seed(0)
    sruscale.save_model(sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1), weights)
    request = batch.UpscaleRequest(inputs=(str(src),), output=tmp_path / "piped", weights=weights)
    plan = batch.plan_batch(request)
    prepared = batch.prepare_models(plan)
    events: list[tuple[str, int]] = []
    summary = batch.run_batch(plan.jobs, prepared, on_event=lambda e: events.append((type(e).__name__, e.index)))
    assert [e for e in events if e[0] == "FileEnd"] == [("FileEnd", i) for i in range(5)]
    assert summary.processed == 4 and summary.failed == 1
    seq = batch.plan_batch(batch.UpscaleRequest(inputs=(str(src),), output=tmp_path / "seq", weights=weights))
    for job in seq.jobs:
        upscaling.process_job(job, prepared.models, prepared.settings)
    for job in seq.jobs:
        piped = tmp_path / "piped" / job.output.name
        assert piped.exists() == job.output.exists(), job.output.name
        if job.output.exists():
            assert piped.read_bytes() == job.output.read_bytes(), job.output.name
    again = batch.run_batch(plan.jobs, prepared)
    assert again.skipped == 4 and again.failed == 1
    assert not list((tmp_path / "piped").glob(".*.claim"))


# ------------------------------------------------------------------ 6. memory: no float copy of the output


def test_final8_output_is_the_bytes_of_the_float_path(tmp_path: Path) -> None:
    """An 8-bit image upscaled to its final uint8 values (tiled, channels-last) writes the same file as
    the float path; the tiled uint8 output equals the whole-image float output within 1/255."""
    from sruscale.api import upscale_image
    from sruscale.evaluation.protocol import quantize
    from sruscale.image import tensor_to_array, write_image
    from sruscale.tiling import upscale_tensor

    torch.manual_seed(0)
    model = sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1).eval()
    rgb(tmp_path / "in.png", 70, 90)
    image = read_image(tmp_path / "in.png")
    ref = upscale_image(image, model, tile=32)
    fast = upscale_image(image, model, tile=32, final8=True)
    assert fast.pixels.dtype == torch.uint8 and ref.pixels.dtype == torch.float32
    assert torch.equal(fast.pixels, quantize(ref.pixels, 8).mul(255).round().to(torch.uint8))
    assert np.shares_memory(tensor_to_array(fast.pixels), fast.pixels.numpy())  # the encoder's array is a view
    write_image(tmp_path / "a.png", ref)
    write_image(tmp_path / "b.png", fast)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    whole = upscale_tensor(model, image.pixels, tile=0)
    strips = upscale_tensor(model, image.pixels, tile=24, out_dtype=torch.uint8)
    assert (strips.float() - whole.mul(255)).abs().max().item() <= 1.0
    alpha = image.with_pixels(image.pixels, torch.ones(1, 1, 70, 90) * 0.5)  # alpha or 16-bit: float as before
    assert upscale_image(alpha, model, final8=True).pixels.is_floating_point()
    with pytest.raises(sruscale.errors.ImageError, match="expected float"):
        ImageData(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), None, 16)


def test_tensor_to_array_in_bands_equals_the_whole_conversion() -> None:
    from sruscale.image import tensor_to_array

    x = torch.rand(1, 3, 2000, 3000) * 1.2 - 0.1
    x[0, 0, 5, 7] = float("nan")
    for depth, peak, dtype in ((8, 255.0, np.uint8), (16, 65535.0, np.uint16)):
        want = torch.nan_to_num(x[0], nan=0.0).mul(peak).round().clamp(0, peak).permute(1, 2, 0).numpy().astype(dtype)
        assert np.array_equal(tensor_to_array(x, depth), want)


def test_pipeline_interrupted_while_a_write_is_behind_reports_it_and_leaves_no_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the next file's forward, with the previous write still running and a file read
    ahead: the write completes and is reported, no claim file stays (garbage collection off)."""
    import gc
    import time as time_

    from sruscale import batch, upscaling

    monkeypatch.setattr(upscaling, "BATCH_MAX_PIXELS", 0)
    for name in "abcd":
        rgb(tmp_path / "in" / f"{name}.png")
    (tmp_path / "out").mkdir()  # claims are files there
    weights = tmp_path / "w.safetensors"
    sruscale.save_model(sruscale.create_model("fsrcnn", scale=2, d=8, s=4, m=1), weights)
    real_write, real_forward = upscaling.write_stage, upscaling.forward_stage

    def slow_write(st: upscaling.Staged, settings: upscaling.UpscaleSettings) -> upscaling.FileResult:
        time_.sleep(0.3)
        return real_write(st, settings)

    def forward(st: upscaling.Staged, *args: object, **kw: object) -> None:
        if st.job.source.name == "b.png":
            raise KeyboardInterrupt
        real_forward(st, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(upscaling, "write_stage", slow_write)
    monkeypatch.setattr(upscaling, "forward_stage", forward)
    plan = batch.plan_batch(batch.UpscaleRequest(inputs=(str(tmp_path / "in"),), output=tmp_path / "out",
                                                 weights=weights))  # fmt: skip
    ends: list[int] = []
    gc.disable()
    try:
        summary = batch.run_batch(plan.jobs, batch.prepare_models(plan),
                                  on_event=lambda e: ends.append(e.index) if isinstance(e, batch.FileEnd) else None)
    finally:
        gc.enable()
    assert summary.interrupted and summary.processed == 1 and ends == [0]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a_x2.png"]
    assert not list((tmp_path / "out").glob(".*.claim"))
