"""Loading the authors' EDSR-PyTorch and RCAN checkpoints from state dicts built in their layouts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sruscale.errors import CheckpointError
from sruscale.models import create_model
from sruscale.models.edsr import EDSR, EDSRBaseline
from sruscale.models.rcan import RCAN
from sruscale.weights import load_model, model_scale, save_model
from sruscale.weights._authors import load_edsr_checkpoint, load_rcan_checkpoint

MEAN = (0.4488, 0.4371, 0.4040)


def _conv(state: dict, key: str, cin: int, cout: int, k: int = 3) -> None:
    state[f"{key}.weight"] = torch.randn(cout, cin, k, k) * 0.05
    state[f"{key}.bias"] = torch.randn(cout) * 0.01


def _mean_shift(state: dict, rgb_range: float = 255.0) -> None:
    """The authors' MeanShift: a frozen 1x1 conv, weight eye / std, bias sign * range * mean / std."""
    eye = torch.eye(3).view(3, 3, 1, 1)
    state["sub_mean.weight"], state["sub_mean.bias"] = eye.clone(), -rgb_range * torch.tensor(MEAN)
    state["add_mean.weight"], state["add_mean.bias"] = eye.clone(), rgb_range * torch.tensor(MEAN)


def _tail(state: dict, f: int, scale: int) -> None:
    if scale == 3:
        _conv(state, "tail.0.0", f, 9 * f)
    else:
        for j in range(scale.bit_length() - 1):  # tail.0.{0,2,4}: conv, (1, 3: PixelShuffle)
            _conv(state, f"tail.0.{2 * j}", f, 4 * f)
    _conv(state, "tail.1", f, 3)


def edsr_pytorch_state(*, blocks: int, f: int, scale: int) -> dict[str, torch.Tensor]:
    """A state dict with the key names of EDSR-PyTorch ``model/edsr.py``."""
    state: dict[str, torch.Tensor] = {}
    _mean_shift(state)
    _conv(state, "head.0", 3, f)
    for i in range(blocks):  # ResBlock.body = [conv, ReLU, conv]
        _conv(state, f"body.{i}.body.0", f, f)
        _conv(state, f"body.{i}.body.2", f, f)
    _conv(state, f"body.{blocks}", f, f)
    _tail(state, f, scale)
    return state


