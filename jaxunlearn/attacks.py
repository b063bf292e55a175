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


def random_targets(key: jax.Array, labels: jnp.ndarray, num_classes: int,
                   n_adv: int) -> jnp.ndarray:
  """[N, n_adv] targets, uniform over the classes != label: (y + U{1..C-1}) mod C.

  (The released L2UL code draws uniformly over all C classes, so a target
  can equal the label; we do not copy that.)"""
  shift = jax.random.randint(key, (labels.shape[0], n_adv), 1, num_classes)
  return (labels[:, None] + shift) % num_classes


def pgd_l2_targeted(model, variables, images: jnp.ndarray, targets: jnp.ndarray,
                    key: jax.Array, *, epsilon: float, step_size: float,
                    steps: int) -> jnp.ndarray:
  """Targeted L2 PGD (L2UL, AAAI 2024) in raw [0, 1] pixel space.

  Random start uniformly in direction with radius ~ U(0, ε); then ``steps``
  steps ``x ← x - α g/||g||₂`` on the summed CE toward ``targets``
  (minimising it), clip to [0, 1], project onto the L2 ball of radius ε
  around the source image. Model in inference mode. Vectorised: every row of
  ``images`` is attacked at once (repeat a source image per target).
  """
  def flat_norm(x):
    return jnp.sqrt(jnp.sum(x * x, axis=tuple(range(1, x.ndim)), keepdims=True))

  key_dir, key_rad = jax.random.split(key)
  direction = jax.random.normal(key_dir, images.shape)
  direction = direction / (flat_norm(direction) + 1e-12)
  radius = jax.random.uniform(key_rad, (images.shape[0],) + (1,) * (images.ndim - 1))
  start = jnp.clip(images + epsilon * radius * direction, 0.0, 1.0)

  def loss(x):
    logits, _ = apply_eval(model, variables, x)
    return jnp.sum(cross_entropy(logits, targets))

  def project(x):
    delta = x - images
    scale = jnp.minimum(1.0, epsilon / (flat_norm(delta) + 1e-12))
    return images + delta * scale

  def body(_, x):
    grad = jax.grad(loss)(x)
    x = x - step_size * grad / (flat_norm(grad) + 1e-12)
    return project(jnp.clip(x, 0.0, 1.0))
  return jax.lax.fori_loop(0, steps, body, project(start))
