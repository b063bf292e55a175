"""The evaluation suite the peers report: top-k accuracy, per-feature MIA,
entropy MIA, ZRF / JS divergence / activation distance, and RTE.

Every metric is a pure NumPy function of per-sample arrays (testable on its
own); the evaluators below only fetch ``ctx.outputs(role, split)`` and call
them. Splits: D_f (``forget``), D_r (``retain``), D_t,r (``test_retain``),
D_t (``test``). Probabilities are softmaxes of the logits in float64; logs
are natural (JS divergence in nats, bounded by ln 2).
"""
from __future__ import annotations

from typing import Optional

import jax
import ml_collections
import numpy as np
from scipy.special import rel_entr, softmax

from jaxunlearn.metrics.evaluators import register, shadow_outputs
from jaxunlearn.metrics import mia
from jaxunlearn.models import init_variables

MIA_FEATURES = ("correctness", "confidence", "entropy", "m_entropy", "prob")
RANDOM_ROLE = "random_init"   # ZRF's reference model (cached under this role)
ZRF_KEY = 0x2F               # fold_in(key(seed), ZRF_KEY) initialises it
_LOG_FLOOR = 1e-30            # log(max(x, 1e-30)), as the peers clip


def probabilities(logits: np.ndarray) -> np.ndarray:
  """softmax(logits) in float64, shape [N, C]."""
  return softmax(np.asarray(logits, np.float64), axis=-1)


def _log(x: np.ndarray) -> np.ndarray:
  return np.log(np.maximum(x, _LOG_FLOOR))


# ----------------------------------------------------------------- top-k


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> Optional[float]:
  """mean_i [y_i among the k largest logits of sample i].

  Rank form: correct iff fewer than k classes have a strictly larger logit
  than the true class (equal to ``argsort(-logits)[:, :k]`` without ties; a
  tie at the boundary counts as correct, as ``torch.topk`` may)."""
  if len(labels) == 0:
    return None
  logits = np.asarray(logits)
  true = logits[np.arange(len(labels)), labels][:, None]
  return float(np.mean(np.sum(logits > true, axis=-1) < k))


# --------------------------------------------------- per-sample MIA features


def correctness(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """1[argmax_i p_i = y], shape [N, 1]."""
  return (np.argmax(probs, -1) == labels).astype(np.float64)[:, None]


def entropy(probs: np.ndarray) -> np.ndarray:
  """H(p) = -Σ_i p_i log p_i (0 log 0 = 0), shape [N, 1]."""
  return -np.sum(np.where(probs > 0, probs * _log(probs), 0.0), -1, keepdims=True)


def m_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Modified entropy of Song & Mittal (USENIX Security 2021), shape [N, 1]:

    Mentr(p, y) = -(1 - p_y) log(p_y) - Σ_{i≠y} p_i log(1 - p_i).

  The peers' code (SalUn's ``evaluation/SVC_MIA.py``, copied by later
  papers) computes something else, reproduced in ``m_entropy_peers``: its
  "log of the reverse probability" is ``log p`` instead of ``log(1 - p)``,
  and ``x[:, labels]`` swaps in the reverse terms for *every column that is
  the label of any sample in the batch*, not for each sample's own label."""
  n = len(labels)
  log_p, log_rev = _log(probs), _log(1.0 - probs)
  py = probs[np.arange(n), labels]
  terms = probs * log_rev
  terms[np.arange(n), labels] = (1.0 - py) * log_p[np.arange(n), labels]
  return -np.sum(terms, -1, keepdims=True)


