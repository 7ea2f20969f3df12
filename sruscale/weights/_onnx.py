"""ONNX Runtime backend for CPU inference: same outputs as PyTorch (within 1/255), faster.

Measured on the 2-core development machine (``benchmarks/upscale.py``): FSRCNN x2 on a
2048x2048 input runs 2.6x faster in ONNX Runtime than in PyTorch (PyTorch's CPU transposed
convolution is slow), FSRCNN x4 2.0x. The model's folded inference graph
(:meth:`SRModel.for_inference`) is exported once per weights and channel count to a cache
folder (``$SRUSCALE_CACHE_DIR``, else ``$XDG_CACHE_HOME/sruscale`` or ``~/.cache/sruscale``)
and reused. Needs the optional extra: ``pip install 'sruscale[onnx]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._fs import atomic_write
from ..errors import ConfigError
from ..models import SRModel
from ..models.export import export_onnx

__all__ = ["OnnxRuntimeModel", "cache_dir"]


def cache_dir() -> Path:
    """Where exported graphs are cached."""
    env = os.environ.get("SRUSCALE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sruscale"


def _threads() -> int:
    return max(1, torch.get_num_threads())


class OnnxRuntimeModel(SRModel):
    """An :class:`SRModel` whose forward runs an ONNX Runtime session (CPU, float32).

    Build it with :meth:`from_model`; it keeps the wrapped model's name, scale, size
    requirements and receptive field, so tiling and skip-existing treat it like the original.
    """

    def __init__(self, model: SRModel, *, folder: Path | None = None) -> None:
        super().__init__(scale=model.scale, in_channels=model.in_channels)
        object.__setattr__(self, "_source", model)  # not a submodule: no weights of its own
        self.hparams = dict(model.hparams)
        self._folder = folder if folder is not None else cache_dir() / "onnx"
        self._sessions: dict[int, Any] = {}

    @classmethod
    def from_model(cls, model: SRModel, *, folder: Path | None = None) -> OnnxRuntimeModel:
        """Wrap ``model`` (any registered model on the CPU).

        Raises:
            ConfigError: onnxruntime or onnx is not installed, or the model is not on the CPU.
        """
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ConfigError("--backend onnxruntime needs the optional extra: pip install 'sruscale[onnx]'") from None
        for t in model.parameters():
            if t.device.type != "cpu":
                raise ConfigError(
                    f"--backend onnxruntime runs on the CPU; got a model on {t.device} (use --device cpu)"
                )
            break
        attrs = {
            k: getattr(model, k) for k in ("name", "framework", "scales", "multiple_of", "minimum", "receptive_field")
        }
        sub = type(f"OnnxRuntime{type(model).__name__}", (cls,), {**attrs, "half_safe": False})
        wrapped: OnnxRuntimeModel = sub(model, folder=folder)
        from ..upscaling import _digests, model_digest

        _digests[wrapped] = model_digest(model)  # same weights, same settings record
        return wrapped

    @property
    def source(self) -> SRModel:
        """The PyTorch model this graph was exported from."""
        source: SRModel = self.__dict__["_source"]
        return source

    def _session(self, channels: int) -> Any:
        if channels in self._sessions:
            return self._sessions[channels]
        import onnxruntime as ort

        from ..upscaling import model_digest

        path = self._folder / f"{self.name}-x{self.scale}-c{channels}-{model_digest(self.source)[:16]}.onnx"
        if not path.is_file():
            with atomic_write(path) as tmp:
                export_onnx(self.source.cpu().eval(), tmp, channels=channels)
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._sessions[channels] = session
        return session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ConfigError(f"--backend onnxruntime runs on the CPU; got a tensor on {x.device}")
        c = x.shape[1]
        session = self._session(c)
        arr = x.detach().to(torch.float32).contiguous().numpy()
        (y,) = session.run(None, {"input": arr})
        return torch.from_numpy(np.ascontiguousarray(y)).to(x.dtype)

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)
