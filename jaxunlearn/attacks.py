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


def _flat_l2(x):
  """Per-example L2 norm, shaped to broadcast against ``x``."""
  return jnp.sqrt(jnp.sum(x * x, axis=tuple(range(1, x.ndim)), keepdims=True))


def clamp_l2(delta: jnp.ndarray, epsilon: float) -> jnp.ndarray:
  """``delta · min(ε/||delta||₂, 1)`` per example (advertorch ``clamp_by_pnorm``;
  a zero ``delta`` gives ε/0 = inf, so factor 1, not NaN)."""
  return delta * jnp.minimum(epsilon / _flat_l2(delta), 1.0)


def normalise_l2(grad: jnp.ndarray) -> jnp.ndarray:
  """``g / max(||g||₂, 1e-6)`` per example (advertorch ``normalize_by_pnorm``:
  a zero gradient stays zero)."""
  return grad / jnp.maximum(_flat_l2(grad), 1e-6)


def l2_random_start(images: jnp.ndarray, uniform: jnp.ndarray,
                    epsilon: float) -> jnp.ndarray:
  """advertorch's L2 random start as a perturbation ``delta``.

  ``uniform`` ~ U[0, 1] of the images' shape (a random image of the data
  domain): ``delta = clamp_l2(uniform - x, ε)``, then ``clip(x + delta, 0, 1)
  - x`` twice (``rand_init_delta`` and ``PGDAttack.perturb`` each clamp).
  The start is on the ε-sphere when the random image is farther than ε from
  ``x`` (always at ε = 4 on CIFAR), inside otherwise; its direction is that
  of ``uniform - x``, not an isotropic one.
  """
  delta = clamp_l2(uniform - images, epsilon)
  delta = jnp.clip(images + delta, 0.0, 1.0) - images
  return jnp.clip(images + delta, 0.0, 1.0) - images


def pgd_l2_targeted(model, variables, images: jnp.ndarray, targets: jnp.ndarray,
                    key: jax.Array, *, epsilon: float, step_size: float,
                    steps: int) -> jnp.ndarray:
  """Targeted L2 PGD of the L2UL code (advertorch ``L2PGDAttack``,
  ``rand_init=True``, ``targeted=True``, clip [0, 1]) in raw [0, 1] pixel
  space, model in inference mode.

  Start ``delta = l2_random_start(x, U, ε)`` with
  ``U = jax.random.uniform(key, x.shape)``; then ``steps`` times (advertorch
  ``perturb_iterative``, ord 2, minimize):
  ``g = normalise_l2(∇_δ -Σ CE(f(x + δ), t))``, ``δ ← δ + α g``,
  ``δ ← clip(x + δ, 0, 1) - x``, ``δ ← clamp_l2(δ, ε)``; return
  ``clip(x + δ, 0, 1)``. Vectorised: every row of ``images`` is attacked at
  once (repeat a source image per target).
  Source: BorealisAI/advertorch advertorch/attacks/iterative_projected_gradient.py
  and advertorch/attacks/utils.py (``rand_init_delta``).
  """
  # δ stays float32 with a bfloat16 model (which casts at its first
  # convolution): a step of a few 1e-3 on a pixel near 1 is below
  # bfloat16's resolution there (2^-8) and would vanish.
  delta = l2_random_start(images, jax.random.uniform(key, images.shape), epsilon)

  def objective(delta):
    logits, _ = apply_eval(model, variables, images + delta)
    return -jnp.sum(cross_entropy(logits, targets))

  def body(_, delta):
    delta = delta + step_size * normalise_l2(jax.grad(objective)(delta))
    delta = jnp.clip(images + delta, 0.0, 1.0) - images
    return clamp_l2(delta, epsilon)
  delta = jax.lax.fori_loop(0, steps, body, delta)
  return jnp.clip(images + delta, 0.0, 1.0)
