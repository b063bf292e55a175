"""IResNet face-recognition backbones (ArcFace / insightface ``iresnet``).

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition", CVPR 2019; the "improved" pre-activation residual unit of Duta
et al. (IResNet), as in insightface's ``arcface_torch/backbones/iresnet.py``:

- stem: 3x3 conv (64, stride 1) -> BN -> PReLU (per-channel slope, init 0.25);
- unit: BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (stride) -> BN, plus an
  identity or 1x1-conv + BN shortcut; every stage starts with stride 2;
- output: BN -> flatten -> FC to a 512-d embedding -> BatchNorm1d whose scale
  is fixed at 1. The embedding is the returned ``features``.

112x112 inputs give a 7x7 final map as in ArcFace; the FC size follows the
input. The classifier on top of the embedding is ``head="linear"`` (a plain
FC, what unlearning evaluates) or ``head="cosine"``: ``s * cos(theta)``
between the normalised embedding and normalised class weights (ArcFace's
logits without the margin, s = 64). ``num_classes=0`` builds the backbone
alone (logits = features), the module insightface trains and ships.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import BatchNorm, bn_mask, float32_outputs, normalize


class PReLU(nn.Module):
  """max(0, x) + a * min(0, x) with one learned slope per channel."""

  @nn.compact
  def __call__(self, x):
    slope = self.param("negative_slope", nn.initializers.constant(0.25),
                       (x.shape[-1],), jnp.float32)
    return jnp.where(x >= 0, x, slope.astype(x.dtype) * x)


class IBasicBlock(nn.Module):
  filters: int
  strides: int
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool, mask=None):
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             axis_name=self.bn_axis_name,
                             unbiased_running_var=self.torch_bn)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    m = bn_mask(mask, 4)
    y = norm(name="bn1")(x, mask=m)
    y = conv(self.filters, (3, 3), padding=((1, 1), (1, 1)), name="conv1")(y)
    y = PReLU(name="prelu")(norm(name="bn2")(y, mask=m))
    y = conv(self.filters, (3, 3), (self.strides, self.strides),
             padding=((1, 1), (1, 1)), name="conv2")(y)
    y = norm(name="bn3")(y, mask=m)
    if x.shape != y.shape:
      x = conv(self.filters, (1, 1), (self.strides, self.strides),
               padding="VALID", name="shortcut_conv")(x)
      x = norm(name="shortcut_bn")(x, mask=m)
    return x + y


class IResNet(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  stage_sizes: Sequence[int] = (3, 4, 14, 3)
  embedding_dim: int = 512
  head: str = "linear"
  scale: float = 64.0
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             axis_name=self.bn_axis_name,
                             unbiased_running_var=self.torch_bn)
    x = normalize(images, self.mean, self.std)
    x = nn.Conv(64, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                dtype=self.dtype, name="stem_conv")(x)
    x = PReLU(name="stem_prelu")(norm(name="stem_bn")(x, mask=bn_mask(mask, 4)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = IBasicBlock(64 * 2**stage, 2 if block == 0 else 1,
                        bn_axis_name=self.bn_axis_name, torch_bn=self.torch_bn,
                        dtype=self.dtype,
                        name=f"stage{stage + 1}_block{block}")(x, train, mask)
    x = norm(name="out_bn")(x, mask=bn_mask(mask, 4))
    x = nn.Dense(self.embedding_dim, dtype=self.dtype,
                 name="fc")(x.reshape(x.shape[0], -1))
    features = norm(use_scale=False, name="embedding_bn")(x, mask=bn_mask(mask, 2))
    if not self.num_classes:  # the backbone alone, as insightface ships it
      return features, features
    if self.head == "linear":
      logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    elif self.head == "cosine":
      # float32: s * cos θ with s = 64 magnifies bfloat16's cosine error
      # (~4e-3) to a quarter of a logit, and the margin losses act on cos θ.
      weights = self.param("head", nn.initializers.normal(0.01),
                           (self.embedding_dim, self.num_classes))
      unit = lambda v, axis: v / jnp.maximum(
          jnp.linalg.norm(v, axis=axis, keepdims=True), 1e-12)
      logits = self.scale * unit(features.astype(jnp.float32), -1) @ unit(weights, 0)
    else:
      raise ValueError(f"unknown IResNet head {self.head!r}; use linear or cosine")
    return float32_outputs(logits, features)


@MODELS.register("iresnet18")
class IResNet18(IResNet):
  stage_sizes: Sequence[int] = (2, 2, 2, 2)


@MODELS.register("iresnet50")
class IResNet50(IResNet):
  stage_sizes: Sequence[int] = (3, 4, 14, 3)
