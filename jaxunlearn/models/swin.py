"""Swin Transformer, tiny variant (Swin-T), compact but faithful.

Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", ICCV 2021 (layout of the official code / timm
``swin_tiny_patch4_window7_224``): 4x4 patch embedding + LayerNorm, four
stages of depths (2, 2, 6, 2) with (3, 6, 12, 24) heads at widths 96·2^i,
window 7, every second block shifted by window//2 with the official
attention mask (-100 between tokens of different regions), a learned
relative position bias table of (2w-1)^2 x heads per block, patch merging
(concat of the 2x2 neighbours in the order (0,0),(1,0),(0,1),(1,1) ->
LayerNorm -> linear 4C->2C without bias), final LayerNorm, mean over tokens
(the 768-d features), linear head. 28,288,354 parameters at 1000 classes.

As in the official code, a stage whose resolution is not larger than the
window uses one window of the whole map and no shift; otherwise the
resolution must be a multiple of the window (224 px: 56, 28, 14, 7).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import float32_outputs, normalize
from jaxunlearn.models.vit import Mlp, fused_qkv_attention

_init = nn.initializers.truncated_normal(0.02)


def window_partition(x, window: int):
  """[B, H, W, C] -> [B * H/w * W/w, w*w, C], windows in row-major order."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows, window: int, h: int, w: int):
  c = windows.shape[-1]
  x = windows.reshape(-1, h // window, w // window, window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> np.ndarray:
  """[w*w, w*w] index into the (2w-1)^2 bias table for each token pair."""
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window),
                                indexing="ij")).reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + window - 1
  return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_attention_mask(h: int, w: int, window: int, shift: int) -> np.ndarray:
  """[num_windows, w*w, w*w]: 0 within a region, -100 across regions."""
  regions = np.zeros((1, h, w, 1), np.float32)
  slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
  count = 0
  for hs in slices:
    for ws in slices:
      regions[:, hs, ws, :] = count
      count += 1
  labels = window_partition(regions, window)[..., 0]
  return np.where(labels[:, None, :] != labels[:, :, None], -100.0, 0.0
                  ).astype(np.float32)


class WindowAttention(nn.Module):
  num_heads: int
  window: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None):
    windows, tokens, dim = x.shape
    table = self.param("relative_position_bias_table", _init,
                       ((2 * self.window - 1) ** 2, self.num_heads))
    index = relative_position_index(self.window)
    bias = table[index.reshape(-1)].reshape(tokens, tokens, self.num_heads)
    bias = bias.transpose(2, 0, 1)[None]  # [1, heads, N, N]
    if mask is not None:  # windows are batch-major: tile the per-window mask
      bias = bias + jnp.tile(jnp.asarray(mask)[:, None],
                             (windows // mask.shape[0], 1, 1, 1))
    qkv = nn.Dense(3 * dim, kernel_init=_init, dtype=self.dtype, name="qkv")(x)
    out = fused_qkv_attention(qkv, self.num_heads, bias)
    return nn.Dense(dim, kernel_init=_init, dtype=self.dtype, name="proj")(out)


class SwinBlock(nn.Module):
  num_heads: int
  window: int
  shifted: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    _, h, w, dim = x.shape
    window, shift = self.window, (self.window // 2 if self.shifted else 0)
    if min(h, w) <= window:
      window, shift = min(h, w), 0
    if h % window or w % window:
      raise ValueError(f"Swin: a {h}x{w} map is not a multiple of the window "
                       f"{window}; use a 224 px input or another window_size")
    norm = lambda name: nn.LayerNorm(1e-5, dtype=self.dtype, name=name)
    y = norm("norm1")(x)
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    mask = shift_attention_mask(h, w, window, shift) if shift else None
    y = WindowAttention(self.num_heads, window, self.dtype, name="attn")(
        window_partition(y, window), mask)
    y = window_reverse(y, window, h, w)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    x = x + y
    return x + Mlp(4 * dim, self.dtype, name="mlp")(norm("norm2")(x))


class PatchMerging(nn.Module):
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2],
                         x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
    x = nn.LayerNorm(1e-5, dtype=self.dtype, name="norm")(x)
    return nn.Dense(x.shape[-1] // 2, use_bias=False, kernel_init=_init,
                    dtype=self.dtype, name="reduction")(x)


@MODELS.register("swin_t")
class SwinTransformer(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  patch_size: int = 4
  embed_dim: int = 96
  depths: Sequence[int] = (2, 2, 6, 2)
  num_heads: Sequence[int] = (3, 6, 12, 24)
  window_size: int = 7
  bn_axis_name: Optional[str] = None  # no BatchNorm; uniform model options
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    del train, mask
    x = normalize(images, self.mean, self.std)
    p = self.patch_size
    x = nn.Conv(self.embed_dim, (p, p), (p, p), padding="VALID", dtype=self.dtype,
                name="patch_embed")(x)
    norm = lambda name: nn.LayerNorm(1e-5, dtype=self.dtype, name=name)
    x = norm("patch_norm")(x)
    for stage, (depth, heads) in enumerate(zip(self.depths, self.num_heads)):
      for block in range(depth):
        x = SwinBlock(heads, self.window_size, shifted=block % 2 == 1,
                      dtype=self.dtype, name=f"stage{stage + 1}_block{block}")(x)
      if stage + 1 < len(self.depths):
        x = PatchMerging(self.dtype, name=f"merge{stage + 1}")(x)
    x = norm("norm")(x)
    features = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)
