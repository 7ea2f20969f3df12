"""LPIPS: sruscale's network vs an independent test-side LPIPS on a random backbone saved by the test.

The ``lpips`` package imports torchvision, which is not a dependency here, so it cannot be run;
its v0.1 head files are loaded directly, and the reference below re-implements ``lpips.LPIPS``
(v0.1, ``lpips/pretrained_networks.py`` + ``lpips/lpips.py``) with plain ``nn.Sequential`` trunks
in torchvision's layout.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from sruscale.errors import CheckpointError
from sruscale.metrics.lpips import LPIPS, lpips, lpips_net


def _heads_file(net: str) -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the lpips package is not installed (.ci/run installs it with --no-deps)")
    return Path(spec.submodule_search_locations[0]) / "weights" / "v0.1" / f"{net}.pth"


def _alexnet() -> tuple[nn.Sequential, list[int]]:
    f = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    return f, [1, 4, 7, 9, 11]  # lpips' slice ends: relu1..relu5


def _vgg16() -> tuple[nn.Sequential, list[int]]:
    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU()]
            c = int(v)
    return nn.Sequential(*layers), [3, 8, 15, 22, 29]


def _reference(trunk: nn.Sequential, taps: list[int], heads: dict, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """lpips.LPIPS(net=..., version='0.1').forward(x0 * 2 - 1, x1 * 2 - 1), written out."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        h, out = (x * 2 - 1 - shift) / scale, []
        for i, m in enumerate(trunk):
            h = m(h)
            if i in taps:
                out.append(h)
        return out

    total = 0
    for k, (a, b) in enumerate(zip(feats(x0), feats(x1), strict=True)):
        na = a / (torch.sqrt(torch.sum(a**2, dim=1, keepdim=True)) + 1e-10)
        nb = b / (torch.sqrt(torch.sum(b**2, dim=1, keepdim=True)) + 1e-10)
        d = nn.functional.conv2d((na - nb) ** 2, heads[f"lin{k}.model.1.weight"])
        total = total + d.mean(dim=[2, 3], keepdim=True)
    return total.view(-1)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_reference_on_random_backbone(net: str, tmp_path: Path) -> None:
    heads_file = _heads_file(net)
    heads = torch.load(heads_file, map_location="cpu", weights_only=True)
    torch.manual_seed(0)
    trunk, taps = _alexnet() if net == "alex" else _vgg16()
    for m in trunk:
        if isinstance(m, nn.Conv2d):  # larger than default init, so deep layers are not ~0
            nn.init.normal_(m.weight, std=(2.0 / (m.in_channels * m.kernel_size[0] ** 2)) ** 0.5)
            nn.init.uniform_(m.bias, -0.1, 0.1)
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    backbone = tmp_path / ("alexnet-owt-7be5be79.pth" if net == "alex" else "vgg16-397923af.pth")
    torch.save(state, backbone)
    x0, x1 = torch.rand(2, 3, 64, 72), torch.rand(2, 3, 64, 72)
    x1[0] = x0[0] * 0.9 + 0.05
    ours = lpips(x0, x1, net=net, backbone_weights=backbone, heads=heads_file)  # type: ignore[arg-type]
    with torch.no_grad():
        ref = _reference(trunk.eval(), taps, heads, x0, x1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours[0] < ours[1]  # the slightly changed image is closer than an unrelated one
    assert float(lpips(x0, x0, net=net, backbone_weights=backbone, heads=heads_file)[0]) == 0.0  # type: ignore[arg-type]
    module = LPIPS(net=net, backbone_weights=backbone, heads=heads_file, reduction="none")  # type: ignore[arg-type]
    torch.testing.assert_close(module(x0, x1), ours)


def test_gradients_flow_to_input(tmp_path: Path) -> None:
    heads_file = _heads_file("alex")
    trunk, _ = _alexnet()
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, tmp_path / "a.pth")
    model = lpips_net("alex", backbone_weights=tmp_path / "a.pth", heads=heads_file)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    model(x, torch.rand(1, 3, 64, 64)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in model.parameters())


def test_missing_files_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    heads = tmp_path / "alex.pth"
    torch.save(
        {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}, heads
    )
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth") as info:
        lpips_net("alex", heads=heads)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError, match="LPIPS linear heads not found"):
        lpips_net("alex", heads=tmp_path / "none.pth")
    trunk, _ = _alexnet()
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, tmp_path / "a.pth")
    torch.save({"lin0.model.1.weight": torch.rand(1, 64, 1, 1)}, tmp_path / "short.pth")
    with pytest.raises(CheckpointError, match=r"expected lin1.model.1.weight of shape \(1, 192, 1, 1\), got missing"):
        lpips_net("alex", backbone_weights=tmp_path / "a.pth", heads=tmp_path / "short.pth")
