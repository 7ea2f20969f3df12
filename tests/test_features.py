"""VGG19 / ResNet feature extractors: torchvision key layout, loading, freezing, layer selection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _torchvision_fakes import constant, fake_state, full_layout
from safetensors.torch import save_file

from sruscale.errors import CheckpointError
from sruscale.losses import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResNetFeatures,
    VGG19Features,
    backbone_channels,
    backbone_layers,
    create_backbone,
    find_backbone_weights,
    load_backbone,
    read_state_dict,
)

VGG19_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
VGG19_CONV_OUT = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache; returns its ``checkpoints`` folder."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    return ckpt


def _assert_loaded(model: torch.nn.Module, arch: str, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    assert own, "empty extractor"
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            continue
        assert torch.equal(value, state[key].to(value.dtype)), key


# --------------------------------------------------------------------------- key layout


def test_vgg19_state_dict_is_torchvision_layout() -> None:
    with torch.device("meta"):
        vgg = VGG19Features(layers=["relu5_4"])
    sd = vgg.state_dict()
    expected = {f"features.{i}.{p}" for i in VGG19_CONV_INDICES for p in ("weight", "bias")}
    assert set(sd) == expected
    assert tuple(sd["features.0.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["features.34.weight"].shape) == (512, 512, 3, 3)
    for i, out in zip(VGG19_CONV_INDICES, VGG19_CONV_OUT, strict=True):
        assert sd[f"features.{i}.weight"].shape[0] == out
        assert tuple(sd[f"features.{i}.bias"].shape) == (out,)


@pytest.mark.parametrize(
    ("arch", "count", "checks"),
    [
        (
            "resnet18",
            122,
            {"conv1.weight": (64, 3, 7, 7), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
             "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512)},
        ),
        ("resnet34", 218, {"layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn2.bias": (512,)}),
        (
            "resnet50",
            320,
            {"bn1.running_mean": (64,), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
             "layer1.0.conv3.weight": (256, 64, 1, 1), "layer2.0.conv2.weight": (128, 128, 3, 3),
             "layer4.2.bn3.running_var": (2048,), "fc.weight": (1000, 2048), "fc.bias": (1000,)},
        ),
    ],
)  # fmt: skip
def test_resnet_state_dict_is_torchvision_layout(arch: str, count: int, checks: dict) -> None:
    # count = len(torchvision.models.<arch>().state_dict()), including fc and num_batches_tracked
    layout = full_layout(arch)
    assert len(layout) == count
    for key, shape in checks.items():
        assert layout[key] == shape, key
    if arch == "resnet18":
        assert "layer1.0.downsample.0.weight" not in layout  # BasicBlock: no projection in layer1
    assert "layer1.0.bn1.num_batches_tracked" in layout


def test_extractor_builds_only_needed_layers() -> None:
    vgg = VGG19Features(layers=["relu2_2"])
    assert len(vgg.features) == 9  # conv1_1 .. relu2_2 = features.0 .. features.8
    res = ResNetFeatures(depth=18, layers=["layer2"])
    assert hasattr(res, "layer2") and not hasattr(res, "layer3")


@pytest.mark.parametrize("arch", ["vgg19", "resnet18", "resnet50"])
def test_channels_and_shapes(arch: str) -> None:
    layers = list(backbone_layers(arch))
    net = create_backbone(arch, layers=layers)
    out = net(torch.rand(1, 3, 32, 32))
    assert list(out) == layers
    for name, feat in out.items():
        assert feat.shape[1] == backbone_channels(arch, name), name
        assert torch.isfinite(feat).all()


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("filename", ["vgg19-dcbb9e9d.pth"])
def test_vgg19_loads_from_hub_cache(hub: Path, filename: str) -> None:
    state = fake_state("vgg19")
    torch.save(state, hub / filename)
    vgg = load_backbone("vgg19", layers=["relu5_4", "conv5_4", "relu1_2"])
    _assert_loaded(vgg, "vgg19", state)
    keys = list(full_layout("vgg19"))
    # each conv got its own constant: the key -> module mapping is torchvision's
    assert float(vgg.features[34].weight[0, 0, 0, 0]) == pytest.approx(constant(keys.index("features.34.weight")))
    assert float(vgg.features[0].bias[0]) == pytest.approx(constant(keys.index("features.0.bias")))
    out = vgg(torch.rand(1, 3, 32, 32))
    assert list(out) == ["relu5_4", "conv5_4", "relu1_2"]
    assert tuple(out["relu5_4"].shape) == (1, 512, 2, 2)


@pytest.mark.parametrize(
    ("arch", "filename"),
    [("resnet50", "resnet50-0676ba61.pth"), ("resnet18", "resnet18-f37072fd.pth")],
)
def test_resnet_loads_from_torch_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch: str, filename: str
) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    (tmp_path / "th" / "hub" / "checkpoints").mkdir(parents=True)
    # old torchvision files have no num_batches_tracked entries: they must load too
    state = fake_state(arch, num_batches_tracked=False)
    torch.save(state, tmp_path / "th" / "hub" / "checkpoints" / filename)
    assert find_backbone_weights(arch) == tmp_path / "th" / "hub" / "checkpoints" / filename
    net = load_backbone(arch, layers=["layer4"])
    _assert_loaded(net, arch, state)
    if arch == "resnet50":
        keys = list(full_layout(arch))
        assert float(net.layer4[2].bn3.running_var[0]) == pytest.approx(
            constant(keys.index("layer4.2.bn3.running_var"))
        )


@pytest.mark.parametrize(
    ("arch", "names"),
    [
        ("resnet50", ["resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth", "resnet50-19c8e357.pth"]),
        ("resnet18", ["resnet18-f37072fd.pth", "resnet18-5c106cde.pth"]),
        ("resnet34", ["resnet34-b627a593.pth", "resnet34-333f7ec4.pth"]),
        ("vgg19", ["vgg19-dcbb9e9d.pth"]),
    ],
)
def test_hub_cache_file_names(hub: Path, arch: str, names: list[str]) -> None:
    for name in reversed(names):  # every torchvision name is found; the current one is preferred
        (hub / name).write_bytes(b"")
        assert find_backbone_weights(arch) == hub / name
    assert find_backbone_weights(arch, hub / names[-1]) == hub / names[-1]  # an explicit file wins


def _vgg_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """relu1_1, relu2_2 and pool2 of torchvision's VGG19, written with F.* from the state dict."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def conv(i: int, t: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(t, state[f"features.{i}.weight"], state[f"features.{i}.bias"], padding=1))

    h = (x - mean) / std
    relu1_1 = conv(0, h)
    h = F.max_pool2d(conv(2, relu1_1), 2)
    relu2_2 = conv(7, conv(5, h))
    return {"relu1_1": relu1_1, "relu2_2": relu2_2, "pool2": F.max_pool2d(relu2_2, 2)}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg19_weights_path_matches_functional_reference(tmp_path: Path, suffix: str) -> None:
    real = [f"features.{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias")]
    state = fake_state("vgg19", real=real)
    path = tmp_path / f"my-vgg{suffix}"
    if suffix == ".safetensors":
        save_file({k: state[k].contiguous() for k in real}, str(path))  # a features-only file is fine too
    else:
        torch.save(state, path)
    vgg = load_backbone("vgg19", layers=["relu1_1", "relu2_2", "pool2"], weights_path=path)
    x = torch.rand(2, 3, 16, 16)
    expected = _vgg_reference(state, x)
    got = vgg(x)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_resnet18_matches_functional_reference(tmp_path: Path) -> None:
    prefixes = ("conv1.", "bn1.", "layer1.0.")
    state = fake_state("resnet18", real=[k for k in full_layout("resnet18") if k.startswith(prefixes)])
    torch.save(state, tmp_path / "r18.pth")
    net = load_backbone("resnet18", layers=["maxpool", "layer1"], weights_path=tmp_path / "r18.pth")

    def bn(name: str, t: torch.Tensor) -> torch.Tensor:
        s = state
        return F.batch_norm(t, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                            s[f"{name}.bias"], training=False, eps=1e-5)  # fmt: skip

    x = torch.rand(1, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    h = F.relu(bn("bn1", F.conv2d((x - mean) / std, state["conv1.weight"], stride=2, padding=3)))
    pooled = F.max_pool2d(h, 3, stride=2, padding=1)
    b = F.relu(bn("layer1.0.bn1", F.conv2d(pooled, state["layer1.0.conv1.weight"], padding=1)))
    b = bn("layer1.0.bn2", F.conv2d(b, state["layer1.0.conv2.weight"], padding=1))
    block0 = F.relu(b + pooled)
    out = net(x)
    torch.testing.assert_close(out["maxpool"], pooled, rtol=1e-5, atol=1e-5)
    # layer1 = block0 then block1 (constants); check block0 through a one-block prefix of the network
    torch.testing.assert_close(net.layer1[0](out["maxpool"]), block0, rtol=1e-5, atol=1e-5)


def test_read_state_dict_unwraps(tmp_path: Path) -> None:
    sd = {"module.features.0.weight": torch.zeros(2), "module.features.0.bias": torch.ones(2)}
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.pth")
    got = read_state_dict(tmp_path / "wrapped.pth")
    assert set(got) == {"features.0.weight", "features.0.bias"}
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="junk.pth"):
        read_state_dict(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="safetensors"):
        read_state_dict(tmp_path / "junk.safetensors")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("arch", "filename"),
    [("vgg19", "vgg19-dcbb9e9d.pth"), ("resnet34", "resnet34-b627a593.pth"), ("resnet50", "resnet50-0676ba61.pth")],
)
def test_missing_weights_says_what_to_get(hub: Path, monkeypatch: pytest.MonkeyPatch, arch: str, filename: str) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("sruscale must never download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with pytest.raises(CheckpointError) as info:
        load_backbone(arch, layers=[backbone_layers(arch)[1]])
    msg = str(info.value)
    assert f"https://download.pytorch.org/models/{filename}" in msg
    assert str(hub / filename) in msg
    assert "--backbone-weights FILE" in msg


def test_missing_weights_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pth: backbone weights file not found.*vgg19-dcbb9e9d\.pth"):
        load_backbone("vgg19", layers=["relu1_1"], weights_path=tmp_path / "nope.pth")


def test_wrong_architecture_file(tmp_path: Path) -> None:
    torch.save(fake_state("resnet18"), tmp_path / "r18.pth")
    with pytest.raises(
        CheckpointError, match=r"not a torchvision vgg19 state dict \(missing keys \['features.0.weight"
    ):
        load_backbone("vgg19", layers=["relu1_1"], weights_path=tmp_path / "r18.pth")
    torch.save(fake_state("resnet18"), tmp_path / "r18.pth")
    mismatch = r"shape mismatch layer1.0.conv1.weight: expected \(64, 64, 1, 1\), got \(64, 64, 3, 3\)"
    with pytest.raises(CheckpointError, match=mismatch):
        load_backbone("resnet50", layers=["relu"], weights_path=tmp_path / "r18.pth")


def test_bad_shape_in_file(tmp_path: Path) -> None:
    state = fake_state("vgg19")
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"features.0.weight: expected \(64, 3, 3, 3\), got \(64, 1, 3, 3\)"):
        load_backbone("vgg19", layers=["relu1_1"], weights_path=tmp_path / "bad.pth")


