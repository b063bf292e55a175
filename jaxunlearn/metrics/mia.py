"""Membership-inference attacks on per-sample features.

Every attack here is fit on shadow sets, members (a seeded sample of D_r the
size of D_t,r) against non-members (D_t,r), and applied to D_f; the number
reported is the fraction of D_f called *member* (lower = more forgotten; a
retrained model sits near the rate at which it calls unseen data member).

Two attacks, with a check of whether each has learned anything:

- ``svc_mia`` (``mia_efficacy``, the SalUn / DELETE convention): an RBF SVC
  (C=3, gamma="auto") on the true-class confidence. Kept for comparison with
  those papers. Its decision away from the shadow data is an extrapolation:
  when members and non-members both have confidence near 1 (a model that
  generalises), its verdict on low-confidence D_f samples, which lie far
  outside the data it was fit on, flips with last-bit differences between
  CPUs and with which retain samples the shadow set draws.
  SalUn's code reports ``1 -`` this value ("MIA-efficacy" there is the
  fraction predicted non-member).
- ``threshold_mia`` (``mia_threshold``): member iff the logit-scaled
  confidence ``phi = log p_y - log(1 - p_y)`` is at least a threshold fitted
  on the shadow sets by a balanced logistic regression. Monotone in the
  feature (the membership hypothesis: a model is more confident on what it
  trained on), so a sample less confident than every shadow member is never
  called member, on any CPU. This is the attack the gap to the retrained
  model, the tests and the gates use.

``attack_accuracy`` is an attack's own cross-validated balanced accuracy on
members versus non-members; ``has_signal`` says whether it is above chance by
more than two standard errors of a coin flip. Without signal the attack's
number on D_f says nothing about membership, and the report says so.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.special import log_softmax, softmax

# (member features, non-member features) -> predict(features) -> {0, 1}
Fit = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]
CV_FOLDS = 5


def confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """The true-class probability p_y, shape [N, 1]."""
  probs = softmax(logits.astype(np.float64), axis=-1)
  return probs[np.arange(len(labels)), labels][:, None]


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """phi = log(p_y / (1 - p_y)) = z_y - logsumexp_{j != y} z_j (stable), [N]."""
  z = np.asarray(logits, np.float64)
  rows = np.arange(len(labels))
  zy = z[rows, labels]
  others = z.copy()
  others[rows, labels] = -np.inf
  top = others.max(axis=1, keepdims=True)
  return zy - (top[:, 0] + np.log(np.exp(others - top).sum(axis=1)))


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Cross-entropy of each sample, shape [N]."""
  return -log_softmax(logits.astype(np.float64), axis=-1)[np.arange(len(labels)), labels]


def _flat(features: np.ndarray) -> np.ndarray:
  return np.asarray(features, np.float64).reshape(len(features), -1)


def fit_svc(member: np.ndarray, nonmember: np.ndarray):
  """An RBF SVC (C=3, gamma='auto') separating members (1) from non-members."""
  from sklearn.svm import SVC
  features = np.concatenate([_flat(member), _flat(nonmember)])
  labels = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
  clf = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
  return lambda x: clf.predict(_flat(x))


def fit_logistic_1d(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray,
                    c: float = 1.0, iters: int = 50) -> tuple[float, float]:
  """(w, b) = argmin 0.5 w^2 / C + Σ_i s_i logloss(y_i, w x_i + b), by
  Newton's method in float64 (sklearn's LogisticRegression objective: L2 on
  the weight, intercept unpenalised). Strictly convex, so the optimum is
  unique and the iterate reaches it to rounding."""
  design = np.stack([x, np.ones_like(x)], axis=1)
  reg = np.array([1.0 / c, 0.0])
  theta = np.zeros(2)
  for _ in range(iters):
    p = 1.0 / (1.0 + np.exp(-(design @ theta)))
    grad = design.T @ (sample_weight * (p - y)) + reg * theta
    hess = (design * (sample_weight * p * (1 - p))[:, None]).T @ design + np.diag(reg)
    step = np.linalg.solve(hess + 1e-12 * np.eye(2), grad)
    theta = theta - step
    if np.max(np.abs(step)) < 1e-13:
      break
  return float(theta[0]), float(theta[1])


def fit_threshold(member: np.ndarray, nonmember: np.ndarray):
  """Member iff feature >= tau, tau from a balanced (class_weight='balanced')
  L2 logistic regression on the standardised 1-D feature. A non-positive
  slope means higher values do not indicate membership: then nobody is
  called member (and ``attack_accuracy`` is at most 0.5)."""
  member, nonmember = _flat(member)[:, 0], _flat(nonmember)[:, 0]
  x = np.concatenate([member, nonmember])
  y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
  weight = np.where(y == 1, len(x) / (2 * len(member)), len(x) / (2 * len(nonmember)))
  mean, scale = x.mean(), x.std() or 1.0
  w, b = fit_logistic_1d((x - mean) / scale, y, weight)
  if w <= 0:
    return lambda t: np.zeros(len(t))
  tau = mean - scale * b / w
  return lambda t: (_flat(t)[:, 0] >= tau).astype(np.float64)


def member_fraction(fit: Fit, member: np.ndarray, nonmember: np.ndarray,
                    target: np.ndarray) -> float:
  """Fraction of ``target`` that the attack fit on the shadow sets calls
  member (nan if a set is empty)."""
  if min(len(member), len(nonmember), len(target)) == 0:
    return float("nan")
  return float(np.mean(fit(member, nonmember)(target)))


def svc_mia(member_features: np.ndarray, nonmember_features: np.ndarray,
            target_features: np.ndarray) -> float:
  """Fraction of ``target`` an RBF SVC (C=3, gamma='auto') calls 'member'."""
  return member_fraction(fit_svc, member_features, nonmember_features,
                         target_features)


def threshold_mia(member_phi: np.ndarray, nonmember_phi: np.ndarray,
                  target_phi: np.ndarray) -> float:
  """Fraction of ``target`` at or above the fitted threshold (``fit_threshold``)."""
  return member_fraction(fit_threshold, member_phi, nonmember_phi, target_phi)


def attack_accuracy(fit: Fit, member: np.ndarray, nonmember: np.ndarray,
                    seed: int = 0, folds: int = CV_FOLDS) -> float:
  """Balanced accuracy (mean of the member and non-member recalls) of the
  attack on held-out shadow samples, over stratified ``folds``-fold cross
  validation (shuffled with ``seed``); nan if a set has fewer than ``folds``
  samples."""
  from sklearn.model_selection import StratifiedKFold
  if min(len(member), len(nonmember)) < folds:
    return float("nan")
  x = np.concatenate([_flat(member), _flat(nonmember)])
  y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
  pred = np.empty(len(y))
  for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
    is_member = y[train] == 1
    pred[test] = fit(x[train][is_member], x[train][~is_member])(x[test])
  return float(0.5 * (np.mean(pred[y == 1] == 1) + np.mean(pred[y == 0] == 0)))


def has_signal(accuracy: float, num_samples: int) -> bool:
  """accuracy - 0.5 > 2 / (2 sqrt(n)): above what a coin flip reaches with
  probability ~2% on ``num_samples`` held-out predictions."""
  return bool(np.isfinite(accuracy) and accuracy - 0.5 > 1.0 / np.sqrt(num_samples))


def shadow_member_index(num_retain: int, num_nonmembers: int,
                        seed: int) -> np.ndarray:
  """A seeded sample of D_r of the size of D_t,r (all of D_r if smaller)."""
  rng = np.random.default_rng(seed)
  size = min(num_retain, num_nonmembers)
  return np.sort(rng.choice(num_retain, size, replace=False))
