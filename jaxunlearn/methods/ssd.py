"""SSD: selective synaptic dampening (Foster et al., AAAI 2024). No training.

Importance of a parameter on a split, as the released ``calc_importance``
computes it (if-loops/selective-synaptic-dampening, src/ssd.py): the split is
cut into batches in order (the last one partial), each batch gives the
gradient ``g_b`` of its mean cross-entropy with the model in eval mode, and
``I = (1/K) Σ_b g_b²`` over the K batches. It is not a per-example Fisher: the
square of a batch mean is smaller than the mean of the squares, and the value
depends on the batch size.

``I_f`` is computed on D_f (batches of ``forget_batch_size``), ``I_D`` on the
whole training set, D_r followed by D_f as the released ``full_train_dl``
concatenates them (batches of ``batch_size``). A parameter is *selected* when
``I_f > α I_D``; it is multiplied by ``β = min(λ I_D / I_f, 1)``. Every other
parameter is left unchanged. float32 throughout, as the released code.
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxunlearn import batches
from jaxunlearn.methods import Method, _stats, register


def default_config():
  # The authors' CIFAR-10 ResNet-18 setting: selection_weighting (alpha) 10,
  # dampening_constant (lambda) 1 (src/forget_random_main.py; the same in
  # src/forget_full_class_main.py), full_train_dl batches of -b (default 64),
  # forget_train_dl batches of 128 (src/forget_random_main.py; their
  # full-class scripts for CIFAR-20/100 use 64 for both). No augmentation
  # (datasets.transform_unlearning).
  return ml_collections.ConfigDict(dict(alpha=10.0, lam=1.0, batch_size=64,
                                        forget_batch_size=128))


def dampen(params, importance_forget, importance_full, alpha: float, lam: float):
  """θ ← θ·min(λ I_D / I_f, 1) where I_f > α I_D, unchanged elsewhere
  (``modify_weight``, float32 as in the released code)."""
  alpha, lam = np.float32(alpha), np.float32(lam)

  def one(theta, i_f, i_d):
    theta, i_f, i_d = (np.asarray(a, np.float32) for a in (theta, i_f, i_d))
    selected = i_f > i_d * alpha
    # Divisions where I_f = 0 are never selected (I_f > α I_D >= 0 there).
    beta = np.minimum(i_d * lam / np.where(selected, i_f, np.float32(1)),
                      np.float32(1))
    return np.where(selected, theta * beta, theta)
  return jax.tree.map(one, params, importance_forget, importance_full)


def importances(task, cfg):
  """(I_f, I_D) of the original model."""
  data = task.data
  i_f = _stats.mean_squared_batch_gradient(
      task.model, task.variables, data.forget,
      cfg.get("forget_batch_size", None) or cfg.batch_size, task.mesh)
  full = batches.concat([data.retain, data.forget])
  i_d = _stats.mean_squared_batch_gradient(task.model, task.variables, full,
                                           cfg.batch_size, task.mesh)
  return i_f, i_d


def unlearn(task, cfg, key):
  del key  # deterministic
  i_f, i_d = importances(task, cfg)
  params = dampen(task.variables["params"], i_f, i_d, cfg.alpha, cfg.lam)
  return {"params": params, "batch_stats": task.variables["batch_stats"]}, {}


register(Method("ssd", unlearn, default_config,
                "selective synaptic dampening (Foster et al. 2024)"))
