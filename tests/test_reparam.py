"""Re-parameterised models: the folded network that ships equals the multi-branch training graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sruscale.errors import ConfigError
from sruscale.models import REGISTRY, create_model
from sruscale.models.plainsr import PlainSR, RepConv3x3

FOLDING = [
    (name, scale)
    for name, cls in sorted(REGISTRY.items())
    if cls.for_inference is not REGISTRY["bicubic"].for_inference
    for scale in cls.scales
]


def _randomize(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize(("name", "scale"), FOLDING, ids=[f"{n}-x{s}" for n, s in FOLDING])
def test_folded_equals_unfolded(name: str, scale: int) -> None:
    model = create_model(name, scale=scale).eval()
    _randomize(model)
    folded = model.for_inference()
    assert folded is not model
    assert folded.hparams["deploy"] is True
    x = torch.rand(2, 1, 13, 17)
    with torch.no_grad():
        ref = model(x)
        out = folded(x)
    assert out.shape == (2, 1, 13 * scale, 17 * scale)
    assert (out - ref).abs().max().item() < 1e-5
    # the folded model has only plain convolutions
    assert not any(hasattr(m, "k3") for m in folded.modules())


def test_plainsr_online_fold_equals_branches() -> None:
    model = PlainSR(scale=3, channels=8, blocks=2).double()
    _randomize(model)
    x = torch.rand(1, 1, 9, 11, dtype=torch.float64)
    assert torch.allclose(model.forward_native(x), model.forward_branches(x), atol=1e-12)


def test_repconv_border_is_exact() -> None:
    """The 1x1 branches pad with their bias, so the fold is exact at the image border too."""
    conv = RepConv3x3(4, 6).double()
    _randomize(conv)
    with torch.no_grad():
        for m in (conv.expand_1x1, conv.edge_1x1):
            m.bias.add_(1.0)
    x = torch.rand(1, 4, 5, 5, dtype=torch.float64)
    assert torch.allclose(conv(x), conv.forward_branches(x), atol=1e-12)


def test_plainsr_gradients_reach_every_branch() -> None:
    model = PlainSR(scale=2, channels=8, blocks=1)
    model(torch.rand(1, 1, 8, 8)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_plainsr_unfolds_shipped_weights_for_fine_tuning() -> None:
    """A folded file initialises the training graph exactly; a new tail is reported as skipped."""
    src = PlainSR(scale=2, channels=8, blocks=2)
    _randomize(src)
    folded = src.reparameterize()
    same = PlainSR(scale=2, channels=8, blocks=2)
    assert same.init_from(folded.state_dict()) == []
    x = torch.rand(1, 1, 10, 12)
    with torch.no_grad():
        assert (same(x) - folded(x)).abs().max().item() < 1e-5
    x4 = PlainSR(scale=4, channels=8, blocks=2)
    skipped = x4.init_from(folded.state_dict(), partial=True)
    assert skipped and all(k.startswith("tail.") for k in skipped)
    with pytest.raises(ValueError, match="do not fit"):
        PlainSR(scale=4, channels=8, blocks=2).init_from(folded.state_dict())


def test_recipe_init_from_another_scale_copies_the_body_and_says_so(tmp_path: Path) -> None:
    from sruscale.training.components import _make_model
    from sruscale.training.config import parse_config
    from sruscale.weights import save_model

    src = PlainSR(scale=2, channels=8, blocks=2)
    _randomize(src)
    save_model(src.reparameterize(), tmp_path / "x2.safetensors")
    model_table = {"name": "plainsr", "scale": 4, "hparams": {"channels": 8, "blocks": 2}}
    recipe = {"iterations": 1, "model": model_table, "data": {"train_hr": ["hr"]}}
    for flag in (True, False):  # another scale is a partial start with or without init_partial
        table = {**model_table, "init_weights": "x2.safetensors", "init_partial": flag}
        model, note = _make_model(parse_config({**recipe, "model": table}), tmp_path)
        assert model.scale == 4 and not model.hparams["deploy"]
        assert "x2 file into a x4 model" in note and "tail.k3.weight" in note and "body.0" not in note
        body = src.reparameterize().body[0]
        assert torch.allclose(model.body[0].fold()[0], body.fold()[0], atol=1e-6)
    with pytest.raises(ConfigError, match="do not fit"):  # same scale, other width: strict
        table = {**model_table, "scale": 2, "hparams": {"channels": 4, "blocks": 2}, "init_weights": "x2.safetensors"}
        _make_model(parse_config({**recipe, "model": table}), tmp_path)


def _grown_from_file(
    x: torch.Tensor, *, scale: int, blocks: int, channels: int, deploy: bool
) -> tuple[PlainSR, PlainSR]:
    """The folded random C8 M2 file and a PlainSR(``channels``, ``blocks``) started from it (``init_partial``);
    asserts that it loads every tensor and computes the file's function on ``x``."""
    src = PlainSR(scale=scale, in_channels=3, channels=8, blocks=2).eval()
    _randomize(src)
    folded = src.reparameterize()
    net = PlainSR(scale=scale, in_channels=3, channels=channels, blocks=blocks, deploy=deploy).eval()
    assert net.init_from(folded.state_dict(), partial=True) == []
    with torch.no_grad():
        assert (net(x) - folded(x)).abs().max().item() < 1e-5
    return folded, net


