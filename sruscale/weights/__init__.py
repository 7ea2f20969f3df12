"""Model files: from a name or a file to a ready :class:`~sruscale.models.SRModel`, and back.

One public way in and one way out: :func:`load_model` (a bundled name, alias, family,
architecture or any weights file sruscale reads) and :func:`save_model`. :func:`choose_model`
is the one rule for which model serves a request when none is named. Everything else is
private to this package:

* ``_files``: reading safetensors (with sruscale metadata) and restricted pickles; imports no
  architecture, so metrics and losses read their backbones' state dicts through it;
* ``_checkpoint``: building a registered architecture from a file (bounds, shapes, finiteness);
* ``_manifest``: the bundled weights manifest, cards and aliases (no architecture imported);
* ``_describe``: the rows of ``sruscale models``;
* ``_resolve``: the request -> file -> model path used by every command;
* ``_authors``: the EDSR/RCAN authors' released checkpoints;
* ``_community``: community model files through spandrel (the ``community`` extra);
* ``_onnx``: the ONNX Runtime backend.

The names below are imported on first access, so ``import sruscale.weights._files`` does
not load the model zoo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._checkpoint import save_model
    from ._describe import ModelInfo, describe_models
    from ._manifest import WeightsEntry, bundled_models, list_weights, weights_dir
    from ._resolve import DEFAULT_DENOISE, DEFAULT_SCALE, ModelChoice, choose_model, load_model, model_scale

#: public name -> private module that defines it
_EXPORTS = {
    "load_model": "_resolve",
    "model_scale": "_resolve",
    "choose_model": "_resolve",
    "ModelChoice": "_resolve",
    "DEFAULT_SCALE": "_resolve",
    "DEFAULT_DENOISE": "_resolve",
    "save_model": "_checkpoint",
    "WeightsEntry": "_manifest",
    "ModelInfo": "_describe",
    "describe_models": "_describe",
    "list_weights": "_manifest",
    "bundled_models": "_manifest",
    "weights_dir": "_manifest",
}

__all__ = [
    "DEFAULT_DENOISE",
    "DEFAULT_SCALE",
    "ModelChoice",
    "ModelInfo",
    "WeightsEntry",
    "bundled_models",
    "choose_model",
    "describe_models",
    "list_weights",
    "load_model",
    "model_scale",
    "save_model",
    "weights_dir",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