def test_unknown_layer_and_arch() -> None:
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['relu6_1'\]; choose from \['conv1_1'"):
        VGG19Features(layers=["relu6_1"])
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['relu5_4'\].*'layer4'"):
        ResNetFeatures(depth=18, layers=["relu5_4"])
    with pytest.raises(ValueError, match="depth must be one of"):
        ResNetFeatures(depth=101, layers=["layer1"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backbone 'vgg11'"):
        create_backbone("vgg11", layers=["relu1_1"])


def test_bad_input_shapes() -> None:
    vgg = VGG19Features(layers=["relu1_1"])
    with pytest.raises(ValueError, match=r"expected 4 dims \(B, C, H, W\), got shape \(3, 8, 8\)"):
        vgg(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"expected 1 or 3 channels, got shape \(1, 2, 8, 8\)"):
        vgg(torch.rand(1, 2, 8, 8))


# --------------------------------------------------------------------------- behaviour


def test_frozen_and_always_eval() -> None:
    net = ResNetFeatures(depth=18, layers=["layer1"])
    assert all(not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training and not net.bn1.training and not net.layer1[0].bn1.training
    before = net.bn1.running_mean.clone()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    out = net(x)["layer1"]
    torch.testing.assert_close(net.bn1.running_mean, before)  # BN used running statistics
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_imagenet_normalisation_and_gray_input() -> None:
    vgg = VGG19Features(layers=["relu1_2"])
    raw = VGG19Features(layers=["relu1_2"], normalize=False)
    raw.load_state_dict(vgg.state_dict())
    x = torch.rand(1, 3, 8, 8)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg(x)["relu1_2"], raw((x - mean) / std)["relu1_2"])
    y = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(vgg(y)["relu1_2"], vgg(y.repeat(1, 3, 1, 1))["relu1_2"])
    assert "mean" not in vgg.state_dict()  # buffers are not part of torchvision's layout


def test_conv_layer_is_pre_activation() -> None:
    vgg = VGG19Features(layers=["conv1_1", "relu1_1"])
    out = vgg(torch.rand(1, 3, 8, 8))
    assert (out["conv1_1"] < 0).any()  # not clobbered by an in-place ReLU
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))
