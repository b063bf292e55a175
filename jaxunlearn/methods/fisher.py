"""Fisher forgetting (Golatkar et al., "Eternal Sunshine of the Spotless Net",
CVPR 2020). No training: every parameter is redrawn from a Gaussian around
its value whose variance is large where the retain set's Fisher is small,
so weights D_r does not constrain are randomised.

``form="released"`` (the default) is the authors' released code
(AdityaGolatkar/SelectiveForgetting, as if-loops/selective-synaptic-dampening
copies it into ``src/forget_full_class_strategies.py`` and
``src/forget_random_strategies.py``, ``FisherForgetting``). In flax's layout,
torch's first axis (output features) is the last one and torch's second
(input features) the second-to-last; for a kernel with several output axes
(attention's ``DenseGeneral``) the average runs over the second-to-last,
an output axis, where torch's fused projection averages over the input:

- F: the predictive diagonal Fisher on D_r, one example at a time
  (``_stats.predictive_fisher_diagonal``);
- variance α · min(1 / (F + 1e-8), 1e3), the cap 1e2 instead for a
  parameter with ``num_classes`` output features (the classifier), then
  averaged over the input axis for every kernel;
- when the task forgets whole classes (``zero_forget_classes``; the
  full-class script): the forgotten classes' entries of the classifier get
  mean 0 and variance 1e-4, and the classifier's variance is multiplied by
  10; other one-dimensional parameters (BatchNorm scales and shifts,
  biases) ×10. Otherwise (the random script) every one-dimensional
  parameter ×10;
- θ = μ + sqrt(variance) · N(0, 1), μ the original weights.

``form="empirical"`` is a cheaper variant (one gradient per example instead
of one per class): variance min(α / (F_emp + 1e-8), max_var), F_emp the mean
squared per-example gradient of the labelled loss, no per-layer factors.
"""
from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxunlearn.errors import UserError
from jaxunlearn.methods import Method, _stats, register

FORMS = ("released", "empirical")


def default_config():
  return ml_collections.ConfigDict(dict(
      form="released", alpha=1e-6, zero_forget_classes=True, max_var=1e-3,
      batch_size=64))


def released_mean_var(params, fisher, alpha: float, num_classes: int,
                      forget_classes=()):
  """(mean, variance) trees of the released ``get_mean_var`` (float32, flax
  layout); ``forget_classes`` empty: the random-forgetting script's form."""
  forget = list(forget_classes)

  def one(theta, f):
    theta, f = np.asarray(theta, np.float32), np.asarray(f, np.float32)
    classifier = theta.shape[-1] == num_classes
    var = np.minimum(1.0 / (f + np.float32(1e-8)), np.float32(1e3))
    if classifier:
      var = np.minimum(var, np.float32(1e2))
    var = np.float32(alpha) * var
    if var.ndim > 1:
      var = np.broadcast_to(var.mean(-2, keepdims=True), var.shape).copy()
    mu = theta.copy()
    if classifier and forget:
      mu[..., forget] = 0
      var[..., forget] = np.float32(1e-4)
      var *= np.float32(10)
    elif var.ndim == 1:
      var *= np.float32(10)
    return mu, var

  pairs = jax.tree.map(one, params, fisher)
  is_pair = lambda x: isinstance(x, tuple)
  return (jax.tree.map(lambda p: p[0], pairs, is_leaf=is_pair),
          jax.tree.map(lambda p: p[1], pairs, is_leaf=is_pair))


def unlearn(task, cfg, key):
  if cfg.form not in FORMS:
    raise UserError(f"unknown fisher.form {cfg.form!r}; use one of {', '.join(FORMS)}")
  params = task.variables["params"]
  if cfg.form == "released":
    fisher = _stats.predictive_fisher_diagonal(
        task.model, task.variables, task.data.retain, cfg.batch_size, task.mesh)
    forget = (task.data.forget_classes or ()) if cfg.zero_forget_classes else ()
    mean, var = released_mean_var(params, fisher, cfg.alpha, task.num_classes, forget)
  else:
    fisher = _stats.fisher_diagonal(task.model, task.variables, task.data.retain,
                                    cfg.batch_size, task.mesh)
    mean = jax.tree.map(np.asarray, params)
    var = jax.tree.map(
        lambda f: np.minimum(cfg.alpha / (np.asarray(f) + 1e-8), cfg.max_var), fisher)
  leaves, treedef = jax.tree.flatten(mean)
  keys = jax.random.split(key, len(leaves))
  noisy = [mu + np.sqrt(v) * np.asarray(jax.random.normal(k, mu.shape))
           for mu, v, k in zip(leaves, jax.tree.leaves(var), keys)]
  return {"params": jax.tree.unflatten(treedef, noisy),
          "batch_stats": task.variables["batch_stats"]}, {}


register(Method("fisher", unlearn, default_config,
                "Fisher-scaled noise (Golatkar et al. 2020)"))
