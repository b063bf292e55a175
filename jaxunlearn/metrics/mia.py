"""Membership-inference attacks on per-sample features.

MIA-efficacy (SalUn / DELETE convention): an SVC (RBF, C=3, gamma="auto") is
fit to separate shadow members (a seeded sample of D_r the size of D_t,r)
from non-members (D_t,r) using one per-sample feature, then applied to D_f.
The number reported here is the fraction of D_f predicted *member* (lower =
more forgotten; a retrained model sits near the test-set rate). Note: SalUn's
code reports ``1 - `` this value for the forget set ("MIA-efficacy" there is
the fraction predicted non-member).
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, softmax


def confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """The true-class probability p_y, shape [N, 1]."""
  probs = softmax(logits.astype(np.float64), axis=-1)
  return probs[np.arange(len(labels)), labels][:, None]


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Cross-entropy of each sample, shape [N]."""
  return -log_softmax(logits.astype(np.float64), axis=-1)[np.arange(len(labels)), labels]


def svc_mia(member_features: np.ndarray, nonmember_features: np.ndarray,
            target_features: np.ndarray) -> float:
  """Fraction of ``target`` an RBF SVC (C=3, gamma='auto') calls 'member'."""
  from sklearn.svm import SVC
  if len(target_features) == 0 or len(member_features) == 0 or len(nonmember_features) == 0:
    return float("nan")
  features = np.concatenate([member_features, nonmember_features]).reshape(
      len(member_features) + len(nonmember_features), -1)
  labels = np.concatenate([np.ones(len(member_features)),
                           np.zeros(len(nonmember_features))])
  clf = SVC(C=3, gamma="auto", kernel="rbf")
  clf.fit(features, labels)
  return float(np.mean(clf.predict(target_features.reshape(len(target_features), -1))))


def shadow_member_index(num_retain: int, num_nonmembers: int,
                        seed: int) -> np.ndarray:
  """A seeded sample of D_r of the size of D_t,r (all of D_r if smaller)."""
  rng = np.random.default_rng(seed)
  size = min(num_retain, num_nonmembers)
  return np.sort(rng.choice(num_retain, size, replace=False))
