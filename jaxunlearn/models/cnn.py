"""A small CNN for the embedded 8x8 digits (and other tiny images)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import (conv_bn_relu, float32_outputs, max_pool,
                                      normalize)


@MODELS.register("small_cnn")
class SmallCNN(nn.Module):
  """conv(32)-conv(64)-pool-conv(128)-GAP -> features(128) -> logits.

  Every convolution is followed by BatchNorm and ReLU, so the BatchNorm
  semantics of the methods (training vs inference mode) matter here as they
  do for ResNets.
  """
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  widths: Sequence[int] = (32, 64, 128)
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    x = normalize(images, self.mean, self.std)
    for i, width in enumerate(self.widths):
      x = conv_bn_relu(x, width, i, train=train, mask=mask,
                       bn_axis_name=self.bn_axis_name, dtype=self.dtype)
      if i == 1:
        x = max_pool(x, (2, 2))
    features = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)
