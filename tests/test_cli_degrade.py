"""``sruscale degrade`` end to end on tiny images, plus the Set5 bicubic reference numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sruscale.cli import app
from sruscale.color import rgb_to_y
from sruscale.degradations import Pipeline, degrade_folder, read_manifest
from sruscale.errors import ConfigError, ImageError
from sruscale.image import read_image
from sruscale.resize import imresize

runner = CliRunner()


def _make_images(folder: Path, n: int = 4, *, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        h, w = 26 + 3 * i, 33 - 2 * i  # not multiples of the scale: exercises the modcrop
        base = rng.integers(0, 256, size=(h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.BICUBIC)  # some structure, not pure noise
        p = folder / f"img_{i}.png"
        img.save(p)
        paths.append(p)
    return paths


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _invoke(*args: str | Path):
    return runner.invoke(app, ["degrade", *map(str, args)])


def test_degrade_bi_writes_modcropped_pairs_and_manifest(tmp_path: Path) -> None:
    _make_images(tmp_path / "hr")
    out = tmp_path / "out"
    res = _invoke(tmp_path / "hr", out, "--scale", "3")
    assert res.exit_code == 0, res.output
    entries = read_manifest(out / "manifest.jsonl")
    assert [e["source"] for e in entries] == [f"img_{i}.png" for i in range(4)]
    for e in entries:
        hr = read_image(out / e["hr"])
        lr = read_image(out / e["lr"])
        h, w = e["source_size"]
        assert e["hr_size"] == [h - h % 3, w - w % 3] == list(hr.size)
        assert e["lr_size"] == [h // 3, w // 3] == list(lr.size)
        assert hr.bit_depth == lr.bit_depth == 8
        src = read_image(tmp_path / "hr" / e["source"]).pixels[..., : h - h % 3, : w - w % 3]
        assert torch.equal(hr.pixels, src)  # HR is the exact modcrop
        expected = (imresize(src, 1 / 3).clamp(0, 1) * 255).round() / 255
        assert torch.equal(lr.pixels, expected)  # LR = round(imresize(HR, 1/3)) as MATLAB writes it
        assert e["ops"] == [{"op": "resize", "mode": "bicubic", "factor": 1.0, "size": e["lr_size"]}]
    run = json.loads((out / "degrade.json").read_text())
    assert Pipeline.from_dict(run["pipeline"]) == Pipeline.preset("bi", 3)


def test_same_seed_same_bytes_for_any_worker_count_and_file_set(tmp_path: Path) -> None:
    _make_images(tmp_path / "hr", n=4)
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _invoke(tmp_path / "hr", one, "--preset", "realistic", "--scale", "2", "--seed", "5", "--workers", "1")
    r2 = _invoke(tmp_path / "hr", two, "--preset", "realistic", "--scale", "2", "--seed", "5", "--workers", "2")
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = _files(one), _files(two)
    a.pop("degrade.json"), b.pop("degrade.json")  # records the (identical) HR folder only
    assert a == b
    # a subset of the files (other order of work, fewer files) gives the same bytes for those files
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "img_2.png").write_bytes((tmp_path / "hr" / "img_2.png").read_bytes())
    sub = tmp_path / "subout"
    assert _invoke(tmp_path / "sub", sub, "--preset", "realistic", "--scale", "2", "--seed", "5").exit_code == 0
    assert (sub / "LR_x2" / "img_2.png").read_bytes() == a["LR_x2/img_2.png"]
    # another seed, other bytes
    three = tmp_path / "three"
    assert _invoke(tmp_path / "hr", three, "--preset", "realistic", "--scale", "2", "--seed", "6").exit_code == 0
    assert (three / "LR_x2" / "img_0.png").read_bytes() != a["LR_x2/img_0.png"]


def test_manifest_round_trip_replays_and_resume_is_consistent(tmp_path: Path) -> None:
    _make_images(tmp_path / "hr", n=3)
    out = tmp_path / "out"
    summary = degrade_folder(tmp_path / "hr", out, pipeline=Pipeline.preset("realistic", 4), seed=1)
    assert summary.processed == 3 and summary.ok
    manifest_bytes = (out / "manifest.jsonl").read_bytes()
    run = json.loads((out / "degrade.json").read_text())
    pipe = Pipeline.from_dict(run["pipeline"])
    for e in read_manifest(out / "manifest.jsonl"):
        hr = read_image(out / e["hr"]).pixels
        lr, ops = pipe(hr, generator=torch.Generator().manual_seed(e["seed"]))
        assert json.loads(json.dumps(ops)) == e["ops"]  # recorded parameters replay exactly
        assert torch.equal((lr * 255).round() / 255, read_image(out / e["lr"]).pixels)
    # resume: a missing LR and a half-written manifest line are redone; the manifest comes out identical
    (out / "LR_x4" / "img_1.png").unlink()
    with (out / "manifest.jsonl").open("a") as fh:
        fh.write('{"source": "img_')
    again = degrade_folder(tmp_path / "hr", out, pipeline=pipe, seed=1)
    assert (again.processed, again.skipped) == (1, 2)
    assert (out / "manifest.jsonl").read_bytes() == manifest_bytes
    # a different seed on the same folder is refused, unless --overwrite
    with pytest.raises(ConfigError, match="another scale, seed or pipeline"):
        degrade_folder(tmp_path / "hr", out, pipeline=pipe, seed=2)
    res = _invoke(tmp_path / "hr", out, "--preset", "realistic", "--seed", "2", "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "manifest.jsonl").read_bytes() != manifest_bytes


def test_lossy_inputs_warn_and_strict_refuses(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    _make_images(hr, n=1)
    Image.open(hr / "img_0.png").save(hr / "photo.jpg", quality=90)
    Image.open(hr / "img_0.png").save(hr / "lossy.webp", quality=80)
    Image.open(hr / "img_0.png").save(hr / "lossless.webp", lossless=True)
    res = _invoke(hr, tmp_path / "out", "--scale", "2")
    assert res.exit_code == 0, res.output
    assert "photo.jpg (JPEG)" in res.output and "lossy.webp (lossy WebP)" in res.output
    assert "lossless.webp (" not in res.output
    assert len(read_manifest(tmp_path / "out" / "manifest.jsonl")) == 4
    res = _invoke(hr, tmp_path / "strict", "--scale", "2", "--strict")
    assert res.exit_code == 1 and isinstance(res.exception, ImageError)
    assert "photo.jpg" in str(res.exception) and not (tmp_path / "strict").exists()


def test_bad_inputs_are_reported_and_skipped(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    _make_images(hr, n=2)
    (hr / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.new("RGB", (3, 9)).save(hr / "tiny.png")  # narrower than the scale
    res = _invoke(hr, tmp_path / "out", "--scale", "4")
    assert res.exit_code == 1
    assert "broken.png" in res.output and "tiny.png" in res.output and "2 pairs written" in res.output
    assert sorted(e["source"] for e in read_manifest(tmp_path / "out" / "manifest.jsonl")) == ["img_0.png", "img_1.png"]


def test_recursive_gray_16bit_and_alpha(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    (hr / "sub").mkdir(parents=True)
    deep = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 97) % 65535
    Image.fromarray(deep.astype(np.uint16)).save(hr / "sub" / "gray16.png")
    rgba = np.random.default_rng(0).integers(0, 256, (20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(hr / "alpha.png")
    assert _invoke(hr, tmp_path / "flat", "--scale", "2").exit_code == 0
    assert not (tmp_path / "flat" / "HR" / "sub").exists()
    res = _invoke(hr, tmp_path / "out", "--scale", "2", "--recursive", "--preset", "dn")
    assert res.exit_code == 0, res.output
    g = read_image(tmp_path / "out" / "LR_x2" / "sub" / "gray16.png")
    assert g.bit_depth == 16 and g.channels == 1 and g.size == (10, 12)
    a = read_image(tmp_path / "out" / "LR_x2" / "alpha.png")
    assert a.alpha is not None and a.alpha.shape == (1, 1, 10, 12)


def test_cli_option_errors(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    _make_images(hr, n=1)
    toml = tmp_path / "p.toml"
    toml.write_text("[[ops]]\nop = 'resize'\nrelative_to = 'target'\nmodes = 'bicubic'\n")
    res = _invoke(hr, tmp_path / "o", "--pipeline", toml)
    assert res.exit_code == 2 and "unknown key" in res.output and "modes" in res.output
    res = _invoke(hr, tmp_path / "o", "--pipeline", toml, "--preset", "bd")
    assert res.exit_code == 2 and "not both" in res.output
    toml.write_text("[[ops]]\nop = 'blur'\nsigma = 2.0\n[[ops]]\nop = 'decimate'\n")
    res = _invoke(hr, tmp_path / "o", "--pipeline", toml, "--scale", "2")
    assert res.exit_code == 0, res.output
    res = _invoke(tmp_path / "empty_missing", tmp_path / "o2")
    assert res.exit_code == 2
    (tmp_path / "empty").mkdir()
    res = _invoke(tmp_path / "empty", tmp_path / "o2")
    assert res.exit_code == 1 and "no images" in str(res.exception)
    assert "--preset" in runner.invoke(app, ["degrade", "--help"]).output


def _y_psnr(a: torch.Tensor, b: torch.Tensor, border: int) -> float:
    ya = rgb_to_y(a, round_8bit=True)[..., border:-border, border:-border].double() * 255
    yb = rgb_to_y(b, round_8bit=True)[..., border:-border, border:-border].double() * 255
    return float(10 * torch.log10(255**2 / ((ya - yb) ** 2).mean()))


@pytest.mark.data
@pytest.mark.parametrize(("scale", "reference"), [(2, 33.66), (3, 30.39), (4, 28.42)])
def test_set5_bicubic_baseline(shared_data: Path, tmp_path: Path, scale: int, reference: float) -> None:
    out = tmp_path / f"x{scale}"
    res = _invoke(shared_data / "Set5", out, "--scale", str(scale), "--preset", "bi")
    assert res.exit_code == 0, res.output
    scores = []
    for e in read_manifest(out / "manifest.jsonl"):
        hr, lr = read_image(out / e["hr"]).pixels, read_image(out / e["lr"]).pixels
        sr = (imresize(lr, scale).clamp(0, 1) * 255).round() / 255
        scores.append(_y_psnr(sr, hr, scale))
    assert len(scores) == 5
    assert float(np.mean(scores)) == pytest.approx(reference, abs=0.02)
