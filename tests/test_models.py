"""Registry-driven model tests: shapes, finiteness, backward, checkpoint round trip, paper sizes."""

from __future__ import annotations

import json

import pytest
import torch
from _model_zoo import SMALL_HPARAMS, registry_cases, small_model

from sruscale.models import REGISTRY, SRModel, create_model, list_models
from sruscale.models.lapsrn import LapSRN
from sruscale.models.profile import count_parameters, flops_per_megapixel
from sruscale.models.prosr import ProSR
from sruscale.weights import load_model, save_model

CASES = registry_cases()
IDS = [f"{n}-x{s}" for n, s in CASES]


def _input(model: SRModel, channels: int, size: int = 6, batch: int = 2) -> torch.Tensor:
    m = model.multiple_of
    side = max(-(-size // m) * m, model.minimum)
    return torch.rand(batch, channels, side, side + m)


def test_registry_lists_every_architecture() -> None:
    expected = {
        "bicubic",
        "srcnn",
        "vdsr",
        "fsrcnn",
        "espcn",
        "edsr",
        "edsr-baseline",
        "rcan",
        "lapsrn",
        "prosr",
        "dbpn",
        "plainsr",
    }
    assert set(list_models()) == expected


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_contract_attributes(name: str) -> None:
    cls = REGISTRY[name]
    assert cls.name == name
    assert cls.framework in ("pre", "post", "progressive", "iterative")
    assert cls.scales and all(isinstance(s, int) and s >= 2 for s in cls.scales)
    assert cls.multiple_of >= 1 and cls.minimum >= 1
    assert 1 <= cls.receptive_field <= 32  # capped for very deep nets: it sets the tile overlap
    own = cls.__dict__.get("__doc__") or ""
    assert "(B, C, H, W)" in own, f"{cls.__name__} needs its own docstring with shapes"
    with pytest.raises(ValueError, match="supports scales"):
        cls(scale=5)
    with pytest.raises(TypeError):
        cls(scale=cls.scales[0], not_a_hparam=1)


@pytest.mark.parametrize(("name", "scale"), CASES, ids=IDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_shape_and_finite(name: str, scale: int, channels: int) -> None:
    model = small_model(name, scale).eval()
    x = _input(model, channels)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (x.shape[0], channels, x.shape[2] * scale, x.shape[3] * scale)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()


TRAINABLE = [(n, s) for n, s in CASES if n != "bicubic"]  # bicubic has no parameters


@pytest.mark.parametrize(("name", "scale"), TRAINABLE, ids=[f"{n}-x{s}" for n, s in TRAINABLE])
def test_backward_reaches_every_parameter(name: str, scale: int) -> None:
    model = small_model(name, scale).train()
    params = [p for p in model.parameters() if p.requires_grad]
    assert params
    x = _input(model, model.in_channels, size=4, batch=1).requires_grad_(True)
    model(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if isinstance(model, ProSR):  # smaller scales' input/output convs are only used in the curriculum
        params = [p for n, p in model.named_parameters() if not n.startswith(("init_convs.", "reconstruct."))]
        params += [*model.init_convs[-1].parameters(), *model.reconstruct[-1].parameters()]
    wanted = {id(p) for p in params}
    missing = [n for n, p in model.named_parameters() if id(p) in wanted and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize(("name", "scale"), CASES, ids=IDS)
def test_checkpoint_round_trip(name: str, scale: int, tmp_path) -> None:
    model = small_model(name, scale).eval()
    with torch.no_grad():
        for p in model.parameters():  # move away from the init so a missed load would show
            p.add_(torch.randn_like(p) * 0.01)
    path = save_model(model, tmp_path / f"{name}.safetensors")
    loaded = load_model(weights=path)
    assert type(loaded) is type(model)
    assert loaded.scale == scale
    assert json.dumps(loaded.hparams, sort_keys=True) == json.dumps(model.hparams, sort_keys=True)
    x = _input(model, 3, batch=1)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_minimum_size_input_works() -> None:
    for name, scale in CASES:
        model = small_model(name, scale).eval()
        side = max(model.minimum, model.multiple_of)
        with torch.no_grad():
            y = model(torch.rand(1, 3, side, side))
        assert y.shape[-2:] == (side * scale, side * scale), name


# --- published parameter counts (default = paper hyperparameters; full size, no forward) ---
# (name, scale, hparams, expected, weights_only, relative tolerance, source)
PAPER_COUNTS = [
    ("srcnn", 3, {}, 57_184, True, 0, "SRCNN TPAMI 2016, Sec. 4.3: 9-5-5 network, 57,184 weights"),
    ("srcnn", 3, {"kernel_sizes": (9, 1, 5)}, 8_032, True, 0, "SRCNN TPAMI 2016, Sec. 4.3: 9-1-5, 8,032"),
    ("fsrcnn", 3, {}, 12_464, True, 0, "FSRCNN ECCV 2016, Table 1: FSRCNN(56,12,4), 12,464 weights"),
    ("vdsr", 3, {}, 665_000, False, 0.002, "665K, CARN ECCV 2018 Table 1 / FALSR comparison table"),
    ("lapsrn", 4, {}, 812_000, True, 0.001, "LapSRN CVPR 2017: 812K (CARN: 813K), weights only"),
    ("edsr-baseline", 2, {}, 1_370_000, False, 0.002, "EDSR-PyTorch README: EDSR_baseline_x2 1.37M"),
    ("edsr-baseline", 4, {}, 1_520_000, False, 0.002, "EDSR-PyTorch README: EDSR_baseline_x4 1.52M"),
    ("edsr", 2, {}, 40_700_000, False, 0.002, "EDSR-PyTorch README: EDSR_x2 40.7M"),
    ("edsr", 3, {}, 43_700_000, False, 0.002, "EDSR-PyTorch README: EDSR_x3 43.7M"),
    ("edsr", 4, {}, 43_100_000, False, 0.002, "EDSR-PyTorch README: EDSR_x4 43.1M (paper Table 1: 43M)"),
    ("rcan", 4, {}, 15_600_000, False, 0.003, "RCAN ECCV 2018: ~16M; 15.59M at x4 in the authors' code"),
    ("dbpn", 4, {}, 10_426_000, False, 0.0001, "D-DBPN CVPR 2018: 10,426K parameters (x4)"),
    (
        "prosr",
        8,
        {},
        15_537_609,
        False,
        0,
        "authors' options/prosr.yaml architecture, counted (no paper figure checked)",
    ),
]


@pytest.mark.parametrize(
    ("name", "scale", "hparams", "expected", "weights_only", "rtol", "source"),
    PAPER_COUNTS,
    ids=[f"{c[0]}-x{c[1]}-{c[3]}" for c in PAPER_COUNTS],
)
def test_parameter_count_matches_paper(name, scale, hparams, expected, weights_only, rtol, source) -> None:
    n = count_parameters(create_model(name, scale=scale, **hparams), weights_only=weights_only)
    assert abs(n - expected) <= rtol * expected, f"{name} x{scale}: {n} parameters, {source} says {expected}"


def test_exact_counts_for_the_rounded_figures() -> None:
    # the rounded published figures above, computed exactly from the layer tables
    assert count_parameters(create_model("vdsr", scale=3)) == 665_921  # 19 x 64 + 1 biases on 664,704 weights
    assert count_parameters(create_model("lapsrn", scale=4), weights_only=True) == 812_768
    assert count_parameters(create_model("dbpn", scale=4)) == 10_426_358
    assert count_parameters(create_model("rcan", scale=4)) == 15_592_355


def test_lapsrn_pyramid_returns_every_level() -> None:
    model = LapSRN(scale=8, **SMALL_HPARAMS["lapsrn"]).eval()
    x = torch.rand(1, 1, 5, 7)
    with torch.no_grad():
        levels = model.forward_pyramid(x)
        assert [t.shape[-2:] for t in levels] == [(10, 14), (20, 28), (40, 56)]
        assert torch.equal(levels[-1], model.forward_native(x))


def test_lapsrn_image_branch_starts_bilinear() -> None:
    model = LapSRN(scale=2, **SMALL_HPARAMS["lapsrn"])
    level = model.levels[0]
    x = torch.full((1, 1, 6, 6), 0.3)
    up = level.image_up(x)
    assert torch.allclose(up[..., 1:-1, 1:-1], torch.full_like(up[..., 1:-1, 1:-1], 0.3), atol=1e-6)


def test_prosr_curriculum_levels_and_blend() -> None:
    model = ProSR(scale=8, **SMALL_HPARAMS["prosr"]).eval()
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        assert [t.shape[-2:] for t in model.forward_pyramid(x, max_level=2)] == [(12, 10), (24, 20)]
        full = model.forward_pyramid(x)
        assert len(full) == 3 and torch.equal(full[-1], model.forward_native(x))
        faded = model.forward_pyramid(x, max_level=2, blend=0.0)
        prev = torch.nn.functional.interpolate(faded[0], scale_factor=2, mode="bilinear", align_corners=False)
        assert torch.allclose(faded[1], prev, atol=1e-5)
    with pytest.raises(ValueError, match="max_level"):
        model.forward_pyramid(x, max_level=4)
    with pytest.raises(ValueError, match="blend"):
        model.forward_pyramid(x, blend=1.5)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_dbpn_projection_geometry_per_scale(scale: int) -> None:
    from sruscale.models.dbpn import PROJECTION

    model = small_model("dbpn", scale)
    up = model.ups[0].conv1[0]
    assert (up.kernel_size[0], up.stride[0], up.padding[0]) == PROJECTION[scale]
    assert PROJECTION == {2: (6, 2, 2), 4: (8, 4, 2), 8: (12, 8, 2)}


def test_pre_upsampling_models_interpolate_inside_forward() -> None:
    from sruscale.resize import imresize

    model = create_model("vdsr", scale=2, depth=3, features=4)
    with torch.no_grad():
        for p in model.body[-1].parameters():
            p.zero_()  # residual branch off -> output is exactly MATLAB bicubic
        x = torch.rand(1, 1, 9, 7)
        assert torch.allclose(model(x), imresize(x, 2), atol=1e-6)


def test_flops_scale_with_model_size() -> None:
    small = flops_per_megapixel(create_model("fsrcnn", scale=4), size=8)
    # FSRCNN x4: per LR pixel 12,464 - deconv + deconv per LR pixel ... ~0.78 GMAC per output MP
    assert 1.0 < small < 2.5
    assert flops_per_megapixel(create_model("edsr-baseline", scale=4), size=8) > 100 * small
