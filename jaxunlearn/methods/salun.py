"""SalUn: saliency-based unlearning (Fan et al., ICLR 2024).

1. Saliency: ``g = ∇_θ CE(D_f)`` (mean over the forget set, original model);
   the mask keeps exactly the ``fraction`` of all parameters with the largest
   ``|g|`` (one global threshold across tensors, as the released code).
2. Random-label unlearning with masked gradients: CE on D_f toward fixed
   random wrong labels plus CE on D_r, and the update ``m ⊙ ∇`` only moves
   the salient weights.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxunlearn.methods import Method, _common, _stats, random_label, register


def default_config():
  return _common.base_config(lr=0.01, epochs=10, fraction=0.1)


def saliency_mask(gradient, fraction: float):
  """1.0 for the top ``fraction`` of entries by |g| (exactly round(fraction*N))."""
  leaves, treedef = jax.tree.flatten(gradient)
  flat = np.concatenate([np.abs(np.asarray(g)).ravel() for g in leaves])
  keep = int(round(fraction * flat.size))
  selected = np.zeros(flat.size, np.float32)
  if keep:
    selected[np.argsort(-flat, kind="stable")[:keep]] = 1.0
  masks, offset = [], 0
  for g in leaves:
    masks.append(selected[offset:offset + g.size].reshape(np.shape(g)))
    offset += g.size
  return jax.tree.unflatten(treedef, masks)


def unlearn(task, cfg, key):
  label_key, run_key = jax.random.split(key)
  gradient = _stats.mean_gradient(task.model, task.variables, task.data.forget,
                                  cfg.batch_size, task.mesh)
  mask = saliency_mask(gradient, cfg.fraction)
  return _common.run(task, cfg, run_key, random_label.loss_fn,
                     random_label.relabelled_forget_set(task, label_key),
                     paired=task.data.retain, frozen={"mask": mask},
                     grad_transform=lambda g, frozen: jax.tree.map(
                         jnp.multiply, g, frozen["mask"]),
                     desc="salun")


register(Method("salun", unlearn, default_config,
                "saliency-masked random-label unlearning (Fan et al. 2024)"))
