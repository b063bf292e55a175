"""Flax models, looked up by name.

Every model is a ``flax.linen.Module`` called as
``model.apply(variables, images, train=..., mask=...)`` and returning
``(logits, features)``: the class logits and the penultimate features that
feature-level methods (DLFD) and evaluators need. Images come in raw [0, 1]
pixel space; each model normalises with the dataset's mean/std as its first
operation, so attacks (PGD, FGSM) work in pixel space as the papers do.

``mask`` (shape [B], 1 = real example, 0 = padding) keeps padded examples out
of the BatchNorm batch statistics, so every batch can be padded to one static
shape without changing the numbers.

``dtype`` (``config.model.dtype``: "float32" or "bfloat16") is the dtype of
the computation: convolutions, matmuls and activations. Parameters stay
float32 (so do the gradients and the optimiser state), BatchNorm statistics
and LayerNorm reductions are float32, and every model returns float32
logits and features: losses, softmax, KL/OT and metrics never see bfloat16.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxunlearn.errors import UserError
from jaxunlearn.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(dtype: Any = "float32") -> Any:
  """The computation dtype ``config.model.dtype`` names (a name or a dtype)."""
  name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
  if name not in DTYPES:
    raise UserError(f"unknown model.dtype {name!r}; use one of: "
                    f"{', '.join(DTYPES)}")
  return DTYPES[name]


def get_model(name: str, *, num_classes: int, mean: Sequence[float],
              std: Sequence[float], dtype: Any = "float32",
              **kwargs: Any) -> nn.Module:
  """Builds the registered model ``name`` for a dataset, computing in
  ``dtype`` (the one place a config's dtype reaches the models)."""
  return MODELS.get(name)(num_classes=num_classes, mean=tuple(mean),
                          std=tuple(std), dtype=compute_dtype(dtype), **kwargs)


def for_axis(model: nn.Module, axis_name: Optional[str]) -> nn.Module:
  """The model with cross-device BatchNorm statistics when under shard_map."""
  return model if axis_name is None else model.clone(bn_axis_name=axis_name)


@functools.lru_cache(maxsize=8)
def _jitted_init(model: nn.Module, image_shape: tuple):
  return jax.jit(lambda key: model.init(key, jnp.zeros((1, *image_shape))))


def init_variables(model: nn.Module, image_shape: Sequence[int],
                   key: jax.Array) -> dict:
  """Fresh variables of ``model`` from ``key``, initialised on a zero batch
  of ``image_shape`` images (compiled once per model and shape)."""
  return dict(_jitted_init(model, tuple(int(d) for d in image_shape))(key))


def _import_all() -> None:
  """Imports every module of this package; each registers its model(s)."""
  import importlib
  import pkgutil
  for info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{info.name}")


_import_all()
