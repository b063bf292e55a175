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
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn

from jaxunlearn.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def get_model(name: str, *, num_classes: int, mean: Sequence[float],
              std: Sequence[float], **kwargs: Any) -> nn.Module:
  """Builds the registered model ``name`` for a dataset."""
  return MODELS.get(name)(num_classes=num_classes, mean=tuple(mean),
                          std=tuple(std), **kwargs)


def _import_all() -> None:
  """Imports every module of this package; each registers its model(s)."""
  import importlib
  import pkgutil
  for info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{info.name}")


_import_all()
