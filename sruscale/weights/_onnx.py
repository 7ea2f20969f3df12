"""ONNX Runtime backend for CPU inference: same outputs as PyTorch (within 1/255), faster.

Measured on the 2-core development machine (``benchmarks/upscale.py``): FSRCNN x2 on a
2048x2048 input runs 2.6x faster in ONNX Runtime than in PyTorch (PyTorch's CPU transposed
convolution is slow), FSRCNN x4 2.0x. The model's folded inference graph
(:meth:`SRModel.for_inference`) is exported once per weights, channel count and exporter
(torch, onnx, sruscale versions: :func:`cache_key`) to a cache folder (``$SRUSCALE_CACHE_DIR``,
else ``$XDG_CACHE_HOME/sruscale`` or ``~/.cache/sruscale``) and reused while its record
(``<graph>.onnx.json``: the key and the graph's sha256) vouches for it; a damaged or mismatched
graph is exported again with a warning. Needs the optional extra: ``pip install 'sruscale[onnx]'``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._fs import atomic_write, write_text_atomic
from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..models import SRModel
from ..models.export import export_onnx

__all__ = ["OnnxRuntimeModel", "cache_dir", "cache_key"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where exported graphs are cached."""
    env = os.environ.get("SRUSCALE_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sruscale"


def _threads() -> int:
    return max(1, torch.get_num_threads())


def cache_key(model: SRModel, channels: int) -> dict[str, Any]:
    """What an exported graph depends on: architecture, scale, channels, the weights' sha256
    (:func:`sruscale.upscaling.model_digest`), the exporter (torch, onnx, sruscale versions) and the
    source of the model's classes (a changed forward between two releases exports anew)."""
    import onnx

    from ..upscaling import model_digest

    return {
        "arch": model.name, "scale": model.scale, "channels": channels, "weights_sha256": model_digest(model),
        "torch": torch.__version__, "onnx": onnx.__version__, "sruscale": __version__,
        "code": _code_digest(_source_files(type(model))),
    }  # fmt: skip


def _source_files(cls: type) -> tuple[str, ...]:
    """The source files of ``cls``'s sruscale classes and of the shared model blocks."""
    import inspect

    from ..models import blocks

    files = {inspect.getfile(c) for c in cls.__mro__ if c.__module__.startswith("sruscale.")} | {blocks.__file__}
    return tuple(sorted(files))


@functools.cache
def _code_digest(files: tuple[str, ...]) -> str:
    """sha256 of ``files``' bytes (first 16 hex digits)."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(Path(f).read_bytes())
    return digest.hexdigest()[:16]


def _load_error(model: SRModel, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"--backend onnxruntime: the graph exported from {model.name} x{model.scale} does not load "
        f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    )


def _cached_graph(model: SRModel, channels: int, folder: Path) -> tuple[bytes, Path | None]:
    """The ONNX graph of ``model`` on ``channels`` channels: from the cache when its record
    (``<graph>.json``: the key and the graph's sha256) vouches for it, else exported anew.

    A cached graph that is damaged (truncated, edited), lacks its record, or was made for other
    weights or another exporter is exported again with a one-line warning. The graph is returned
    as the bytes that were checked, so a file replaced meanwhile is never what runs.

    Returns:
        ``(graph, the cache file it was read from)``; None when it was exported just now.
    """
    key = cache_key(model, channels)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = folder / f"{model.name}-x{model.scale}-c{channels}-{digest}.onnx"
    record = path.with_name(path.name + ".json")
    if path.exists() or record.exists():
        graph, problem = _read_checked(path, record, key)
        if graph is not None:
            return graph, path
        log.warning("ONNX cache: %s %s; exporting it again", path, problem)
    with atomic_write(path) as tmp:
        export_onnx(model.cpu().eval(), tmp, channels=channels)
        graph = tmp.read_bytes()
    text = json.dumps({"key": key, "sha256": hashlib.sha256(graph).hexdigest(), "size": len(graph)}, sort_keys=True)
    write_text_atomic(record, text + "\n")  # after the graph: a graph without its record is never trusted
    return graph, None


def _read_checked(path: Path, record: Path, key: dict[str, Any]) -> tuple[bytes | None, str]:
    """``(graph, "")`` when ``record`` vouches for ``path``, else ``(None, what is wrong)``."""
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
        want, size = str(meta["sha256"]), int(meta["size"])
        made_for = meta["key"]
    except FileNotFoundError:
        return None, "has no checksum record"
    except (OSError, ValueError, KeyError, TypeError):
        return None, "has a damaged checksum record"
    if made_for != key:
        changed = sorted(k for k in key if not isinstance(made_for, dict) or made_for.get(k) != key[k])
        return None, f"was made for other {', '.join(changed) or 'settings'}"
    try:
        if path.stat().st_size != size:
            return None, f"is damaged ({path.stat().st_size} bytes, expected {size})"
        graph = path.read_bytes()
    except FileNotFoundError:
        return None, "is missing"
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if hashlib.sha256(graph).hexdigest() != want:
        return None, "is damaged (checksum mismatch)"
    return graph, ""


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
        self.breakdowns = 0

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

        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        graph, cached = _cached_graph(self.source, channels, self._folder)
        try:
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            if cached is None:  # exported just now: another export would fail the same way
                raise _load_error(self.source, exc) from None
            log.warning("ONNX cache: %s does not load (%s); exporting it again", cached, type(exc).__name__)
            cached.unlink(missing_ok=True)
            graph, _ = _cached_graph(self.source, channels, self._folder)
            try:
                session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            except Exception as again:  # noqa: BLE001 - as above
                raise _load_error(self.source, again) from None
        self._sessions[channels] = session
        return session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ConfigError(f"--backend onnxruntime runs on the CPU; got a tensor on {x.device}")
        c = x.shape[1]
        session = self._session(c)
        arr = x.detach().to(torch.float32).contiguous().numpy()
        (y,) = session.run(None, {"input": arr})
        out = torch.from_numpy(np.ascontiguousarray(y))
        if callable(getattr(self.source, "take_breakdowns", None)):  # a network that can break down, counted alike
            from ._ncnn import breakdown_pixels

            self.breakdowns += breakdown_pixels(out)
        return out.to(x.dtype)

    def take_breakdowns(self) -> int:
        """As the wrapped model's (``NcnnModel.take_breakdowns``): pixels far outside [0, 1] since the last call."""
        n, self.breakdowns = self.breakdowns, 0
        return n

    def forward_native(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)
