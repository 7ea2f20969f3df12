"""Test helper: state dicts in torchvision's exact key layout, small enough to write to disk.

Keys the test wants to check numerically get real random values; every other key gets a
distinct constant stored as a stride-0 view (one float on disk, the right shape), so a
full torchvision-layout file (classifier head included) costs kilobytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sruscale.losses import backbone_layers, create_backbone

# Head shapes of torchvision's classifiers (not built by our extractors).
TORCHVISION_HEADS = {
    "vgg19": {
        "classifier.0.weight": (4096, 25088),
        "classifier.0.bias": (4096,),
        "classifier.3.weight": (4096, 4096),
        "classifier.3.bias": (4096,),
        "classifier.6.weight": (1000, 4096),
        "classifier.6.bias": (1000,),
    },
    "resnet18": {"fc.weight": (1000, 512), "fc.bias": (1000,)},
    "resnet34": {"fc.weight": (1000, 512), "fc.bias": (1000,)},
    "resnet50": {"fc.weight": (1000, 2048), "fc.bias": (1000,)},
}


def full_layout(arch: str) -> dict[str, tuple[int, ...]]:
    """Our full trunk's keys and shapes (built on the meta device) plus torchvision's head."""
    with torch.device("meta"):
        trunk = create_backbone(arch, layers=[backbone_layers(arch)[-1]])
    layout = {k: tuple(v.shape) for k, v in trunk.state_dict().items()}
    return layout | TORCHVISION_HEADS[arch]


def constant(index: int) -> float:
    return 0.001 * (index + 1)


def fake_state(arch: str, *, real: Iterable[str] = (), num_batches_tracked: bool = True) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict: random values for keys in ``real``, per-key constants elsewhere."""
    real = set(real)
    gen = torch.Generator().manual_seed(1)
    state: dict[str, torch.Tensor] = {}
    for i, (key, shape) in enumerate(full_layout(arch).items()):
        if key.endswith("num_batches_tracked"):
            if num_batches_tracked:
                state[key] = torch.tensor(i, dtype=torch.long)
            continue
        if key in real:
            value = torch.rand(shape, generator=gen) * 0.2 - 0.1
            if key.endswith("running_var"):
                value = value.abs() + 0.5
            state[key] = value
        else:
            state[key] = torch.tensor(constant(i)).expand(shape)
    return state
