"""Margin-based face-recognition heads: cosine logits, ArcFace and CosFace.

A cosine head compares the L2-normalised embedding ``e`` with L2-normalised
class weights ``w_j``: ``cos θ_j = e·w_j / (|e| |w_j|)``. Every model here
returns the *evaluation* logits ``s · cos θ`` (what identity accuracy uses and
what DELETE distils); the margin exists only in the training loss, which
recovers ``cos θ = logits / s`` and changes the label column alone:

- ArcFace (Deng et al., CVPR 2019): ``s · cos(θ_y + m)``. Past ``θ_y + m > π``
  ``cos(θ + m)`` stops decreasing in θ, so insightface's ``ArcMarginProduct``
  replaces it by ``cos θ − mm`` (``mm = sin(π − m) · m``) wherever
  ``cos θ ≤ th = cos(π − m)``; with ``easy_margin`` the margin is applied
  only where ``cos θ > 0`` (else ``cos θ``).
- CosFace (Wang et al., CVPR 2018): ``s · (cos θ_y − m)``.
- ``"none"``: ``s · cos θ`` (the plain normalised-softmax loss).

``face_cnn`` is a small CNN for 32–48 px faces: four conv-BN-ReLU stages (a
2x2 max-pool after each) -> global average pool -> FC to the embedding ->
BatchNorm without scale (as IResNet) -> cosine head. It returns
``(s · cos θ, embedding)`` like every model of the library.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxunlearn.losses import cross_entropy
from jaxunlearn.models import MODELS
from jaxunlearn.models.layers import (BatchNorm, bn_mask, conv_bn_relu,
                                      float32_outputs, max_pool, normalize)

MARGINS = ("arcface", "cosface", "none")


def l2_normalize(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
  """x / max(|x|, 1e-12) along ``axis``."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def cosine_similarity(embeddings: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
  """cos θ [B, C] between embeddings [B, D] and class weights [D, C]."""
  return l2_normalize(embeddings, -1) @ l2_normalize(weights, 0)


def _check_kind(kind: str) -> None:
  if kind not in MARGINS:
    from jaxunlearn.errors import UserError
    raise UserError(f"unknown face margin {kind!r}; use {', '.join(MARGINS)}")


def target_cosine(cos: jnp.ndarray, kind: str, m: float,
                  easy_margin: bool = False) -> jnp.ndarray:
  """The margin-modified cosine ψ(θ) of the label column (elementwise on cos θ)."""
  _check_kind(kind)
  if kind == "none":
    return cos
  if kind == "cosface":
    return cos - m
  # sin θ >= 0 for θ in [0, π]; the floor keeps the gradient finite at |cos| = 1.
  sin = jnp.sqrt(jnp.clip(1.0 - cos * cos, 1e-12, 1.0))
  phi = cos * math.cos(m) - sin * math.sin(m)  # cos(θ + m)
  if easy_margin:
    return jnp.where(cos > 0, phi, cos)
  th = math.cos(math.pi - m)
  mm = math.sin(math.pi - m) * m
  return jnp.where(cos > th, phi, cos - mm)


def margin_logits(cos: jnp.ndarray, labels: jnp.ndarray, *, kind: str = "arcface",
                  s: float = 64.0, m: float = 0.5,
                  easy_margin: bool = False) -> jnp.ndarray:
  """Training logits ``s · (ψ(θ_y) on the label column, cos θ_j elsewhere)``."""
  cos = cos.astype(jnp.float32)
  is_label = jax.nn.one_hot(labels, cos.shape[-1], dtype=bool)
  return s * jnp.where(is_label, target_cosine(cos, kind, m, easy_margin), cos)


def margin_cross_entropy(scaled_cos_logits: jnp.ndarray, labels: jnp.ndarray, *,
                         kind: str = "arcface", s: float = 64.0, m: float = 0.5,
                         easy_margin: bool = False) -> jnp.ndarray:
  """Per-example CE on the margin logits, given a model's ``s · cos θ`` logits."""
  cos = scaled_cos_logits.astype(jnp.float32) / s
  return cross_entropy(margin_logits(cos, labels, kind=kind, s=s, m=m,
                                     easy_margin=easy_margin), labels)


class CosineHead(nn.Module):
  """``s · cos θ`` between the embedding and learned class weights [D, C].

  float32 whatever the model's compute dtype: ``s`` magnifies bfloat16's
  cosine error (~4e-3) to a quarter of a logit at s = 64, and the margin
  losses act on cos θ itself."""
  num_classes: int
  scale: float = 64.0

  @nn.compact
  def __call__(self, embeddings):
    weights = self.param("weights", nn.initializers.normal(0.01),
                         (embeddings.shape[-1], self.num_classes), jnp.float32)
    return self.scale * cosine_similarity(embeddings.astype(jnp.float32), weights)


@MODELS.register("face_cnn")
class FaceCNN(nn.Module):
  """Small face-recognition CNN: conv stages -> embedding -> cosine head."""
  num_classes: int
  mean: Sequence[float]
  std: Sequence[float]
  widths: Sequence[int] = (16, 32, 64, 64)
  embedding_dim: int = 64
  scale: float = 16.0
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32  # of the computation; parameters are float32

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    norm = lambda name, **kw: BatchNorm(use_running_average=not train,
                                        axis_name=self.bn_axis_name, name=name, **kw)
    x = normalize(images, self.mean, self.std)
    for i, width in enumerate(self.widths):
      x = conv_bn_relu(x, width, i, train=train, mask=mask,
                       bn_axis_name=self.bn_axis_name, dtype=self.dtype)
      x = max_pool(x, (2, 2))
    x = nn.Dense(self.embedding_dim, dtype=self.dtype,
                 name="fc")(jnp.mean(x, axis=(1, 2)))
    embedding = norm("embedding_bn", use_scale=False)(x, mask=bn_mask(mask, 2))
    logits = CosineHead(self.num_classes, self.scale, name="head")(embedding)
    return float32_outputs(logits, embedding)
