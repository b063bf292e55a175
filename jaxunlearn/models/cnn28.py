"""A CNN for 28x28 grey images (Fashion-MNIST, MNIST) that memorises its
training set and trains in minutes on a CPU.

Unlearning is only measurable on a model that knows its training samples
individually: the papers' ResNets reach train accuracy 1.0 on CIFAR at a
test accuracy well below it, so a loss-based membership attack separates
members from non-members. This model goes part of the way within a
10-minute pretraining on 2 CPU cores: with ``configs/fashion_mnist.py``,
train 0.990 / test 0.922 on Fashion-MNIST and a train-vs-test loss
threshold attack of 0.540 (seed 0), while ``small_cnn`` (built for 8x8)
keeps its 32- and 64-channel convolutions at full 28x28 resolution and
trains 6-8 times slower per image. Measured: benchmarks/results/cnn28.md.

Shape, and why:

- conv(c1) at 28x28, then a 2x2 max-pool: only the first, narrow
  convolution runs at full resolution, which is where ``small_cnn`` spends
  its time (downsampling early is most of the speed-up);
- conv(c2) at 14x14, pool; conv(c3) at 7x7, pool to 3x3;
- flatten (not global average pooling) -> Dense(hidden) -> logits: the
  flattened 3x3 map keeps where a feature is, and the dense layer is where
  the capacity to memorise individual samples lives (a GAP head on 128
  channels generalises better and memorises less). ``hidden`` is the
  penultimate ``features`` that DLFD and the evaluators use.

Every convolution is followed by BatchNorm and ReLU, so the BatchNorm
semantics of the methods matter here as they do for ResNets.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import (conv_bn_relu, float32_outputs, max_pool,
                                      normalize)


@MODELS.register("cnn28")
class CNN28(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  widths: Sequence[int] = (16, 32, 64)
  hidden: int = 512
  last_pool: bool = True  # False: flatten the 7x7 map (more dense capacity)
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    x = normalize(images, self.mean, self.std)
    for i, width in enumerate(self.widths):
      x = conv_bn_relu(x, width, i, train=train, mask=mask,
                       bn_axis_name=self.bn_axis_name, dtype=self.dtype)
      if i < len(self.widths) - 1 or self.last_pool:
        x = max_pool(x, (2, 2))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc")(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)
