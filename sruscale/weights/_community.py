"""Community model files (ESRGAN, Real-ESRGAN Compact, SwinIR, HAT, DAT, OmniSR, SPAN, ...) via spandrel.

`spandrel <https://github.com/chaiNNer-org/spandrel>`_ detects an architecture and its
hyperparameters from a state dict. sruscale reads the file itself (safetensors, or
``torch.load(weights_only=True)``: :func:`sruscale.weights._files.read_weights`; spandrel's own
file loader is never used), canonicalises the state dict as spandrel does, lets spandrel
build the network and wraps it in a :class:`CommunityModel`: an :class:`~sruscale.models.SRModel`
with the file's scale, channels and size requirements, so tiling, alpha, 16-bit, colour
profiles, skip-existing and progress work as for sruscale's own models.

Needs the optional extra ``pip install "sruscale[community]"`` (spandrel imports torchvision,
which must be the build made for the installed torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch

from ..errors import CheckpointError
from ..models import SRModel
from ._files import check_finite

__all__ = ["EXTRA_HINT", "CommunityInfo", "CommunityModel", "describe", "load_community"]

#: how to get spandrel, for messages
EXTRA_HINT = 'pip install "sruscale[community]"'

#: Tile context (receptive-field radius, input px) for architectures that state none, which is
#: all of spandrel's: a generous 32, HAT's tiled-inference ``tile_pad`` and SwinIR's test-script
#: ``tile_overlap`` (both 32) and three times Real-ESRGAN's ``tile_pad`` of 10. The default overlap
#: is twice this (64 px); tiles of a plain chain of up to 32 3x3 convolutions then match the
#: untiled result exactly, and deeper networks' far context weighs little.
_RECEPTIVE_FIELD = 32
#: Factor on that for models whose spandrel descriptor discourages tiling (global context:
#: SwinIR, SCUNet) or tiles internally: tiles see four times as much of the image around them.
_GLOBAL_CONTEXT = 4
#: spandrel purposes sruscale runs: super-resolution and same-size restoration (scale 1).
#: FaceSR models expect aligned face crops of a fixed size, inpainting models a mask.
_PURPOSES = ("SR", "Restoration")


@dataclass(frozen=True)
class CommunityInfo:
    """What spandrel detected in a community model file."""

    #: spandrel's architecture name ("ESRGAN", "RealESRGAN Compact") and ID ("ESRGAN", "Compact")
    architecture: str
    arch_id: str
    scale: int
    #: spandrel's purpose: "SR" or "Restoration"
    purpose: str
    #: spandrel's tags for the model size, e.g. ("64nf", "23nb")
    tags: tuple[str, ...]
    #: spandrel's tiling advice: "supported", "discouraged" or "internal"
    tiling: str
    #: the weights file
    source: str
    #: spandrel's version
    spandrel_version: str


class CommunityModel(SRModel):
    """A network spandrel built from a community model file, under the :class:`SRModel` contract.

    ``(B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, sH, sW)`` in ``[0, 1]``. Each image of a batch goes
    through spandrel's descriptor on its own (its call functions are written for one image);
    inputs arrive already padded to :attr:`multiple_of` / :attr:`minimum` by
    :func:`sruscale.tiling.run_model`, so spandrel pads only for a square-input requirement,
    which sruscale's size attributes cannot express.

    Build it with :func:`load_community`: its class attributes (``name`` = spandrel's architecture
    ID, ``scales``, ``multiple_of``, ``minimum``, ``receptive_field``, ``half_safe``) are set on a
    subclass made for the file. It is not in the model registry: it cannot be built from
    hyperparameters.
    """

    name: ClassVar[str] = "community"
    #: spandrel's super-resolution networks run at input resolution and upsample at the end
    framework = "post"

    info: CommunityInfo

    def __init__(self, descriptor: Any, *, info: CommunityInfo) -> None:
        super().__init__(scale=int(descriptor.scale), in_channels=int(descriptor.input_channels))
        self.net: torch.nn.Module = descriptor.model  # a submodule: .to(), state_dict() and the digest see it
        self._descriptor = descriptor  # not a Module: holds the same network and spandrel's call function
        self.info = info

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._descriptor(x[i : i + 1]) for i in range(x.shape[0])])


#: what a file without sruscale metadata may also be
_BARE_HINT = "a bare state dict needs an architecture and a scale (--model ARCH --scale S)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _spandrel(source: str) -> Any:
    """The spandrel module; a missing or broken install is a one-line :class:`CheckpointError`."""
    try:
        import spandrel
    except ImportError as exc:
        why = "" if exc.name in (None, "spandrel") else f" (it does not import: {exc.msg})"
        raise CheckpointError(
            f"{source}: no sruscale metadata; {_BARE_HINT}; community model files (ESRGAN, SwinIR, ...) need "
            f"spandrel{why}: {EXTRA_HINT} (spandrel needs a torchvision matching your torch)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch fails at import with others
        raise CheckpointError(
            f"{source}: spandrel is installed but does not import ({_first_line(exc)}); "
            f"it needs a torchvision matching your torch {torch.__version__}"
        ) from None
    return spandrel


def load_community(state: dict[str, torch.Tensor], *, source: str, scale: int | None = None) -> CommunityModel:
    """Build the model a community state dict holds (eval mode, on the CPU).

    Args:
        state: a state dict read by :func:`sruscale.weights._files.read_weights` (never by spandrel).
        source: the file, for messages.
        scale: expected scale, or None to take the file's.

    Returns:
        A :class:`CommunityModel`; its :attr:`~CommunityModel.info` says what was detected.

    Raises:
        CheckpointError: spandrel missing, an architecture spandrel does not know, a model that is
            not an image-to-image SR/restoration model, channels other than 1 -> 1 or 3 -> 3, a
            scale other than ``scale``, or NaN/Inf weights.

    Example:
        >>> model = load_community(read_weights("4x-Something.pth").state, source="4x-Something.pth")
        >>> describe(model)
        '4x-Something.pth: ESRGAN x4 (64nf, 23nb), detected by spandrel 0.4.2'
    """
    spandrel = _spandrel(source)
    state = spandrel.canonicalize_state_dict(state)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: expected a state dict (names -> tensors)")
    check_finite(state, source=source)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{source}: no sruscale metadata, and not an architecture spandrel {spandrel.__version__} knows; "
            f"{_BARE_HINT}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a detected architecture whose tensors do not fit it
        raise CheckpointError(
            f"{source}: no sruscale metadata, and spandrel cannot load it ({_first_line(exc)}); {_BARE_HINT}"
        ) from None
    arch = descriptor.architecture
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in _PURPOSES:
        raise CheckpointError(
            f"{source}: {arch.name} is a {descriptor.purpose} model; sruscale runs image-to-image "
            "super-resolution and restoration models"
        )
    cin, cout, s = int(descriptor.input_channels), int(descriptor.output_channels), int(descriptor.scale)
    if cin != cout or cin not in (1, 3):
        raise CheckpointError(
            f"{source}: {arch.name} takes {cin} and returns {cout} channels; sruscale runs models with "
            "1 -> 1 or 3 -> 3 channels"
        )
    if s < 1:
        raise CheckpointError(f"{source}: {arch.name} has scale {s}; expected 1 or more")
    if scale is not None and scale != s:
        raise CheckpointError(f"{source}: expected scale x{scale}, the {arch.name} model in the file is x{s}")
    tiling = descriptor.tiling.name.lower()
    req = descriptor.size_requirements
    attrs = {
        "name": str(arch.id),
        "scales": (s,),
        "multiple_of": max(1, int(req.multiple_of)),
        "minimum": max(1, int(req.minimum)),
        "receptive_field": _RECEPTIVE_FIELD * (1 if tiling == "supported" else _GLOBAL_CONTEXT),
        "half_safe": bool(descriptor.supports_half),
    }
    cls = cast(type[CommunityModel], type(f"Community{arch.id}", (CommunityModel,), attrs))
    info = CommunityInfo(
        architecture=str(arch.name),
        arch_id=str(arch.id),
        scale=s,
        purpose=str(descriptor.purpose),
        tags=tuple(str(t) for t in descriptor.tags),
        tiling=tiling,
        source=source,
        spandrel_version=str(spandrel.__version__),
    )
    return cls(descriptor, info=info).eval()


def describe(model: SRModel) -> str:
    """One line on a community model for the user ("" for any other model).

    Architecture, scale and tags as spandrel reports them, and its tiling advice when it is not
    "supported". spandrel reports no licence; check the model's own page for it.

    Example:
        ``4x-Something.pth: ESRGAN x4 (64nf, 23nb), detected by spandrel 0.4.2``
    """
    if not isinstance(model, CommunityModel):
        return ""
    i = model.info
    tags = f" ({', '.join(i.tags)})" if i.tags else ""
    kind = "" if i.purpose == "SR" else f" {i.purpose.lower()}"
    advice = {
        "discouraged": "; spandrel discourages tiling it: tiles get a wide overlap",
        "internal": "; it tiles internally: tiles get a wide overlap",
    }.get(i.tiling, "")
    return f"{i.source}: {i.architecture}{kind} x{i.scale}{tags}, detected by spandrel {i.spandrel_version}{advice}"
