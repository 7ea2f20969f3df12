"""Python API: ``load_model`` name/weights resolution and ``upscale_image`` without the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import sruscale
from sruscale import api
from sruscale.errors import CheckpointError, ConfigError, ImageError, UnknownModelError
from sruscale.image import ImageData, read_image
from sruscale.models.bicubic import Bicubic
from sruscale.resize import imresize


def tiny_fsrcnn(scale: int = 2) -> sruscale.SRModel:
    """A small randomly initialised FSRCNN with a non-trivial deconvolution (so outputs are not ~0)."""
    model = sruscale.create_model("fsrcnn", scale=scale, d=8, s=4, m=1, residual=True)
    with torch.no_grad():
        model.deconv.weight.normal_(std=0.05)
    return model.eval()


def make_weights_dir(folder: Path, entries: list[tuple[str, int, float]]) -> dict[str, Path]:
    """A weights folder with a manifest: ``(entry name, scale, set5_psnr)`` -> tiny fsrcnn files."""
    folder.mkdir(parents=True, exist_ok=True)
    files, rows = {}, []
    for name, scale, psnr in entries:
        path = sruscale.save_model(tiny_fsrcnn(scale), folder / f"{name}.safetensors")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append(
            f'[[weights]]\nname = "{name}"\nfile = "{path.name}"\narch = "fsrcnn"\nscale = {scale}\n'
            f'sha256 = "{digest}"\nset5_psnr = {psnr}\n'
        )
        files[name] = path
    (folder / "manifest.toml").write_text("\n".join(rows), encoding="utf-8")
    return files


@pytest.fixture
def no_bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "empty_weights"
    folder.mkdir()
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(folder))
    return folder


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    folder = tmp_path / "weights"
    files = make_weights_dir(folder, [("fsrcnn-x2", 2, 33.0), ("fsrcnn-x2-big", 2, 34.0), ("fsrcnn-x3", 3, 30.0)])
    monkeypatch.setenv("SRUSCALE_WEIGHTS_DIR", str(folder))
    return files


# ------------------------------------------------------------------ load_model


def test_default_is_bicubic_without_bundled_weights(no_bundled: Path) -> None:
    model = sruscale.load_model()
    assert isinstance(model, Bicubic) and model.scale == 4 and not model.training
    assert sruscale.load_model(scale=2).scale == 2


def test_default_is_best_bundled_model_for_the_scale(bundled: dict[str, Path]) -> None:
    model = sruscale.load_model(scale=2)
    assert model.name == "fsrcnn" and model.scale == 2
    best = sruscale.load_model(weights=bundled["fsrcnn-x2-big"])
    x = torch.rand(1, 1, 9, 11)
    torch.testing.assert_close(model(x), best(x))
    assert isinstance(sruscale.load_model(scale=4), Bicubic)  # nothing bundled at x4


def test_bundled_name_arch_name_and_scale_checks(bundled: dict[str, Path]) -> None:
    m = sruscale.load_model("fsrcnn-x3")
    assert (m.name, m.scale) == ("fsrcnn", 3)  # scale taken from the entry
    assert sruscale.load_model("fsrcnn", scale=3).scale == 3  # arch + scale -> bundled file
    assert all(not p.requires_grad for p in m.parameters())
    with pytest.raises(ConfigError, match="x3"):
        sruscale.load_model("fsrcnn-x3", scale=2)
    with pytest.raises(UnknownModelError, match="--weights"):
        sruscale.load_model("fsrcnn", scale=4)
    with pytest.raises(UnknownModelError, match="--weights"):
        sruscale.load_model("espcn", scale=2)
    with pytest.raises(UnknownModelError, match="fsrcnn-x2"):  # lists what is bundled
        sruscale.load_model("nonsense")
    with pytest.raises(ConfigError, match="supports scales"):
        sruscale.load_model("bicubic", scale=5)


def test_sha256_mismatch_and_missing_file_name_the_file(bundled: dict[str, Path]) -> None:
    path = bundled["fsrcnn-x3"]
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="sha256 mismatch") as info:
        sruscale.load_model("fsrcnn-x3")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    bundled["fsrcnn-x2"].unlink()
    with pytest.raises(CheckpointError, match="missing"):
        sruscale.load_model("fsrcnn-x2")


def test_user_weights_file(tmp_path: Path, no_bundled: Path) -> None:
    model = tiny_fsrcnn(3)
    path = sruscale.save_model(model, tmp_path / "mine.safetensors")
    loaded = sruscale.load_model(weights=path)
    assert (loaded.name, loaded.scale, loaded.training) == ("fsrcnn", 3, False)
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), model(x))
    assert sruscale.load_model("fsrcnn", weights=path).scale == 3
    with pytest.raises(CheckpointError, match="expected architecture"):
        sruscale.load_model("espcn", weights=path)
    with pytest.raises(CheckpointError, match="expected scale x2"):
        sruscale.load_model(weights=path, scale=2)
    with pytest.raises(CheckpointError, match="not found"):
        sruscale.load_model(weights=tmp_path / "nope.safetensors")
    # a bare state dict (default hyperparameters) needs the architecture and the scale
    plain = sruscale.create_model("fsrcnn", scale=3)
    bare = tmp_path / "bare.pth"
    torch.save(plain.state_dict(), bare)
    with pytest.raises(CheckpointError, match="architecture and a scale"):
        sruscale.load_model(weights=bare)
    restored = sruscale.load_model("fsrcnn", scale=3, weights=bare)
    torch.testing.assert_close(restored(x), plain(x))
    with pytest.raises(CheckpointError, match="do not fit"):  # non-default hyperparameters are not guessed
        torch.save(model.state_dict(), bare)
        sruscale.load_model("fsrcnn", scale=3, weights=bare)


def test_model_scale_without_loading(tmp_path: Path, bundled: dict[str, Path]) -> None:
    path = sruscale.save_model(tiny_fsrcnn(3), tmp_path / "m.safetensors")
    assert api.model_scale(weights=path) == 3
    assert api.model_scale("fsrcnn-x2") == 2
    assert api.model_scale("bicubic") == 4
    assert api.model_scale("bicubic", scale=8) == 8


# ------------------------------------------------------------------ upscale_image


def _image(c: int = 3, h: int = 10, w: int = 13, *, alpha: bool = False, bit_depth: int = 8) -> ImageData:
    a = torch.rand(1, 1, h, w) if alpha else None
    return ImageData(pixels=torch.rand(1, c, h, w), alpha=a, bit_depth=bit_depth, format="PNG")


def test_upscale_image_keeps_metadata_and_matches_bicubic(no_bundled: Path) -> None:
    img = _image(bit_depth=16)
    out = sruscale.upscale_image(img, sruscale.load_model("bicubic", scale=2))
    assert isinstance(out, ImageData)
    assert out.pixels.shape == (1, 3, 20, 26) and out.bit_depth == 16 and out.format == "PNG"
    torch.testing.assert_close(out.pixels, imresize(img.pixels, 2).clamp(0, 1), atol=1e-6, rtol=0)


def test_upscale_image_learned_model_equals_forward() -> None:
    model = tiny_fsrcnn(2)
    img = _image(h=11, w=9)
    out = sruscale.upscale_image(img, model, tile=0)
    torch.testing.assert_close(out.pixels, model(img.pixels).clamp(0, 1), atol=1e-5, rtol=0)
    ens = sruscale.upscale_image(img, model, tile=0, self_ensemble=True)
    assert ens.pixels.shape == out.pixels.shape and not torch.equal(ens.pixels, out.pixels)


@pytest.mark.parametrize("mode", ["model", "bicubic"])
def test_alpha_is_upscaled_separately(mode: str) -> None:
    model = tiny_fsrcnn(2)
    img = _image(c=1, alpha=True)
    out = sruscale.upscale_image(img, model, tile=0, alpha=mode)
    assert out.pixels.shape == (1, 1, 20, 26) and out.alpha is not None and out.alpha.shape == (1, 1, 20, 26)
    expected = model(img.alpha) if mode == "model" else imresize(img.alpha, 2)
    torch.testing.assert_close(out.alpha, expected.clamp(0, 1), atol=1e-5, rtol=0)
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1


def test_opaque_alpha_stays_exactly_opaque() -> None:
    img = ImageData(pixels=torch.rand(1, 3, 8, 8), alpha=torch.ones(1, 1, 8, 8), bit_depth=8)
    out = sruscale.upscale_image(img, tiny_fsrcnn(2), alpha="model")
    assert out.alpha is not None and torch.equal(out.alpha, torch.ones(1, 1, 16, 16))


@pytest.mark.parametrize(("factor", "size"), [(2.5, (25, 33)), (1.0, (10, 13)), (3, (30, 39))])
def test_outscale_gives_rounded_size(factor: float, size: tuple[int, int]) -> None:
    out = sruscale.upscale_image(_image(alpha=True), tiny_fsrcnn(2), outscale=factor)
    assert tuple(out.pixels.shape[-2:]) == size and tuple(out.alpha.shape[-2:]) == size
    assert 0 <= out.pixels.min() and out.pixels.max() <= 1


def test_outscale_with_bicubic_is_one_direct_resize() -> None:
    img = _image()
    out = sruscale.upscale_image(img, Bicubic(scale=4), outscale=2.5)
    torch.testing.assert_close(out.pixels, imresize(img.pixels, size=(25, 33)).clamp(0, 1), atol=1e-6, rtol=0)


def test_tensor_and_path_inputs(tmp_path: Path) -> None:
    model = Bicubic(scale=2)
    chw = torch.rand(3, 6, 7)
    assert sruscale.upscale_image(chw, model).shape == (3, 12, 14)
    rgba = torch.rand(2, 4, 6, 7)
    out = sruscale.upscale_image(rgba, model, alpha="bicubic")
    assert out.shape == (2, 4, 12, 14)
    torch.testing.assert_close(out[:, 3:], imresize(rgba[:, 3:], 2).clamp(0, 1), atol=1e-6, rtol=0)
    from PIL import Image

    path = tmp_path / "ä b.png"
    Image.new("LA", (7, 5), (100, 200)).save(path)
    res = sruscale.upscale_image(path, model)
    assert res.pixels.shape == (1, 1, 10, 14) and res.alpha is not None
    assert read_image(path).alpha is not None


def test_upscale_image_errors() -> None:
    model = Bicubic(scale=2)
    with pytest.raises(ConfigError):
        sruscale.upscale_image(_image(), model, outscale=0)
    with pytest.raises(ConfigError):
        sruscale.upscale_image(_image(), model, outscale=float("nan"))
    with pytest.raises(ConfigError, match="x2"):
        sruscale.upscale_image(_image(), model, scale=4)
    with pytest.raises(ConfigError):
        sruscale.upscale_image(_image(), model, alpha="nearest")  # type: ignore[arg-type]
    with pytest.raises(ImageError):
        sruscale.upscale_image(torch.zeros(3, 4, 4, dtype=torch.uint8), model)
    with pytest.raises(ImageError):
        sruscale.upscale_image(torch.rand(1, 5, 4, 4), model)


def test_upscale_image_loads_default_model(no_bundled: Path) -> None:
    out = sruscale.upscale_image(_image(), scale=2, device="cpu")
    assert out.pixels.shape == (1, 3, 20, 26)
