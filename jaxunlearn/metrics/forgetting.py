"""Forgetting score (MUFAC / DLFD convention) and NoMUS.

Choi & Na, "Towards Machine Unlearning Benchmarks: Forgetting the Personal
Identities in Facial Recognition Systems" (MUFAC), used by DLFD (arXiv
2409.14747). The authors' ``MIA()`` (Dasol-Choi/DLFD, evaluation/mia.py),
which produced every reported DLFD number: the per-sample cross-entropy
losses of the unseen set (label 0) followed by those of D_f (label 1), in
loader order, neither shuffled nor balanced; a default sklearn
``LogisticRegression()`` on the loss; accuracy over the 10 folds of
``StratifiedShuffleSplit(n_splits=10, random_state=0)`` (test_size 0.1):

  FS = |0.5 - mean accuracy|,   NoMUS = (test_acc + (1 - 2 FS)) / 2.

With unequal set sizes the accuracy of always guessing the larger set is
above 0.5, so FS is not 0 for a model that leaks nothing; that is the
authors' protocol and the number they report. ``balanced_samples`` gives
the variant in the spec (the larger set truncated after a seeded shuffle),
reported as ``forgetting_score_balanced``.

``forgetting_score_sklearn`` is the reference (the authors' code);
``forgetting_score_jax`` fits the same L2-regularised (C = 1, intercept
unpenalised, sklearn's default) 1-D logistic regression by Newton's method
on the same folds in one jitted call, for DLFD's gate.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxunlearn.metrics.evaluators import accuracy, register
from jaxunlearn.metrics import mia


def authors_samples(forget_losses: np.ndarray, unseen_losses: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(losses [Nu + Nf], labels; 0 = unseen, 1 = forget): the authors' MIA()
  order, unseen first, nothing shuffled or dropped."""
  losses = np.concatenate([np.asarray(unseen_losses), np.asarray(forget_losses)])
  labels = np.concatenate([np.zeros(len(unseen_losses), np.int64),
                           np.ones(len(forget_losses), np.int64)])
  return losses, labels


def balanced_samples(forget_losses: np.ndarray, unseen_losses: np.ndarray,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(losses [N], labels [N]; 1 = forget) after truncating the larger set."""
  rng = np.random.default_rng(seed)
  forget_losses = rng.permutation(forget_losses)
  unseen_losses = rng.permutation(unseen_losses)
  n = min(len(forget_losses), len(unseen_losses))
  losses = np.concatenate([unseen_losses[:n], forget_losses[:n]])
  labels = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
  return losses, labels


def cv_splits(labels: np.ndarray, n_splits: int = 10, random_state: int = 0):
  """(train index [S, n_train], test index [S, n_test]) of sklearn's
  ``StratifiedShuffleSplit`` (test_size 0.1)."""
  from sklearn.model_selection import StratifiedShuffleSplit
  cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
  train, test = zip(*cv.split(np.zeros(len(labels)), labels))
  return np.stack(train), np.stack(test)


def forgetting_score_sklearn(losses: np.ndarray, labels: np.ndarray,
                             n_splits: int = 10, random_state: int = 0) -> float:
  """The authors' ``simple_mia``: |0.5 - mean 10-fold accuracy| (NaN below
  20 samples, where the 10% test folds are too small to be stratified)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
  if len(labels) < 20:
    return float("nan")
  cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=random_state)
  scores = cross_val_score(LogisticRegression(), losses.reshape(-1, 1), labels,
                           cv=cv, scoring="accuracy")
  return float(abs(0.5 - scores.mean()))


def _fit_logistic_1d(x: jnp.ndarray, y: jnp.ndarray, c: float = 1.0,
                     iters: int = 25) -> jnp.ndarray:
  """argmin_{w,b} 0.5 w^2 / C + sum_i logloss(y_i, w x_i + b) by Newton."""
  design = jnp.stack([x, jnp.ones_like(x)], axis=1)  # [n, 2]
  reg = jnp.array([1.0 / c, 0.0])

  def newton(_, theta):
    p = jax.nn.sigmoid(design @ theta)
    grad = design.T @ (p - y) + reg * theta
    hess = (design * (p * (1 - p))[:, None]).T @ design + jnp.diag(reg) + 1e-9 * jnp.eye(2)
    return theta - jnp.linalg.solve(hess, grad)

  return jax.lax.fori_loop(0, iters, newton, jnp.zeros(2, jnp.float32))


@jax.jit
def forgetting_score_jax(losses: jnp.ndarray, labels: jnp.ndarray,
                         train_index: jnp.ndarray, test_index: jnp.ndarray
                         ) -> jnp.ndarray:
  """Same score as ``forgetting_score_sklearn`` on folds from ``cv_splits``.

  sklearn standardises nothing here (lbfgs on raw features), so we fit on raw
  losses too; the optimum is unique (strictly convex), so both agree up to
  the solvers' tolerance."""
  losses = losses.astype(jnp.float32)
  labels = labels.astype(jnp.float32)

  def fold(train, test):
    theta = _fit_logistic_1d(losses[train], labels[train])
    pred = (theta[0] * losses[test] + theta[1]) > 0
    return jnp.mean(pred == (labels[test] > 0.5))

  return jnp.abs(0.5 - jnp.mean(jax.vmap(fold)(train_index, test_index)))


def nomus(test_acc: Optional[float], score: float) -> Optional[float]:
  """NoMUS = (test accuracy + (1 - 2 FS)) / 2."""
  if test_acc is None or not np.isfinite(score):
    return None
  return float((test_acc + (1.0 - 2.0 * score)) / 2.0)


@register("forgetting_score")
def forgetting_score_evaluator(ctx, role: str, options=None):
  """forgetting_score (the authors' MIA(): D_f vs all of D_t, unbalanced),
  nomus, and forgetting_score_balanced (the larger set truncated)."""
  forget, test = ctx.outputs(role, "forget"), ctx.outputs(role, "test")
  forget_losses = mia.per_sample_loss(forget.logits, forget.labels)
  test_losses = mia.per_sample_loss(test.logits, test.labels)
  score = forgetting_score_sklearn(*authors_samples(forget_losses, test_losses))
  yield "forgetting_score", score
  yield "nomus", nomus(accuracy(test.logits, test.labels), score)
  yield "forgetting_score_balanced", forgetting_score_sklearn(
      *balanced_samples(forget_losses, test_losses, ctx.seed))
