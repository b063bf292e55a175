"""Losses the methods share. Per-example functions; reduce with ``weighted_mean``.

All in float32 whatever ``config.model.dtype`` (the models return float32
logits, and each loss casts again): log-probabilities of near-zero
probabilities, the -1e10 mask and KL terms of a few 1e-3 lose their meaning
at bfloat16's 8-bit mantissa.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax

MASKED_LOGIT = -1e10  # DELETE's mask value: exp(-1e10 - max) is exactly 0.


def weighted_mean(values: jnp.ndarray, weights: jnp.ndarray,
                  axis_name: Optional[str] = None) -> jnp.ndarray:
  """sum(w * v) / sum(w) over the (global) batch.

  ``weights`` is the batch's padding mask. Under ``shard_map``/``pmap`` pass
  ``axis_name``: the denominator is summed over devices, so the per-device
  values add up (with ``lax.psum`` of the gradients) to the global mean.
  """
  weights = weights.astype(values.dtype)
  total = jnp.sum(weights)
  if axis_name is not None:
    total = lax.psum(total, axis_name)
  return jnp.sum(values * weights) / jnp.maximum(total, 1.0)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-example softmax cross-entropy with integer labels."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  return -jnp.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def soft_cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray) -> jnp.ndarray:
  """Per-example cross-entropy against a target distribution."""
  return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32)), -1)


def kl_divergence(target_probs: jnp.ndarray, logits: jnp.ndarray) -> jnp.ndarray:
  """Per-example KL(target || softmax(logits)); 0 * log 0 counts as 0."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  return jnp.sum(jax.scipy.special.xlogy(target_probs, target_probs)
                 - target_probs * log_probs, axis=-1)


def mask_classes(logits: jnp.ndarray, class_mask: jnp.ndarray) -> jnp.ndarray:
  """Sets logits where ``class_mask`` is true to -1e10 (probability 0)."""
  return jnp.where(class_mask, jnp.asarray(MASKED_LOGIT, logits.dtype), logits)


def accuracy_count(logits: jnp.ndarray, labels: jnp.ndarray,
                   weights: jnp.ndarray) -> jnp.ndarray:
  return jnp.sum((jnp.argmax(logits, -1) == labels) * weights)
