"""Adversarial examples in raw [0, 1] pixel space (models normalise inside)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxunlearn.losses import cross_entropy
from jaxunlearn.state import apply_eval


def fgsm(model, variables, images: jnp.ndarray, labels: jnp.ndarray,
         epsilon: float) -> jnp.ndarray:
  """Untargeted FGSM (Goodfellow et al. 2015) on the model in inference mode:
  ``clip(x + ε sign(∇_x CE(f(x), y)), 0, 1)``."""
  def loss(x):
    logits, _ = apply_eval(model, variables, x)
    return jnp.sum(cross_entropy(logits, labels))
  grad = jax.grad(loss)(images)
  return jnp.clip(images + epsilon * jnp.sign(grad), 0.0, 1.0)
