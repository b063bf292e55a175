"""Boundary shrink (Chen et al., "Boundary Unlearning", CVPR 2023).

For each forget sample, FGSM on the original model finds a nearby point
``x' = clip(x + ε sign(∇_x CE(f_θ0(x), y)), 0, 1)``; its predicted label
``y' = argmax f_θ0(x')`` (the nearest wrong class across the boundary) is the
new target: ``L = CE(f_θ(x), y')`` on D_f.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxunlearn.attacks import fgsm
from jaxunlearn import batches
from jaxunlearn.batches import Split
from jaxunlearn.methods import Method, _common, register
from jaxunlearn.state import apply_eval


def default_config():
  return _common.base_config(lr=0.003, epochs=5, epsilon=0.3, weight_decay=0.0)


def neighbour_labels(model, variables, split: Split, epsilon: float,
                     batch_size: int) -> np.ndarray:
  """The original model's predictions on the FGSM points of ``split``."""
  @jax.jit
  def label(images, labels):
    adversarial = fgsm(model, variables, images, labels, epsilon)
    return jnp.argmax(apply_eval(model, variables, adversarial)[0], -1)
  out = []
  for batch in batches.in_order(split, batch_size):
    n = int(batch["mask"].sum())
    out.append(np.asarray(label(batch["image"], batch["label"]))[:n])
  return np.concatenate(out).astype(np.int32)


def unlearn(task, cfg, key):
  forget = task.data.forget
  labels = neighbour_labels(task.model, task.variables, forget, cfg.epsilon,
                            cfg.batch_size)
  relabelled = Split(forget.images, labels, forget.ids)

  def loss_fn(net, params, batch_stats, frozen, batch, k, axis_name):
    loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    return loss, batch_stats, {}
  return _common.run(task, cfg, key, loss_fn, relabelled, desc="boundary_shrink")


register(Method("boundary_shrink", unlearn, default_config,
                "CE toward FGSM neighbour labels (Chen et al. 2023)"))