@pytest.mark.parametrize("deploy", [True, False])
def test_deeper_plainsr_started_from_a_shallower_file_computes_the_same_function(deploy: bool) -> None:
    """A recipe's deeper net (``init_partial``) starts as the file's function: new layers are identities."""
    _grown_from_file(torch.rand(1, 3, 11, 9), scale=2, blocks=6, channels=8, deploy=deploy)


@pytest.mark.parametrize("deploy", [True, False])
def test_wider_plainsr_started_from_a_narrower_file_computes_the_same_function_and_trains(deploy: bool) -> None:
    """A recipe's wider (and deeper) net starts as the file's function; the zero weights from the new
    channels get gradients, so after one step the old channels use them."""
    x = torch.rand(1, 3, 9, 10)
    folded, wide = _grown_from_file(x, scale=4, blocks=3, channels=12, deploy=deploy)
    with torch.no_grad():
        assert (wide.body[2](wide.body[1](wide.body[0](x)))[:, 8:]).abs().amax() > 0  # the new channels are live
    assert wide.for_inference().body[2].conv.weight[:8, 8:].abs().max() == 0
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    wide.train()
    (wide(x) - torch.rand(1, 3, 36, 40)).abs().mean().backward()
    opt.step()
    assert wide.for_inference().body[2].conv.weight[:8, 8:].abs().max() > 0
    with pytest.raises(ValueError, match="do not fit"):  # without init_partial a width change stays an error
        PlainSR(scale=4, in_channels=3, channels=12, blocks=2).init_from(folded.state_dict())


def test_widening_keeps_the_tail_rules_of_another_scale() -> None:
    """Wider and x4 -> x2: the box-averaged residual, as at the same width; x2 -> a wider x4 leaves the
    tail new; a Y file never widens into an RGB net."""
    from sruscale.resize import imresize

    src = PlainSR(scale=4, in_channels=3, channels=8, blocks=2).eval()
    _randomize(src)
    folded = src.reparameterize()
    x2 = PlainSR(scale=2, in_channels=3, channels=12, blocks=2, deploy=True).eval()
    assert x2.init_from(folded.state_dict(), partial=True) == []
    x = torch.rand(1, 3, 10, 7)
    with torch.no_grad():
        r4, r2 = folded(x) - imresize(x, scale=4), x2(x) - imresize(x, scale=2)
    torch.testing.assert_close(r2, F.avg_pool2d(r4, 2), atol=1e-5, rtol=0)
    wide_x4 = PlainSR(scale=4, in_channels=3, channels=12, blocks=2, deploy=True)
    assert wide_x4.init_from(x2.state_dict(), partial=True) == ["tail.conv.bias", "tail.conv.weight"]
    y = PlainSR(scale=4, in_channels=1, channels=8, blocks=2).reparameterize()
    PlainSR(scale=4, in_channels=3, channels=12, blocks=2).init_from(y.state_dict(), partial=True)  # no error
    rgb = PlainSR(scale=4, in_channels=3, channels=12, blocks=2, deploy=True)
    assert {"body.0.conv.weight", "tail.conv.weight"} <= set(rgb.init_from(y.state_dict(), partial=True))
    three = PlainSR(scale=4, in_channels=3, channels=3, blocks=2).reparameterize()  # as many features as colours
    eight = PlainSR(scale=4, in_channels=3, channels=8, blocks=2, deploy=True).eval()
    assert eight.init_from(three.state_dict(), partial=True) == []
    with torch.no_grad():
        assert (eight(x) - three.eval()(x)).abs().max().item() < 1e-5


def test_tail_retargeted_to_x2_gives_the_box_averaged_residual() -> None:
    """An x4 file into an x2 net: its residual over bicubic is the x4 residual averaged over 2x2
    output pixels (the starting point of ``train/realworld_x2.toml``); x2 -> x4 leaves the tail new."""
    from sruscale.resize import imresize

    x4 = PlainSR(scale=4, in_channels=3, channels=8, blocks=2).eval()
    _randomize(x4)
    folded = x4.reparameterize()
    x2 = PlainSR(scale=2, in_channels=3, channels=8, blocks=2, deploy=True).eval()
    assert x2.init_from(folded.state_dict(), partial=True) == []
    x = torch.rand(1, 3, 10, 7)
    with torch.no_grad():
        r4 = folded(x) - imresize(x, scale=4)
        r2 = x2(x) - imresize(x, scale=2)
    torch.testing.assert_close(r2, F.avg_pool2d(r4, 2), atol=1e-5, rtol=0)
    assert PlainSR(scale=4, in_channels=3, channels=8, blocks=2).init_from(x2.state_dict(), partial=True)
    x3 = PlainSR(scale=3, in_channels=3, channels=8, blocks=2, deploy=True)
    assert x3.init_from(folded.state_dict(), partial=True) == ["tail.conv.bias", "tail.conv.weight"]
