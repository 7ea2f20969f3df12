"""Training data: image cache, bicubic LR, aligned crops, dihedral augmentation, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sruscale.color import rgb_to_y
from sruscale.data import (
    ImagePair,
    PatchBatches,
    augment,
    load_pairs,
    load_rgb,
    to_y,
)
from sruscale.errors import ConfigError, ImageError
from sruscale.evaluation import benchmark_lr, modcrop
from sruscale.image import list_images
from sruscale.resize import imresize


@pytest.fixture(autouse=True)
def _one_thread():
    """Training tests are tiny; 2 OpenMP threads on a busy 2-core machine are ~100x slower than 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth-ish random RGB uint8 image (blocky noise, then bilinear)."""
    small = rng.integers(0, 256, size=(max(2, h // 4), max(2, w // 4), 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The protocol's benchmark LR of a ``uint8`` ``(H, W, C)`` array."""
    x = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double() / 255
    return (benchmark_lr(x, scale) * 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)


def _write(folder: Path, images: list[np.ndarray], ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img{i:02d}{ext}")
    return folder


def test_list_images_sorted_and_filtered(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write(tmp_path, [_smooth(rng, 8, 8) for _ in range(3)])
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["img00.png", "img01.png", "img02.png"]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        list_images(tmp_path / "missing")
    with pytest.raises(ImageError, match="no image files"):
        list_images(tmp_path)


def test_load_rgb_gray_and_bad_file(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 7), 9, np.uint8), mode="L").save(tmp_path / "g.png")
    img = load_rgb(tmp_path / "g.png")
    assert img.shape == (5, 7, 3) and img.dtype == np.uint8 and (img == 9).all()
    assert img.flags.writeable
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="bad.png"):
        load_rgb(tmp_path / "bad.png")


def test_modcrop() -> None:
    assert modcrop(torch.zeros(1, 3, 13, 10), 4).shape == (1, 3, 12, 8)
    assert modcrop(torch.zeros(1, 1, 12, 9), 3).shape == (1, 1, 12, 9)


def test_bicubic_lr_is_rounded_matlab_imresize(tmp_path: Path) -> None:
    hr = _smooth(np.random.default_rng(1), 24, 36)
    Image.fromarray(hr).save(tmp_path / "hr.png")
    lr = load_pairs([tmp_path], scale=3, color="rgb")[0].lr
    assert lr is not None and lr.shape == (8, 12, 3) and lr.dtype == np.uint8
    x = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].double() / 255
    ref = (imresize(x, 1 / 3) * 255).round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(lr, ref.astype(np.uint8))


def test_to_y_matches_color_module() -> None:
    rgb = _smooth(np.random.default_rng(2), 6, 5)
    y = to_y(rgb)
    ref = rgb_to_y(torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255, round_8bit=True)
    assert y.shape == (6, 5, 1)
    np.testing.assert_array_equal(y[..., 0], (ref[0, 0] * 255).round().numpy().astype(np.uint8))


def test_augment_dihedral_group() -> None:
    a = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    outs = [augment(a, c) for c in range(8)]
    np.testing.assert_array_equal(outs[0], a)
    keys = {o.tobytes() + bytes(o.shape) for o in outs}
    assert len(keys) == 8


