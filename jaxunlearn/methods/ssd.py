"""SSD: selective synaptic dampening (Foster et al., AAAI 2024). No training.

Importances are diagonal Fisher values (mean squared per-example gradients)
on the forget set, ``I_f``, and on the whole training set ``I_D`` (D_f + D_r).
A parameter is *selected* when ``I_f > α I_D``; it is multiplied by
``β = min(λ I_D / I_f, 1)``. Every other parameter is left unchanged.
Defaults α = 10, λ = 1 (the paper's).
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxunlearn.data import pipeline
from jaxunlearn.methods import Method, _stats, register


def default_config():
  # The paper uses alpha=10; on the digits CNN it selects no parameter (no
  # forgetting), alpha=5 forgets class 3 with test-retain acc 0.978.
  return ml_collections.ConfigDict(dict(alpha=5.0, lam=1.0, batch_size=64))


def dampen(params, importance_forget, importance_full, alpha: float, lam: float):
  """θ ← θ·min(λ I_D / I_f, 1) where I_f > α I_D, unchanged elsewhere."""
  def one(theta, i_f, i_d):
    theta, i_f, i_d = (np.asarray(a, np.float64) for a in (theta, i_f, i_d))
    selected = i_f > alpha * i_d
    beta = np.minimum(lam * i_d / np.where(selected, i_f, 1.0), 1.0)
    return np.where(selected, theta * beta, theta).astype(np.float32)
  return jax.tree.map(one, params, importance_forget, importance_full)


def unlearn(task, cfg, key):
  del key  # deterministic
  data = task.data
  full = pipeline.concat([data.forget, data.retain])
  i_f = _stats.fisher_diagonal(task.model, task.variables, data.forget,
                               cfg.batch_size, task.mesh)
  i_d = _stats.fisher_diagonal(task.model, task.variables, full, cfg.batch_size,
                               task.mesh)
  params = dampen(task.variables["params"], i_f, i_d, cfg.alpha, cfg.lam)
  return {"params": params, "batch_stats": task.variables["batch_stats"]}


register(Method("ssd", unlearn, default_config,
                "selective synaptic dampening (Foster et al. 2024)"))
