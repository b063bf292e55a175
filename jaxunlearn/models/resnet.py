"""ResNet-18 (three stems) and ResNet-50, as in torchvision.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; the
bottleneck puts its stride on the 3x3 convolution (torchvision's "v1.5").

- ``stem="cifar"``: 3x3 stride-1 convolution, no max-pool (the common CIFAR
  ResNet-18, as in SalUn, SCRUB and most unlearning code).
- ``stem="cifar_maxpool"``: 3x3 stride-1 convolution followed by a 3x3/2
  max-pool (the L2UL release).
- ``stem="imagenet"``: torchvision's 7x7 stride-2 convolution + 3x3/2 max-pool
  (DELETE's CIFAR-10 runs at 224 px). Parameter counts at 1000 classes:
  ResNet-18 11,689,512, ResNet-50 25,557,032 (tests/test_models.py).

``torch_bn=True`` updates the BatchNorm running variance with the unbiased
batch variance as PyTorch does (see ``layers.BatchNorm``); use it when
training further from imported PyTorch weights. Parameter names map one to
one to torchvision's (``jaxunlearn/torch_io.py``). ``num_classes=0`` builds
the backbone without the linear head (logits = features).
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import BatchNorm, bn_mask, float32_outputs, normalize


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with an identity or 1x1 projection shortcut."""
  filters: int
  strides: int = 1
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool, mask=None):
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             axis_name=self.bn_axis_name,
                             unbiased_running_var=self.torch_bn)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    m = bn_mask(mask, 4)
    residual = x
    y = conv(self.filters, (3, 3), (self.strides, self.strides),
             padding=((1, 1), (1, 1)), name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y, mask=m))
    y = conv(self.filters, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = norm(name="bn2")(y, mask=m)
    if residual.shape != y.shape:
      residual = conv(self.filters, (1, 1), (self.strides, self.strides),
                      padding="VALID", name="shortcut_conv")(residual)
      residual = norm(name="shortcut_bn")(residual, mask=m)
    return nn.relu(y + residual)


class Bottleneck(nn.Module):
  """1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4), projection shortcut."""
  filters: int
  strides: int = 1
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool, mask=None):
    norm = functools.partial(BatchNorm, use_running_average=not train,
                             axis_name=self.bn_axis_name,
                             unbiased_running_var=self.torch_bn)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    m = bn_mask(mask, 4)
    residual = x
    y = conv(self.filters, (1, 1), name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y, mask=m))
    y = conv(self.filters, (3, 3), (self.strides, self.strides),
             padding=((1, 1), (1, 1)), name="conv2")(y)
    y = nn.relu(norm(name="bn2")(y, mask=m))
    y = conv(self.filters * 4, (1, 1), name="conv3")(y)
    y = norm(name="bn3")(y, mask=m)
    if residual.shape != y.shape:
      residual = conv(self.filters * 4, (1, 1), (self.strides, self.strides),
                      padding="VALID", name="shortcut_conv")(residual)
      residual = norm(name="shortcut_bn")(residual, mask=m)
    return nn.relu(y + residual)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


@MODELS.register("resnet18")
class ResNet18(nn.Module):
  """ResNet returning (logits, pooled features: 512-d basic, 2048-d bottleneck)."""
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  stem: str = "cifar"
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  block: str = "basic"
  width: int = 64
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    x = normalize(images, self.mean, self.std)
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             name="stem_conv")
    if self.stem == "imagenet":
      x = conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)))(x)
    elif self.stem in ("cifar", "cifar_maxpool"):
      x = conv(self.width, (3, 3), padding=((1, 1), (1, 1)))(x)
    else:
      raise ValueError(f"unknown ResNet stem {self.stem!r}; "
                       "use 'cifar', 'cifar_maxpool' or 'imagenet'")
    x = BatchNorm(use_running_average=not train, axis_name=self.bn_axis_name,
                  unbiased_running_var=self.torch_bn,
                  name="stem_bn")(x, mask=bn_mask(mask, 4))
    x = nn.relu(x)
    if self.stem in ("imagenet", "cifar_maxpool"):
      # flax pads max-pool windows with -inf, as torch's MaxPool2d(padding=1).
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block_cls = BLOCKS[self.block]
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        strides = 2 if stage > 0 and block == 0 else 1
        x = block_cls(self.width * 2**stage, strides,
                      bn_axis_name=self.bn_axis_name, torch_bn=self.torch_bn,
                      dtype=self.dtype,
                      name=f"stage{stage + 1}_block{block}")(x, train, mask)
    features = jnp.mean(x, axis=(1, 2))
    if not self.num_classes:  # a backbone inside a wrapper (e.g. DLFD's MLP head)
      return float32_outputs(features, features)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)


@MODELS.register("resnet50")
class ResNet50(ResNet18):
  """ResNet-50: bottleneck blocks (3, 4, 6, 3), 2048-d features."""
  stem: str = "imagenet"
  stage_sizes: Sequence[int] = (3, 4, 6, 3)
  block: str = "bottleneck"
