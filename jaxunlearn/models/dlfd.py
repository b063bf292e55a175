"""DLFD's model family: ResNet-18 trunk + 512-256-128-C MLP head (dropout 0.5).

Choi et al., "Distribution-Level Feature Distancing for Machine Unlearning",
AAAI 2025 (arXiv 2409.14747): a randomly initialised ResNet-18 (torchvision,
``stem="imagenet"`` for the 128x128 face images) whose 512-d pooled features
go through Linear(512,256)-ReLU-Dropout(0.5)-Linear(256,128)-ReLU-
Dropout(0.5)-Linear(128,C). Returns (logits, 128-d penultimate features).

Dropout is active only in training mode *and* when a ``"dropout"`` rng is
passed (``model.apply(..., rngs={"dropout": key})``); without one (e.g. the
library's generic training loop) the head is deterministic, so the model
works everywhere without changing ``state.apply_train``. ``torch_bn=True``
updates the BatchNorm running variance with the unbiased batch variance, as
the authors' PyTorch model does (``models.resnet``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import float32_outputs
from jaxunlearn.models.resnet import ResNet18


@MODELS.register("resnet18_mlp")
class ResNet18MLP(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  stem: str = "imagenet"
  width: int = 64
  hidden: Sequence[int] = (256, 128)
  dropout: float = 0.5
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    features, _ = ResNet18(num_classes=0, mean=self.mean, std=self.std,
                           stem=self.stem, width=self.width,
                           bn_axis_name=self.bn_axis_name,
                           torch_bn=self.torch_bn, dtype=self.dtype,
                           name="trunk")(images, train, mask)
    deterministic = not (train and self.has_rng("dropout"))
    x = features
    for i, size in enumerate(self.hidden):
      x = nn.relu(nn.Dense(size, dtype=self.dtype, name=f"fc{i + 1}")(x))
      x = nn.Dropout(self.dropout, deterministic=deterministic)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return float32_outputs(logits, x)