def m_entropy_peers(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """The peers' (buggy) modified entropy, for comparison only (see
  ``m_entropy``): -Σ_i q_i log p_i with q_i = 1 - p_i if i is the label of
  any sample of the batch, else p_i."""
  cols = np.unique(labels)
  q = probs.copy()
  q[:, cols] = 1.0 - probs[:, cols]
  return -np.sum(q * _log(probs), -1, keepdims=True)


def mia_feature(name: str, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """One of ``MIA_FEATURES`` per sample, shape [N, d] (d = C for 'prob'),
  from the probabilities of ``logits``."""
  if name == "confidence":
    return mia.confidence(logits, labels)
  probs = probabilities(logits)
  if name == "correctness":
    return correctness(probs, labels)
  if name == "entropy":
    return entropy(probs)
  if name == "m_entropy":
    return m_entropy(probs, labels)
  if name == "prob":
    return probs
  raise ValueError(f"unknown MIA feature {name!r}; one of {MIA_FEATURES}")


def entropy_mia(member_entropy: np.ndarray, nonmember_entropy: np.ndarray,
                target_entropy: np.ndarray) -> float:
  """Fraction of ``target`` a logistic regression (class_weight='balanced',
  lbfgs) on the entropy calls 'member' (SSD / bad-teacher's
  ``get_membership_attack_prob``; lower = more forgotten)."""
  from sklearn.linear_model import LogisticRegression
  if min(len(member_entropy), len(nonmember_entropy), len(target_entropy)) == 0:
    return float("nan")
  x = np.concatenate([member_entropy, nonmember_entropy]).reshape(-1, 1)
  y = np.concatenate([np.ones(len(member_entropy)), np.zeros(len(nonmember_entropy))])
  clf = LogisticRegression(class_weight="balanced", solver="lbfgs")
  clf.fit(x, y)
  return float(np.mean(clf.predict(np.reshape(target_entropy, (-1, 1)))))


# ------------------------------------------------- distances between outputs


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Per-sample Jensen-Shannon divergence in nats (natural log), shape [N]:

    JS(p, q) = ½ KL(p ‖ m) + ½ KL(q ‖ m),   m = (p + q) / 2,   0 ≤ JS ≤ ln 2.

  Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2`` (base e).
  Bad-teacher's ``JSDiv`` uses ``F.kl_div(log p, m)`` with the default
  'mean' reduction, i.e. divides the sum over classes by N·C (and averages
  per batch); we sum over classes and average over samples."""
  m = 0.5 * (p + q)
  return 0.5 * np.sum(rel_entr(p, m), -1) + 0.5 * np.sum(rel_entr(q, m), -1)


def zrf(probs: np.ndarray, random_probs: np.ndarray) -> Optional[float]:
  """Zero Retrain Forgetting (Chundawat et al., bad teacher, AAAI 2023):
  ZRF = 1 - mean_i JS(p_i, p^rand_i) on D_f, p^rand from a randomly
  initialised model of the same architecture (1 = as ignorant as random)."""
  if len(probs) == 0:
    return None
  return float(1.0 - np.mean(js_divergence(probs, random_probs)))


def mean_js(probs: np.ndarray, other: np.ndarray) -> Optional[float]:
  """mean_i JS(p_i, q_i) (nats)."""
  return None if len(probs) == 0 else float(np.mean(js_divergence(probs, other)))


def activation_distance(probs: np.ndarray, other: np.ndarray) -> Optional[float]:
  """mean_i ‖p_i - q_i‖_2 between softmax outputs (bad teacher / SCRUB's
  ``actv_dist``)."""
  if len(probs) == 0:
    return None
  return float(np.mean(np.sqrt(np.sum(np.square(probs - other), -1))))


# --------------------------------------------------------------- evaluators


def topk_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(k=5))


@register("topk_accuracy", topk_config)
def topk_accuracy_evaluator(ctx, role: str, options):
  """forget_top{k}_acc, retain_top{k}_acc, test_top{k}_acc;
  k = min(config.eval.topk_accuracy.k (default 5), num_classes)."""
  k = int(min(options.k, ctx.num_classes))
  for split in ("forget", "retain", "test"):
    out = ctx.outputs(role, split)
    yield f"{split}_top{k}_acc", topk_accuracy(out.logits, out.labels, k)


@register("mia_features")
def mia_features_evaluator(ctx, role: str, options=None):
  """``mia`` = {feature: value} for each of ``MIA_FEATURES``: the SVC of
  ``mia.svc_mia`` (members = seeded D_r sample the size of D_t,r,
  non-members = D_t,r), reported as the fraction of D_f predicted *member*
  (lower = more forgotten), the convention of ``mia_efficacy`` (which equals
  ``mia["confidence"]``) and of ../shared/METHODS.md (SalUn's code prints the
  non-member fraction, i.e. ``1 -`` this)."""
  members, non, target = ((o.logits, o.labels)
                          for o in shadow_outputs(ctx, role, "test_retain"))
  yield "mia", {name: mia.svc_mia(mia_feature(name, *members), mia_feature(name, *non),
                                  mia_feature(name, *target))
                for name in MIA_FEATURES}


@register("entropy_mia")
def entropy_mia_evaluator(ctx, role: str, options=None):
  """entropy_mia: fraction of D_f called 'member' by a balanced logistic
  regression on the entropy; members = seeded D_r sample the size of D_t,
  non-members = D_t (SSD / bad-teacher convention; lower = more forgotten)."""
  members, non, target = (entropy(probabilities(o.logits))
                          for o in shadow_outputs(ctx, role, "test"))
  yield "entropy_mia", entropy_mia(members, non, target)


def random_init_variables(ctx) -> dict:
  """Variables of ``ctx.model`` from ``fold_in(key(ctx.seed), ZRF_KEY)``,
  initialised on a zero image batch shaped like the data."""
  key = jax.random.fold_in(jax.random.key(ctx.seed), ZRF_KEY)
  return init_variables(ctx.model, ctx.data.retain.images.shape[1:], key)


def _random_logits(ctx, split: str) -> np.ndarray:
  """Logits of the random-init model on ``split``, cached in ``ctx`` (under
  role ``RANDOM_ROLE``)."""
  variables = ctx.cached((RANDOM_ROLE, "variables"),
                         lambda: random_init_variables(ctx))
  logits = ctx.cached((RANDOM_ROLE, split),
                      lambda: ctx.predict(variables, ctx.split(split)))
  return logits


@register("zrf")
def zrf_evaluator(ctx, role: str, options=None):
  """zrf on D_f (vs a random-init model); js_to_retrained and
  activation_distance to the retrained model on D_f (None without it)."""
  probs = probabilities(ctx.outputs(role, "forget").logits)
  yield "zrf", zrf(probs, probabilities(_random_logits(ctx, "forget")))
  if ctx.models.get("retrained") is None:
    yield "js_to_retrained", None
    yield "activation_distance", None
    return
  ref = probabilities(ctx.outputs("retrained", "forget").logits)
  yield "js_to_retrained", mean_js(probs, ref)
  yield "activation_distance", activation_distance(probs, ref)


PHASE_OF_ROLE = {"original": "pretrain", "retrained": "retrain",
                 "unlearned": "unlearn"}


def rte(phase_seconds: dict, role: str) -> tuple[Optional[float], Optional[float]]:
  """(run-time efficiency in seconds of the phase that made ``role``, its
  ratio to retraining); None where a time is missing."""
  seconds = phase_seconds.get(PHASE_OF_ROLE.get(role))
  retrain = phase_seconds.get("retrain")
  ratio = seconds / retrain if seconds is not None and retrain else None
  return seconds, ratio


@register("rte")
def rte_evaluator(ctx, role: str, options=None):
  """phase_seconds (wall seconds of the phase that made the model: pretrain /
  retrain / unlearn, from ``ctx.phase_seconds``) and
  phase_vs_retrain (÷ retrain seconds). The run's ``rte`` (retrain seconds /
  unlearn seconds) is at the top level of report.json."""
  seconds, ratio = rte(ctx.phase_seconds, role)
  yield "phase_seconds", seconds
  yield "phase_vs_retrain", ratio