def rcan_state(*, groups: int, blocks: int, f: int, reduction: int, scale: int) -> dict[str, torch.Tensor]:
    """A state dict with the key names of RCAN ``RCAN_TrainCode/code/model/rcan.py``."""
    state: dict[str, torch.Tensor] = {}
    _mean_shift(state)
    _conv(state, "head.0", 3, f)
    for g in range(groups):
        for b in range(blocks):  # RCAB.body = [conv, ReLU, conv, CALayer(conv_du = [conv, ReLU, conv, Sigmoid])]
            _conv(state, f"body.{g}.body.{b}.body.0", f, f)
            _conv(state, f"body.{g}.body.{b}.body.2", f, f)
            _conv(state, f"body.{g}.body.{b}.body.3.conv_du.0", f, f // reduction, 1)
            _conv(state, f"body.{g}.body.{b}.body.3.conv_du.2", f // reduction, f, 1)
        _conv(state, f"body.{g}.body.{blocks}", f, f)
    _conv(state, f"body.{groups}", f, f)
    _tail(state, f, scale)
    return state


def edsr_reference_forward(
    state: dict[str, torch.Tensor], x: torch.Tensor, *, blocks: int, scale: int, res_scale: float
):
    """EDSR forward written directly on the authors' tensors ([0, 255] range)."""

    def c(t: torch.Tensor, key: str) -> torch.Tensor:
        w = state[f"{key}.weight"]
        return F.conv2d(t, w, state[f"{key}.bias"], padding=w.shape[-1] // 2)

    h = c(x * 255, "sub_mean")
    h = c(h, "head.0")
    r = h
    for i in range(blocks):
        r = r + res_scale * c(F.relu(c(r, f"body.{i}.body.0")), f"body.{i}.body.2")
    h = h + c(r, f"body.{blocks}")
    if scale == 3:
        h = F.pixel_shuffle(c(h, "tail.0.0"), 3)
    else:
        for j in range(scale.bit_length() - 1):
            h = F.pixel_shuffle(c(h, f"tail.0.{2 * j}"), 2)
    return c(c(h, "tail.1"), "add_mean") / 255


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_checkpoint_loads_and_matches_the_authors_forward(scale: int, tmp_path) -> None:
    state = edsr_pytorch_state(blocks=2, f=8, scale=scale)
    path = tmp_path / f"edsr_x{scale}.pt"
    torch.save(state, path)
    model = load_edsr_checkpoint(path)
    assert isinstance(model, EDSR) and not model.training
    assert model.scale == scale
    assert model.hparams["blocks"] == 2 and model.hparams["features"] == 8 and model.hparams["res_scale"] == 1.0
    assert model.hparams["rgb_mean"] == pytest.approx(MEAN) and model.hparams["rgb_range"] == 255.0
    assert torch.equal(model.body[1].conv2.weight, state["body.1.body.2.weight"])
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        ref = edsr_reference_forward(state, x, blocks=2, scale=scale, res_scale=1.0)
        assert torch.allclose(model(x), ref, atol=1e-4)


def test_edsr_baseline_shape_gives_the_baseline_class_and_prefixes_are_stripped(tmp_path) -> None:
    state = {f"module.{k}": v for k, v in edsr_pytorch_state(blocks=16, f=64, scale=2).items()}
    torch.save(state, tmp_path / "edsr_baseline_x2.pt")
    model = load_edsr_checkpoint(tmp_path / "edsr_baseline_x2.pt", scale=2)
    assert isinstance(model, EDSRBaseline) and model.name == "edsr-baseline"


def test_edsr_paper_size_infers_residual_scaling() -> None:
    from sruscale.weights._authors import convert_edsr_state

    state = edsr_pytorch_state(blocks=32, f=8, scale=2)
    state["head.0.weight"] = torch.zeros(256, 3, 3, 3)  # only these shapes matter for inference
    state["tail.0.0.weight"] = torch.zeros(4 * 256, 1, 1, 1)
    _, hp = convert_edsr_state(state)
    assert hp["blocks"] == 32 and hp["features"] == 256 and hp["res_scale"] == 0.1


@pytest.mark.parametrize("scale", [2, 4])
def test_rcan_checkpoint_loads_every_tensor_where_expected(scale: int, tmp_path) -> None:
    state = rcan_state(groups=2, blocks=3, f=16, reduction=4, scale=scale)
    torch.save(state, tmp_path / "RCAN_BIX.pt")
    model = load_rcan_checkpoint(tmp_path / "RCAN_BIX.pt", scale=scale)
    assert isinstance(model, RCAN) and model.scale == scale
    hp = model.hparams
    assert (hp["groups"], hp["blocks"], hp["features"], hp["reduction"]) == (2, 3, 16, 4)
    ours = model.state_dict()
    pairs = {
        "head.0.weight": "head.weight",
        "body.1.body.2.body.0.weight": "body.1.blocks.2.conv1.weight",
        "body.1.body.2.body.2.bias": "body.1.blocks.2.conv2.bias",
        "body.0.body.1.body.3.conv_du.0.weight": "body.0.blocks.1.attention.down.weight",
        "body.0.body.1.body.3.conv_du.2.bias": "body.0.blocks.1.attention.up.bias",
        "body.1.body.3.weight": "body.1.conv.weight",
        "body.2.weight": "body.2.weight",
        "tail.0.0.weight": "upsample.0.weight",
        "tail.1.bias": "tail.bias",
    }
    for theirs, mine in pairs.items():
        assert torch.equal(ours[mine], state[theirs]), mine
    assert len(ours) == len(state) - 4  # everything but the two mean-shift convs
    with torch.no_grad():
        assert model(torch.rand(1, 3, 5, 4)).shape == (1, 3, 5 * scale, 4 * scale)


def test_missing_and_unexpected_keys_are_listed(tmp_path) -> None:
    state = edsr_pytorch_state(blocks=2, f=8, scale=2)
    del state["body.1.body.2.weight"]
    state["body.0.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as info:
        load_edsr_checkpoint(tmp_path / "broken.pt")
    msg = str(info.value)
    assert "missing keys ['body.1.conv2.weight']" in msg
    assert "unexpected keys ['body.0.extra.weight']" in msg
    assert "broken.pt" in msg


def test_scale_mismatch_and_wrong_layout_raise(tmp_path) -> None:
    torch.save(edsr_pytorch_state(blocks=1, f=8, scale=2), tmp_path / "x2.pt")
    with pytest.raises(CheckpointError, match="expected scale x4"):
        load_edsr_checkpoint(tmp_path / "x2.pt", scale=4)
    torch.save({"conv.weight": torch.zeros(1, 1, 3, 3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="head.0.weight"):
        load_rcan_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_edsr_checkpoint(tmp_path / "absent.pt")


def test_mean_shift_with_std_is_rejected(tmp_path) -> None:
    state = edsr_pytorch_state(blocks=1, f=8, scale=2)
    state["sub_mean.weight"] = state["sub_mean.weight"] * 2
    torch.save(state, tmp_path / "std.pt")
    with pytest.raises(CheckpointError, match="std 1"):
        load_edsr_checkpoint(tmp_path / "std.pt")


class _Evil:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path) -> None:
    torch.save({"head.0.weight": torch.zeros(1), "x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused") as info:
        load_edsr_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_load_model_reads_authors_checkpoints(tmp_path) -> None:
    torch.save(rcan_state(groups=1, blocks=1, f=8, reduction=4, scale=2), tmp_path / "rcan.pt")
    assert isinstance(load_model("rcan", weights=tmp_path / "rcan.pt"), RCAN)
    assert model_scale("rcan", weights=tmp_path / "rcan.pt") == 2  # what upscale --dry-run names outputs by
    with pytest.raises(CheckpointError, match="expected scale x3"):
        load_model("rcan", scale=3, weights=tmp_path / "rcan.pt")
    own = create_model("edsr-baseline", scale=2, blocks=1, features=8)
    save_model(own, tmp_path / "own.safetensors")
    loaded = load_model(weights=tmp_path / "own.safetensors")
    assert loaded.name == "edsr-baseline" and loaded.hparams == own.hparams
