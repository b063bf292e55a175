"""A small U-Net for semantic segmentation (synthetic shapes, small VOC crops)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import (BatchNorm, bn_mask, float32_outputs,
                                      max_pool, normalize)


class ConvBN(nn.Module):
  """3x3 conv (no bias) -> BatchNorm (padding mask aware) -> ReLU."""
  features: int
  train: bool
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None):
    x = nn.Conv(self.features, (3, 3), use_bias=False, dtype=self.dtype,
                name="conv")(x)
    x = BatchNorm(use_running_average=not self.train, axis_name=self.bn_axis_name,
                  name="bn")(x, mask=bn_mask(mask, x.ndim))
    return nn.relu(x)


@MODELS.register("small_unet")
class SmallUNet(nn.Module):
  """Encoder: per level two ConvBN, then 2x2 max-pool; bottleneck ConvBN x2;
  decoder: nearest 2x upsampling, concatenation with the skip, two ConvBN;
  a 1x1 conv gives per-pixel logits.

  Returns ``(logits [B,H,W,C], features [B,H,W,widths[0]])`` (the last
  decoder activations). H and W must be divisible by ``2**(len(widths)-1)``.
  """
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  widths: Sequence[int] = (16, 32, 64)
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    block = lambda w, name: ConvBN(w, train, self.bn_axis_name, self.dtype,
                                   name=name)
    x = normalize(images, self.mean, self.std)
    skips = []
    for i, width in enumerate(self.widths[:-1]):
      x = block(width, f"down{i}a")(x, mask)
      x = block(width, f"down{i}b")(x, mask)
      skips.append(x)
      x = max_pool(x, (2, 2))
    x = block(self.widths[-1], "bottom_a")(x, mask)
    x = block(self.widths[-1], "bottom_b")(x, mask)
    for i in reversed(range(len(self.widths) - 1)):
      skip = skips[i]
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, skip.shape[1], skip.shape[2], c), "nearest")
      x = jnp.concatenate([x, skip], axis=-1)
      x = block(self.widths[i], f"up{i}a")(x, mask)
      x = block(self.widths[i], f"up{i}b")(x, mask)
    features = x
    logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                     name="head")(features)
    return float32_outputs(logits, features)
