"""Vision Transformer (ViT-S/16 by default), as timm's ``vit_small_patch16_224``.

Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; the small
variant from Touvron et al. (DeiT), ICML 2021. Pre-norm blocks:
``x + Attn(LN(x))``, ``x + MLP(LN(x))`` with exact (erf) GELU and LayerNorm
epsilon 1e-6; a class token and learned position embeddings; the features are
the final-LayerNorm class token. 22,050,664 parameters at 1000 classes and
224 px (tests/test_models.py). The position embedding's length follows the
input size the model is initialised with.

No BatchNorm: ``bn_axis_name``/``torch_bn`` exist only so every model takes
the same options; ``mask`` is unused (LayerNorm is per example).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import float32_outputs, normalize

_init = nn.initializers.truncated_normal(0.02)


class Mlp(nn.Module):
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    out = x.shape[-1]
    x = nn.gelu(nn.Dense(self.hidden, kernel_init=_init, dtype=self.dtype,
                         name="fc1")(x), approximate=False)
    return nn.Dense(out, kernel_init=_init, dtype=self.dtype, name="fc2")(x)


def attention_weights(q, k, bias=None):
  """softmax(q k^T / sqrt(d) + bias) over the key axis; q, k: [B, heads, N, d].
  The softmax runs in float32 whatever the compute dtype."""
  logits = jnp.einsum("bhnd,bhmd->bhnm", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
  if bias is not None:
    logits = logits + bias
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(q.dtype)


class SelfAttention(nn.Module):
  """Multi-head self-attention with one fused qkv projection (timm layout)."""
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, bias=None):
    qkv = nn.Dense(3 * x.shape[-1], kernel_init=_init, dtype=self.dtype,
                   name="qkv")(x)
    out = fused_qkv_attention(qkv, self.num_heads, bias)
    return nn.Dense(x.shape[-1], kernel_init=_init, dtype=self.dtype,
                    name="proj")(out)


def fused_qkv_attention(qkv, num_heads: int, bias=None):
  """[B, N, 3D] fused q/k/v projections -> [B, N, D] multi-head attention
  output before the output projection (shared with Swin's windows)."""
  batch, tokens, dim = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
  qkv = qkv.reshape(batch, tokens, 3, num_heads, dim // num_heads)
  q, k, v = jnp.transpose(qkv, (2, 0, 3, 1, 4))
  out = jnp.einsum("bhnm,bhmd->bhnd", attention_weights(q, k, bias), v)
  return jnp.transpose(out, (0, 2, 1, 3)).reshape(batch, tokens, dim)


class EncoderBlock(nn.Module):
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    # LayerNorm reduces in float32 (flax) and returns the compute dtype.
    norm = lambda name: nn.LayerNorm(1e-6, dtype=self.dtype, name=name)
    x = x + SelfAttention(self.num_heads, self.dtype, name="attn")(norm("norm1")(x))
    return x + Mlp(self.mlp_dim, self.dtype, name="mlp")(norm("norm2")(x))


@MODELS.register("vit_s16")
class ViT(nn.Module):
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  patch_size: int = 16
  hidden: int = 384
  depth: int = 12
  num_heads: int = 6
  mlp_dim: int = 1536
  bn_axis_name: Optional[str] = None
  torch_bn: bool = False
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    del train, mask
    x = normalize(images, self.mean, self.std)
    p = self.patch_size
    if x.shape[1] % p or x.shape[2] % p:
      raise ValueError(f"image size {x.shape[1:3]} is not a multiple of the "
                       f"patch size {p}")
    x = nn.Conv(self.hidden, (p, p), (p, p), padding="VALID", dtype=self.dtype,
                name="patch_embed")(x)
    x = x.reshape(x.shape[0], -1, self.hidden)
    # float32 parameters, added in the compute dtype (else they promote x).
    cls = self.param("cls_token", _init, (1, 1, self.hidden)).astype(x.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, self.hidden)), x], 1)
    x = x + self.param("pos_embed", _init, (1, x.shape[1], self.hidden)).astype(x.dtype)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dtype,
                       name=f"block{i}")(x)
    features = nn.LayerNorm(1e-6, dtype=self.dtype, name="norm")(x)[:, 0]
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(features)
    return float32_outputs(logits, features)