def test_load_pairs_bicubic_y(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    hr_dir = _write(tmp_path / "hr", [_smooth(rng, 26, 30), _smooth(rng, 20, 20)])
    pairs = load_pairs([hr_dir], scale=4, color="y")
    assert [p.hr.shape for p in pairs] == [(24, 28, 1), (20, 20, 1)]
    assert [p.lr.shape for p in pairs if p.lr is not None] == [(6, 7, 1), (5, 5, 1)]
    rgb = load_pairs([hr_dir], scale=4, color="rgb")
    np.testing.assert_array_equal(pairs[0].lr, to_y(rgb[0].lr))


def test_load_pairs_paired_folders_checked(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    hr_dir = _write(tmp_path / "hr", [_smooth(rng, 16, 16), _smooth(rng, 16, 16)])
    lr_dir = _write(tmp_path / "lr", [_smooth(rng, 8, 8), _smooth(rng, 8, 7)])
    with pytest.raises(ConfigError, match=r"img01.png: expected LR size 8x8 .* got 7x8"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    with pytest.raises(ConfigError, match="one LR folder per HR folder"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir, lr_dir])
    lr_dir2 = _write(tmp_path / "lr2", [_smooth(rng, 8, 8)])
    with pytest.raises(ConfigError, match="expected 2 LR images"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir2])


def test_load_pairs_matches_paired_folders_by_stem(tmp_path: Path) -> None:
    """Pairs follow file stems, not sorted positions: sorted, ``img10x2`` precedes ``img1x2`` but ``img1`` precedes
    ``img10``. Files without a partner are named in the error."""
    rng = np.random.default_rng(6)
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_dir.mkdir()
    lr_dir.mkdir()
    for stem, (h, w) in {"img1": (16, 16), "img10": (24, 16)}.items():
        hr = _smooth(rng, h, w)
        Image.fromarray(hr).save(hr_dir / f"{stem}.png")
        Image.fromarray(bicubic_lr(hr, 2)).save(lr_dir / f"{stem}x2.png")  # DIV2K naming
    pairs = load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    assert [(p.name, p.hr.shape[:2], p.lr.shape[:2]) for p in pairs if p.lr is not None] == [
        ("img1.png", (16, 16), (8, 8)),
        ("img10.png", (24, 16), (12, 8)),
    ]
    np.testing.assert_array_equal(pairs[1].lr, load_rgb(lr_dir / "img10x2.png"))

    (lr_dir / "img1x2.png").rename(lr_dir / "img2x2.png")  # same count, but img1 has no partner
    with pytest.raises(ConfigError, match=r"by stem; no LR file for HR img1\.png; no HR file for LR img2x2\.png$"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    Image.fromarray(_smooth(rng, 8, 8)).save(lr_dir / "img1.png")
    with pytest.raises(ConfigError, match=r"expected 2 LR images to match .*, got 3; no HR file for LR img2x2\.png$"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    (lr_dir / "img2x2.png").unlink()
    pairs = load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])  # the exact stem pairs too
    np.testing.assert_array_equal(pairs[0].lr, load_rgb(lr_dir / "img1.png"))
    (lr_dir / "img10x2.png").rename(lr_dir / "other.png")
    with pytest.raises(ConfigError, match=r"no LR file for HR img10\.png; no HR file for LR other\.png$"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    (lr_dir / "other.png").unlink()
    with pytest.raises(ConfigError, match=r"expected 2 LR images to match .*, got 1; no LR file for HR img10\.png$"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])
    Image.fromarray(_smooth(rng, 12, 8)).save(lr_dir / "img10.bmp")
    Image.fromarray(_smooth(rng, 12, 8)).save(lr_dir / "img10.png")
    with pytest.raises(ConfigError, match=r"several LR files match HR img10\.png: img10\.bmp, img10\.png"):
        load_pairs([hr_dir], scale=2, color="rgb", lr_dirs=[lr_dir])


def _blocky_pair(rng: np.random.Generator, h: int, w: int, scale: int) -> ImagePair:
    """HR = nearest upsampling of LR, so any aligned crop satisfies HR[::s, ::s] == LR."""
    lr = rng.integers(0, 256, size=(h, w, 1), dtype=np.uint8)
    hr = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    return ImagePair(name="x", hr=hr, lr=lr)


def test_patch_batches_aligned_under_augmentation() -> None:
    rng = np.random.default_rng(5)
    pairs = [_blocky_pair(rng, 12, 15, 3), _blocky_pair(rng, 9, 9, 3)]
    ds = PatchBatches(pairs, scale=3, patch_size=5, batch_size=16, seed=7)
    batch = ds[0]
    assert batch["lr"].shape == (16, 1, 5, 5) and batch["hr"].shape == (16, 1, 15, 15)
    assert batch["lr"].dtype == torch.float32 and 0 <= batch["lr"].min() and batch["lr"].max() <= 1
    torch.testing.assert_close(batch["hr"][..., ::3, ::3], batch["lr"], rtol=0, atol=0)


def test_patch_batches_deterministic_per_index_and_rank() -> None:
    rng = np.random.default_rng(6)
    pairs = [_blocky_pair(rng, 10, 10, 2) for _ in range(3)]
    ds = PatchBatches(pairs, scale=2, patch_size=4, batch_size=8, seed=1)
    a, b = ds[3], ds[3]
    assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    assert not torch.equal(ds[4]["hr"], a["hr"])
    other_rank = PatchBatches(pairs, scale=2, patch_size=4, batch_size=8, seed=1, rank=1)
    assert not torch.equal(other_rank[3]["hr"], a["hr"])


def test_patch_batches_without_augmentation_are_plain_crops() -> None:
    img = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    pair = ImagePair(name="x", hr=img, lr=img[::2, ::2])
    ds = PatchBatches([pair], scale=2, patch_size=2, batch_size=32, flip=False, rot90=False)
    hr = (ds[0]["hr"] * 255).round().to(torch.uint8).numpy()
    for crop in hr:
        y, x = divmod(int(crop[0, 0, 0]), 8)
        np.testing.assert_array_equal(crop[0], img[y : y + 4, x : x + 4, 0])


def test_patch_batches_skip_small_images_and_fail_when_none_fit(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(8)
    big, small = _blocky_pair(rng, 6, 6, 2), _blocky_pair(rng, 3, 3, 2)
    ds = PatchBatches([big, small], scale=2, patch_size=4, batch_size=2)
    assert len(ds.pairs) == 1 and "1 of 2 images" in caplog.text
    with pytest.raises(ConfigError, match="no training image is at least 8x8"):
        PatchBatches([small], scale=2, patch_size=4, batch_size=2)


def test_patch_batches_random_degradation_then_y() -> None:
    rng = np.random.default_rng(9)
    pairs = [ImagePair(name="x", hr=_smooth(rng, 16, 16), lr=None)]
    calls: list[torch.Generator | None] = []

    def degrade(hr: torch.Tensor, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, list]:
        calls.append(generator)
        noise = torch.rand(hr.shape[0], 3, 1, 1, generator=generator) * 0.01
        return torch.nn.functional.avg_pool2d(hr, 2) + noise, []

    ds = PatchBatches(pairs, scale=2, patch_size=4, batch_size=3, color="y", degradation=degrade)
    a, b = ds[0], ds[0]
    assert a["lr"].shape == (3, 1, 4, 4) and a["hr"].shape == (3, 1, 8, 8)
    assert torch.equal(a["lr"], b["lr"])  # the degradation generator is seeded by the index
    assert len(calls) == 6 and all(isinstance(g, torch.Generator) for g in calls)
    with pytest.raises(ConfigError, match="degradation pipeline"):
        PatchBatches(pairs, scale=2, patch_size=4, batch_size=3)


def test_patch_batches_with_degradations_pipeline() -> None:
    from sruscale import degradations
    rng = np.random.default_rng(10)
    pairs = [ImagePair(name="x", hr=_smooth(rng, 24, 24), lr=None)]
    pipe = degradations.Pipeline.preset("bd", 2)
    ds = PatchBatches(pairs, scale=2, patch_size=6, batch_size=2, degradation=pipe)
    batch = ds[1]
    assert batch["lr"].shape == (2, 3, 6, 6) and batch["hr"].shape == (2, 3, 12, 12)
    assert torch.equal(batch["lr"], ds[1]["lr"])
