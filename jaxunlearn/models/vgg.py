"""VGG16 with BatchNorm (torchvision ``vgg16_bn``).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015. Thirteen 3x3 convolutions (with bias) each followed
by BatchNorm and ReLU, five 2x2 max-pools.

``head="imagenet"`` (torchvision): adaptive average pool to 7x7, then
FC 25088->4096, ReLU, dropout, FC 4096->4096, ReLU, dropout, FC 4096->C;
138,365,992 parameters at 1000 classes. The features are the second 4096-d
activation. ``head="cifar"``: global average pool to 512-d features and one
FC (the common CIFAR VGG16-bn).

Dropout (torchvision: 0.5) is off by default because the shared training
loop passes no dropout PRNG; with ``dropout_rate > 0`` call the model with
``rngs={"dropout": key}`` in training mode.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import (BatchNorm, bn_mask, float32_outputs,
                                      max_pool, normalize)

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M")


def adaptive_pool_matrix(size_in: int, size_out: int) -> np.ndarray:
  """[out, in] averaging weights of torch's AdaptiveAvgPool over one axis:
  output i averages inputs floor(i*in/out) .. ceil((i+1)*in/out) - 1."""
  weights = np.zeros((size_out, size_in), np.float32)
  for i in range(size_out):
    start = (i * size_in) // size_out
    end = -((-(i + 1) * size_in) // size_out)
    weights[i, start:end] = 1.0 / (end - start)
  return weights


def adaptive_avg_pool(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """torch.nn.AdaptiveAvgPool2d for NHWC inputs (also upsamples 1x1 -> 7x7)."""
  rows = jnp.asarray(adaptive_pool_matrix(x.shape[1], size[0]), x.dtype)
  cols = jnp.asarray(adaptive_pool_matrix(x.shape[2], size[1]), x.dtype)
  return jnp.einsum("oh,bhwc,pw->bopc", rows, x, cols)


@MODELS.register("vgg16_bn")
class VGG16BN(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  head: str = "imagenet"
  layers: Sequence = VGG16
  hidden: int = 4096
  dropout_rate: float = 0.0
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             axis_name=self.bn_axis_name,
                             unbiased_running_var=self.torch_bn)
    x = normalize(images, self.mean, self.std)
    conv = 0
    for layer in self.layers:
      if layer == "M":
        x = max_pool(x, (2, 2))
        continue
      x = nn.Conv(layer, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                  name=f"conv{conv}")(x)
      x = nn.relu(norm(name=f"bn{conv}")(x, mask=bn_mask(mask, 4)))
      conv += 1
    if self.head == "cifar":
      features = jnp.mean(x, axis=(1, 2))
    elif self.head == "imagenet":
      x = adaptive_avg_pool(x, (7, 7)).reshape(x.shape[0], -1)
      dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
      x = dropout(nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x)))
      features = dropout(nn.relu(nn.Dense(self.hidden, dtype=self.dtype,
                                          name="fc2")(x)))
    else:
      raise ValueError(f"unknown VGG head {self.head!r}; use 'imagenet' or 'cifar'")
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)
