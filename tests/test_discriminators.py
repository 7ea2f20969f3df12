"""Discriminators: output shapes, spectral norm, backward, the frozen feature backbone, build_discriminator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _torchvision_fakes import fake_state
from torch.nn.utils import parametrize

import sruscale.losses as L
from sruscale.errors import CheckpointError, ConfigError


def _all_trainable_params_have_grad(module: torch.nn.Module) -> bool:
    return all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize(("size", "channels", "norm"), [(32, 3, "batch"), (48, 1, "none"), (40, 3, "spectral")])
def test_vgg_style_shapes_and_backward(size: int, channels: int, norm: str) -> None:
    disc = L.VGGStyleDiscriminator(in_channels=channels, num_feat=8, norm=norm)  # type: ignore[arg-type]
    x = torch.rand(2, channels, size, size, requires_grad=True)
    out = disc(x)
    assert out.shape == (2, 1)
    out.sum().backward()
    assert _all_trainable_params_have_grad(disc)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_vgg_style_defaults_take_srgan_and_esrgan_patches() -> None:
    with torch.device("meta"):  # shapes only: no memory, no compute
        disc = L.VGGStyleDiscriminator()  # SRGAN: 64 -> 512 channels, 4 stride-2 stages
        convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 8 and convs[0].out_channels == 64 and convs[-1].out_channels == 512
        assert disc(torch.rand(2, 3, 96, 96)).shape == (2, 1)
        assert L.VGGStyleDiscriminator(num_stages=5)(torch.rand(2, 3, 128, 128)).shape == (2, 1)


def test_vgg_style_errors() -> None:
    with pytest.raises(ValueError, match=r"expected 3 channels, got shape \(1, 1, 32, 32\)"):
        L.VGGStyleDiscriminator(num_feat=8)(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="norm must be 'batch', 'spectral' or 'none', got 'layer'"):
        L.VGGStyleDiscriminator(norm="layer")  # type: ignore[arg-type]


def test_unet_shapes_spectral_norm_and_backward() -> None:
    disc = L.UNetDiscriminatorSN(num_feat=8)
    for i in range(10):
        conv = getattr(disc, f"conv{i}")
        assert parametrize.is_parametrized(conv, "weight") == (i not in (0, 9)), f"conv{i}"
    assert "conv1.parametrizations.weight.original" in disc.state_dict()
    x = torch.rand(2, 3, 32, 48, requires_grad=True)
    out = disc(x)
    assert out.shape == (2, 1, 32, 48)  # per-pixel logits
    out.mean().backward()
    assert _all_trainable_params_have_grad(disc)
    assert x.grad is not None and x.grad.abs().sum() > 0
    gray = L.UNetDiscriminatorSN(in_channels=1, num_feat=8, skip_connection=False)
    assert gray(torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_unet_spectral_norm_bounds_the_weights() -> None:
    disc = L.UNetDiscriminatorSN(num_feat=8)
    with torch.no_grad():
        for _ in range(3):  # power iterations run in training-mode forward passes
            disc(torch.rand(1, 3, 16, 16))
    for i in range(1, 9):
        w = getattr(disc, f"conv{i}").weight  # the normalised weight
        sigma = torch.linalg.matrix_norm(w.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05), f"conv{i}"


def test_unet_errors() -> None:
    disc = L.UNetDiscriminatorSN(num_feat=8)
    with pytest.raises(ValueError, match=r"multiples of 8, got shape \(1, 3, 20, 16\)"):
        disc(torch.rand(1, 3, 20, 16))
    with pytest.raises(ValueError, match=r"expected 3 channels, got shape \(1, 4, 16, 16\)"):
        disc(torch.rand(1, 4, 16, 16))


@pytest.mark.parametrize(("arch", "layer"), [("vgg19", "relu2_2"), ("resnet18", "layer2")])
def test_feature_discriminator(arch: str, layer: str) -> None:
    backbone = L.create_backbone(arch, layers=[layer])
    disc = L.FeatureDiscriminator(backbone, layer=layer, num_feat=8)
    disc.train()
    assert not backbone.training  # the backbone stays in eval mode
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = disc(x)
    assert out.shape == (2, 1)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator gets a gradient through the backbone
    assert all(p.grad is None for p in backbone.parameters())
    head = [p for p in disc.parameters() if p.requires_grad]
    assert head and all(p.grad is not None for p in head)
    assert disc(torch.rand(2, 1, 32, 32)).shape == (2, 1)  # Y-only generators
    with pytest.raises(ValueError, match="is not extracted by the backbone"):
        L.FeatureDiscriminator(backbone, layer="relu5_4" if arch == "vgg19" else "layer4")


def test_build_discriminator() -> None:
    vgg = L.build_discriminator({"type": "vgg", "num_feat": 8, "norm": "none"}, in_channels=1)
    assert isinstance(vgg, L.VGGStyleDiscriminator) and vgg.in_channels == 1
    with torch.device("meta"):
        unet = L.build_discriminator("unet", in_channels=3)
    assert isinstance(unet, L.UNetDiscriminatorSN) and unet.conv0.out_channels == 64
    explicit = L.build_discriminator({"type": "unet", "in_channels": 3, "num_feat": 8}, in_channels=1)
    assert explicit.in_channels == 3  # the table wins over the generator's channel count


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "patch"}, r"^discriminator\.type: unknown discriminator 'patch'"),
        ({"type": "unet", "nf": 8}, r"^discriminator\.nf: unknown key for discriminator 'unet'"),
        ({"type": "vgg", "num_feat": "8"}, r"^discriminator\.num_feat: expected int, got str"),
        ({"type": "vgg", "num_feat": 0}, r"^discriminator\.num_feat: must be >= 1"),
        ({"type": "unet", "skip_connection": 1}, r"^discriminator\.skip_connection: expected bool, got int"),
        ({"type": "vgg", "norm": "group"}, r"^discriminator: norm must be"),
        ({"type": "feature", "backbone": "vgg16"}, r"^discriminator\.backbone: unknown backbone 'vgg16'"),
        ({"type": "feature", "layer": "layer9"}, r"^discriminator\.layer: unknown vgg19 layer 'layer9'"),
        (["unet"], r"^discriminator: expected a table"),
    ],
)
def test_build_discriminator_errors(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        L.build_discriminator(spec)


def test_build_feature_discriminator_loads_backbone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save(fake_state("resnet18"), tmp_path / "r18.pth")
    spec = {"type": "feature", "backbone": "resnet18", "layer": "layer1", "num_feat": 8}
    disc = L.build_discriminator(spec, backbone_weights=tmp_path / "r18.pth")
    assert isinstance(disc, L.FeatureDiscriminator)
    assert float(disc.backbone.conv1.weight[0, 0, 0, 0]) == pytest.approx(0.001)  # the file's first constant
    assert disc(torch.rand(2, 3, 16, 16)).shape == (2, 1)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match=r"vgg19-dcbb9e9d\.pth"):
        L.build_discriminator({"type": "feature"})
