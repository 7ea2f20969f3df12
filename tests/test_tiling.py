"""Tiled inference: tiled == untiled for every registered model, size requirements, OOM retry,
precision fallback, self-ensemble, output dtypes, device/precision parsing."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _model_zoo import small_model

from sruscale import tiling
from sruscale.device import resolve_device, resolve_precision
from sruscale.errors import ConfigError, ImageError, SruscaleError
from sruscale.models import SRModel, create_model, get_model_class, list_models
from sruscale.resize import imresize
from sruscale.tiling import (
    _axis_weights,
    _span_overlap,
    _spans,
    auto_tile_size,
    pad_to_requirements,
    run_model,
    upscale_tensor,
)

TOL = 1 / 255

CASES = [(n, s) for n in list_models() for s in (2, 3, 4) if s in get_model_class(n).scales]
#: models with whole-image pooling (channel attention): tiled != untiled by design, see
#: test_global_context_models_are_close
GLOBAL_CONTEXT = {"rcan"}
LOCAL_CASES = [(n, s) for n, s in CASES if n not in GLOBAL_CONTEXT]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    """Tiny tensors: threads only add synchronisation cost (badly so on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(name: str, scale: int) -> SRModel:
    """The registry model with the small hyperparameters of ``_model_zoo`` (shared with test_models)."""
    return small_model(name, scale).eval()


def untiled(model: SRModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run_model(model, x).clamp(0, 1)


def measured_rf(model: SRModel, size: int = 49) -> int | None:
    """Receptive-field radius (input px) from an impulse; None if it reaches the border (global context)."""
    c = size // 2
    x = torch.rand(1, 3, size, size)
    x2 = x.clone()
    x2[..., c, c] += 0.5
    changed = (untiled(model, x2) - untiled(model, x)).abs().amax(dim=(0, 1)).nonzero() // model.scale
    rf = int((changed - c).abs().max())
    return None if rf >= c - 1 else rf


def tiled_case(rf: int) -> tuple[int, int, int, int]:
    """(overlap, tile, H, W): overlap covers ``rf``; odd H, W giving at least 2 x 2 tiles."""
    overlap = 2 * rf
    tile = _span_overlap(overlap) + 8
    return overlap, tile, max(37, tile + 9) | 1, max(53, 2 * tile - 3) | 1


# ---------------------------------------------------------------- tiled == untiled


@pytest.mark.parametrize(("name", "scale"), LOCAL_CASES)
def test_tiled_equals_untiled(name: str, scale: int) -> None:
    model = tiny(name, scale)
    rf = measured_rf(model)
    assert rf is not None, f"{name} has global context: add it to GLOBAL_CONTEXT"
    overlap, tile, h, w = tiled_case(rf)
    x = torch.rand(2, 3, h, w)
    calls: list[tuple[int, int]] = []
    y = upscale_tensor(model, x, tile=tile, overlap=overlap, progress=lambda d, t: calls.append((d, t)))
    assert y.shape == (2, 3, h * scale, w * scale) and y.dtype == torch.float32
    assert len(calls) >= 4 and calls[-1][0] == calls[-1][1] == len(calls)
    assert (y - untiled(model, x)).abs().max() <= TOL


@pytest.mark.parametrize(
    "name",
    [
        n for n in list_models()
        if 2 in get_model_class(n).scales and get_model_class(n).receptive_field <= 12 and n not in GLOBAL_CONTEXT
    ],
)
def test_default_overlap_is_exact(name: str) -> None:
    """With the default overlap (2 x the declared receptive field) tiling is exact.

    Deep models declare a capped receptive field (their true one is larger) and are left out.
    """
    model = tiny(name, 2)
    rf = measured_rf(model)
    assert rf is not None, f"{name} has global context: add it to GLOBAL_CONTEXT"
    assert rf <= model.receptive_field, f"{name}: measured receptive field {rf} > declared {model.receptive_field}"
    _, tile, h, w = tiled_case(model.receptive_field)
    x = torch.rand(1, 3, h, w)
    assert (upscale_tensor(model, x, tile=tile) - untiled(model, x)).abs().max() <= TOL


def test_global_context_models_are_close() -> None:
    """Channel attention pools the whole tile, so RCAN is only approximately tile-invariant."""
    model = tiny("rcan", 2)
    assert measured_rf(model) is None
    x = torch.rand(1, 3, 61, 67)
    diff = (upscale_tensor(model, x, tile=40, overlap=16) - untiled(model, x)).abs()
    assert diff.mean() < TOL and diff.max() < 0.1


def test_tile_larger_than_image_and_tile_zero_equal_untiled() -> None:
    model = tiny("espcn", 3)
    x = torch.rand(1, 3, 23, 31)
    ref = untiled(model, x)
    assert torch.equal(upscale_tensor(model, x, tile=1000), ref)
    assert torch.equal(upscale_tensor(model, x, tile=0), ref)
    assert torch.equal(upscale_tensor(model, x), ref)  # auto: small image, no tiling


# ---------------------------------------------------------------- size requirements


class Multiple4(SRModel):
    """Needs H, W multiples of 4 and >= 16; 2x2 pooling makes it depend on the tile grid alignment."""

    name = "multiple4"
    scales = (2, 3)
    multiple_of = 4
    minimum = 16
    receptive_field = 3

    def __init__(self, *, scale: int = 2) -> None:
        super().__init__(scale=scale, in_channels=3)
        self.weight = torch.nn.Parameter(torch.randn(3, 3, 3, 3) / 9)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or min(h, w) < 16:
            raise ValueError(f"multiple4 needs multiples of 4 >= 16, got {h}x{w}")
        y = F.avg_pool2d(F.conv2d(x, self.weight, padding=1), 2)
        s = self.scale
        coarse = y.repeat_interleave(2 * s, -2).repeat_interleave(2 * s, -1)
        return (coarse + x.repeat_interleave(s, -2).repeat_interleave(s, -1)) / 2


def test_pad_to_requirements_reflects_bottom_right() -> None:
    x = torch.rand(2, 3, 9, 10)
    padded, size = pad_to_requirements(x, multiple_of=4, minimum=1)
    assert size == (9, 10)
    assert torch.equal(padded, F.pad(x, (0, 2, 0, 3), mode="reflect"))
    same, _ = pad_to_requirements(x, multiple_of=1, minimum=1)
    assert same is x


def test_pad_to_requirements_wider_than_image() -> None:
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 3, 5)
    padded, size = pad_to_requirements(x, multiple_of=4, minimum=16)
    assert size == (3, 5) and padded.shape == (1, 1, 16, 16)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    assert torch.equal(padded[..., :3, :5], x)
    with pytest.raises(ConfigError):
        pad_to_requirements(x, multiple_of=0, minimum=1)


def test_run_model_pads_and_crops() -> None:
    model = Multiple4(scale=3)
    x = torch.rand(1, 3, 5, 7)
    y = run_model(model, x)
    assert y.shape == (1, 3, 15, 21)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(x)


@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_equals_untiled_with_size_requirements(scale: int) -> None:
    model = Multiple4(scale=scale)
    x = torch.rand(1, 3, 37, 53)
    y = upscale_tensor(model, x, tile=26, overlap=8)  # rounded down to 24
    assert (y - untiled(model, x)).abs().max() <= 1e-6


@pytest.mark.parametrize(("multiple_of", "minimum"), [(1, 1), (4, 16), (8, 40)])
@pytest.mark.parametrize("overlap", [0, 3, 8, 16])
def test_spans_fixed_size_aligned_overlapping(multiple_of: int, minimum: int, overlap: int) -> None:
    """Every tile but the last has the requested size whatever the length: peak memory cannot grow with the image."""
    model = Multiple4()
    model.multiple_of, model.minimum = multiple_of, minimum
    floor = -(-minimum // multiple_of) * multiple_of
    for tile in (t for t in (24, 40, 64, 512) if t >= floor and t - _span_overlap(overlap) >= multiple_of):
        for length in range(floor, 3 * tile + 2 * multiple_of + 1, multiple_of):
            spans = _spans(length, tile, overlap, model)
            assert spans[0][0] == 0 and spans[-1][1] == length
            assert all(b - a == tile for a, b in spans[:-1]) and floor <= spans[-1][1] - spans[-1][0] <= tile
            assert all(a % multiple_of == 0 and b % multiple_of == 0 for a, b in spans)
            pairs = zip(spans, spans[1:], strict=False)
            assert all(a0 < a1 and b0 - a1 >= _span_overlap(overlap) for (a0, b0), (a1, _) in pairs)
            if length > tile:  # the same grid for every length: a longer image only adds tiles
                assert spans[:-1] == _spans(length + tile, tile, overlap, model)[: len(spans) - 1]


@pytest.mark.parametrize(("tile", "overlap", "scale"), [(24, 4, 2), (40, 16, 3), (64, 16, 2), (30, 8, 4), (24, 0, 2)])
def test_axis_weights_partition_of_unity(tile: int, overlap: int, scale: int) -> None:
    model = create_model("bicubic", scale=2)
    for length in (tile + 1, 2 * tile - 5, 3 * tile + 7, 100):
        spans = _spans(length, tile, overlap, model)
        total = torch.zeros(length * scale, dtype=torch.float64)
        for i, ((a, b), (lo, w)) in enumerate(zip(spans, _axis_weights(spans, scale, overlap), strict=True)):
            assert a * scale <= lo and lo + len(w) <= b * scale and (w > 0).all()
            keep = overlap * scale / 2  # no weight within overlap / 2 of an inner edge
            assert i == 0 or lo >= a * scale + keep - 0.5
            assert i == len(spans) - 1 or lo + len(w) <= b * scale - keep + 0.5
            total[lo : lo + len(w)] += w
        assert torch.allclose(total, torch.ones_like(total), atol=1e-12, rtol=0)


# ---------------------------------------------------------------- OOM, precision


class Recorder(SRModel):
    """MATLAB bicubic that records input sizes; can fail like an out-of-memory GPU or under autocast."""

    name = "recorder"
    scales = (2,)
    receptive_field = 2

    def __init__(self, *, oom_above: int = 10**9, nan_in_half: bool = False, error: str = "") -> None:
        super().__init__(scale=2, in_channels=3)
        self.oom_above, self.nan_in_half, self.error = oom_above, nan_in_half, error
        self.sizes: list[tuple[int, int]] = []  # successful calls
        self.failed: list[int] = []  # largest side of calls that ran out of memory
        self.half_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.error:
            raise RuntimeError(self.error)
        if max(x.shape[-2:]) > self.oom_above:
            self.failed.append(max(x.shape[-2:]))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.sizes.append(tuple(x.shape[-2:]))
        y = imresize(x, 2)
        if torch.is_autocast_enabled("cpu"):
            self.half_calls += 1
            if self.nan_in_half:
                return torch.full_like(y, float("nan"))
        return y


def test_oom_halves_tile_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.rand(1, 3, 45, 61)
    ref = untiled(create_model("bicubic", scale=2), x)
    model = Recorder(oom_above=24)
    with caplog.at_level(logging.WARNING, logger="sruscale.tiling"):
        y = upscale_tensor(model, x, tile=40, overlap=4)
    assert len(model.failed) == 1  # later tiles go straight to the smaller size
    halved = model.failed[0] // 2
    assert max(max(s) for s in model.sizes) <= halved <= 24
    assert f"retrying it with tile {halved}" in caplog.text
    assert (y - ref).abs().max() <= 1e-6


def test_oom_below_minimum_tile_gives_up() -> None:
    with pytest.raises(SruscaleError, match="out of memory"):
        upscale_tensor(Recorder(oom_above=8), torch.rand(1, 3, 45, 61), tile=40, overlap=4)


def test_other_runtime_errors_propagate() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        upscale_tensor(Recorder(error="boom"), torch.rand(1, 3, 20, 20), tile=16, overlap=4)


def test_nan_tile_recomputed_in_fp32(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.rand(1, 3, 37, 53)
    model = Recorder(nan_in_half=True)
    with caplog.at_level(logging.WARNING, logger="sruscale.tiling"):
        y = upscale_tensor(model, x, tile=24, overlap=4, precision="bf16")
    assert model.half_calls > 0 and "recomputing it in fp32" in caplog.text
    assert torch.isfinite(y).all()
    assert (y - untiled(create_model("bicubic", scale=2), x)).abs().max() <= 1e-6


def test_bf16_runs_in_reduced_precision() -> None:
    model = tiny("espcn", 2)
    x = torch.rand(1, 3, 24, 24)
    diff = (upscale_tensor(model, x, precision="bf16") - untiled(model, x)).abs().max()
    assert 0 < diff < 0.05


def test_precision_auto_respects_half_safe() -> None:
    cuda = torch.device("cuda")
    assert resolve_precision("auto", cuda) == torch.float16
    assert resolve_precision("auto", cuda, half_safe=False) == torch.float32
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert resolve_precision("auto", torch.device("mps")) == torch.float32
    assert resolve_precision("bf16", torch.device("cpu")) == torch.bfloat16
    assert resolve_precision("FP32", cuda) == torch.float32
    with pytest.raises(ConfigError, match="not supported on CPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision("int8", cuda)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="MPS"):
            resolve_device("mps")


# ---------------------------------------------------------------- self-ensemble, dtypes, misc

D4 = [  # (transform, inverse) for the 8 symmetries of the square
    (lambda t: t, lambda t: t),
    (lambda t: t.flip(-1), lambda t: t.flip(-1)),
    (lambda t: t.flip(-2), lambda t: t.flip(-2)),
    (lambda t: t.flip(-2, -1), lambda t: t.flip(-2, -1)),
    (lambda t: t.transpose(-2, -1), lambda t: t.transpose(-2, -1)),
    (lambda t: t.flip(-2, -1).transpose(-2, -1), lambda t: t.flip(-2, -1).transpose(-2, -1)),
    (lambda t: t.transpose(-2, -1).flip(-1), lambda t: t.flip(-1).transpose(-2, -1)),
    (lambda t: t.transpose(-2, -1).flip(-2), lambda t: t.flip(-2).transpose(-2, -1)),
]


def test_self_ensemble_is_mean_of_8_transforms() -> None:
    model = tiny("espcn", 2)
    x = torch.rand(1, 3, 29, 41)
    with torch.no_grad():
        ref = torch.stack([inv(run_model(model, fwd(x))) for fwd, inv in D4]).mean(0).clamp(0, 1)
    plain = upscale_tensor(model, x, tile=0)
    assert (plain - ref).abs().max() > 1e-3  # the ensemble is not a no-op for this model
    assert (upscale_tensor(model, x, tile=0, self_ensemble=True) - ref).abs().max() <= 1e-6
    assert (upscale_tensor(model, x, tile=20, overlap=8, self_ensemble=True) - ref).abs().max() <= TOL


def test_uint8_output_and_input() -> None:
    model = tiny("fsrcnn", 2)
    x8 = (torch.rand(1, 3, 37, 53) * 255).round().to(torch.uint8)
    x = x8.float() / 255
    ref = (untiled(model, x) * 255).round().to(torch.uint8)
    assert torch.equal(upscale_tensor(model, x, tile=0, out_dtype=torch.uint8), ref)
    y = upscale_tensor(model, x, tile=36, overlap=16, out_dtype=torch.uint8)
    assert y.dtype == torch.uint8 and (y.int() - ref.int()).abs().max() <= 1
    assert torch.equal(upscale_tensor(model, x8, tile=36, overlap=16), upscale_tensor(model, x, tile=36, overlap=16))


def test_float64_stays_float64() -> None:
    model = tiny("srcnn", 2).double()
    x = torch.rand(1, 1, 33, 35, dtype=torch.float64)
    y = upscale_tensor(model, x, tile=24, overlap=12, out_dtype=torch.float64)
    assert y.dtype == torch.float64 and (y - untiled(model, x)).abs().max() <= 1e-12


def test_model_mode_is_restored() -> None:
    model = tiny("espcn", 2).train()
    upscale_tensor(model, torch.rand(1, 3, 8, 8))
    assert model.training


def test_auto_tile_size_cpu_caps_output_side_unless_context_is_wide() -> None:
    cpu, shape = torch.device("cpu"), (1, 3, 4096, 4096)
    narrow = create_model("plainsr", scale=4, channels=8, blocks=2)  # receptive field 4: 1536 output px
    assert auto_tile_size(narrow, shape, cpu, torch.float32) == 384
    assert auto_tile_size(create_model("plainsr", scale=2, channels=8, blocks=2), shape, cpu, torch.float32) == 512
    wide = create_model("plainsr", scale=4, channels=8, blocks=30)  # 32: 384 px would be mostly shared context
    assert auto_tile_size(wide, shape, cpu, torch.float32) == 512


def test_auto_tile_size_keeps_room_for_a_large_overlap() -> None:
    """The 1536-output-px cap must not make the tile smaller than a user's --overlap needs."""
    model = tiny("fsrcnn", 4)
    assert auto_tile_size(model, (1, 3, 1000, 1000), torch.device("cpu"), torch.float32) == 384
    # at least twice the 400 px that neighbours share (overlap 320 + feather 80), not the 512 px CPU cap
    assert auto_tile_size(model, (1, 3, 1000, 1000), torch.device("cpu"), torch.float32, overlap=320) == 800
    y = upscale_tensor(model, torch.rand(1, 3, 600, 40), overlap=320, out_dtype=torch.uint8)
    assert y.shape == (1, 3, 2400, 160)
    # an overlap wider than the largest CPU tile: the automatic tile grows to hold it (was a ConfigError)
    assert auto_tile_size(model, (1, 3, 2000, 2000), torch.device("cpu"), torch.float32, overlap=500) >= 2 * 625
    y = upscale_tensor(model, torch.rand(1, 3, 1400, 24), overlap=500, out_dtype=torch.uint8)
    assert y.shape == (1, 3, 5600, 96)


def test_cpu_budget_follows_available_memory_and_local_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiling, "_available_memory", lambda: 16 << 30)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert tiling._cpu_budget() == 4 << 30
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two torchrun processes share the machine
    assert tiling._cpu_budget() == 2 << 30
    monkeypatch.setattr(tiling, "_available_memory", lambda: 1 << 30)  # a small container
    assert tiling._cpu_budget() == 1 << 30  # never below 1 GiB
    monkeypatch.setattr(tiling, "_available_memory", lambda: None)  # not Linux
    assert tiling._cpu_budget() == 1 << 30


def test_available_memory_reads_meminfo_and_a_cgroup_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {"/proc/meminfo": "MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n",
             "/sys/fs/cgroup/memory.max": "4294967296\n", "/sys/fs/cgroup/memory.current": "1073741824\n"}
    real_open = open

    def fake_open(path: str, *args: object, **kwargs: object) -> object:
        if path in files:
            (tmp_path / "f").write_text(files[path])
            return real_open(tmp_path / "f", *args, **kwargs)  # type: ignore[call-overload]
        raise FileNotFoundError(path)

    monkeypatch.setattr("builtins.open", fake_open)
    assert tiling._available_memory() == 3 << 30  # the container's 4 GiB less the 1 GiB in use
    files["/sys/fs/cgroup/memory.max"] = "max\n"  # no limit: MemAvailable
    assert tiling._available_memory() == 16 << 30


def test_auto_tile_size_cpu_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tiling._cpu_budget() >= 1 << 30  # a quarter of the available memory, at least 1 GiB
    monkeypatch.setattr(tiling, "_cpu_budget", lambda: 1 << 30)  # the same on any machine
    model = create_model("edsr", scale=4, blocks=1)  # full width (256): the estimate uses the widest conv
    cpu = torch.device("cpu")
    assert auto_tile_size(model, (1, 3, 64, 64), cpu, torch.float32) == 0
    big = auto_tile_size(model, (1, 3, 4096, 4096), cpu, torch.float32)
    assert 64 <= big <= 512 and auto_tile_size(model, (1, 3, 2048, 2048), cpu, torch.float32) == big
    assert auto_tile_size(model, (8, 3, 4096, 4096), cpu, torch.float32) < big  # batches cost more


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"x": torch.rand(3, 8, 8)}, ImageError),
        ({"x": torch.zeros(1, 3, 8, 8, dtype=torch.int32)}, ImageError),
        ({"out_dtype": torch.int16}, ConfigError),
        ({"tile": 10, "overlap": 8}, ConfigError),
        ({"tile": -1}, ConfigError),
        ({"precision": "fp16"}, ConfigError),
        ({"device": "tpu"}, ConfigError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    args: dict[str, object] = {"x": torch.rand(1, 3, 40, 40), **kwargs}
    with pytest.raises(error):
        upscale_tensor(create_model("bicubic", scale=2), **args)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_allocator_setup_on_glibc() -> None:
    """glibc is found and set up (the speed-up itself: benchmarks/malloc_reuse.py); trimming works after it."""
    import ctypes

    assert tiling._malloc_trim() is not None
    libc = ctypes.CDLL(None)
    assert libc.mallopt(tiling._M_MMAP_THRESHOLD, tiling._MMAP_THRESHOLD) == 1  # the value glibc accepts
    assert libc.mallopt(tiling._M_TRIM_THRESHOLD, tiling._TRIM_THRESHOLD) == 1
    tiling._release_freed_memory()
