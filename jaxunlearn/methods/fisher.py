"""Fisher forgetting (Golatkar et al., "Eternal Sunshine of the Spotless Net",
CVPR 2020), in the released code's simplified form. No training.

Parameters get Gaussian noise with variance ``min(α / (F_r + 1e-8), max_var)``
where ``F_r`` is the diagonal Fisher (mean squared per-example gradients) on
the retain set: weights the retain data does not constrain are randomised.
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxunlearn.methods import Method, _stats, register


def default_config():
  return ml_collections.ConfigDict(dict(alpha=1e-6, max_var=1e-3, batch_size=64))


def unlearn(task, cfg, key):
  fisher = _stats.fisher_diagonal(task.model, task.variables, task.data.retain,
                                  cfg.batch_size, task.mesh)
  leaves, treedef = jax.tree.flatten(task.variables["params"])
  keys = jax.random.split(key, len(leaves))
  noisy = []
  for theta, f, k in zip(leaves, jax.tree.leaves(fisher), keys):
    std = np.sqrt(np.minimum(cfg.alpha / (np.asarray(f) + 1e-8), cfg.max_var))
    noisy.append(np.asarray(theta) + std * np.asarray(jax.random.normal(k, theta.shape)))
  return {"params": jax.tree.unflatten(treedef, noisy),
          "batch_stats": task.variables["batch_stats"]}, {}


register(Method("fisher", unlearn, default_config,
                "Fisher-scaled noise (Golatkar et al. 2020)"))
