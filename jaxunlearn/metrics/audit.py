"""Per-example membership audit: U-LiRA (and offline LiRA) with shadow models.

Carlini et al., "Membership Inference Attacks From First Principles" (LiRA,
S&P 2022); Hayes et al., "Inexact Unlearning Needs More Careful Evaluations
to Avoid a False Sense of Privacy" (U-LiRA, 2024).

The question: given the unlearned model, can an attacker tell a forgotten
training example (in D_f) from an example the model never saw? The audited
pool ``P`` is D_f (label 1) plus unseen examples (label 0): the test images
of the forgotten classes for class forgetting, else the rest of the test set
(at most ``max_unseen`` of them, a seeded sample, when set: forgetting k
instances against a whole test set would make every shadow unlearn
thousands of test images where the audited model unlearned k).

Shadow models (``num_shadows``, even): each example of ``P`` lands in exactly
half of them (Carlini's balanced assignment, seeded). Shadow ``k`` is trained
with the run's recipe on ``D_r`` plus its half ``H_k`` of ``P``; for
``kind="ulira"`` it is then unlearned with the run's own method and config,
``H_k`` being its forget set. So every example gets ``K/2`` statistics "in,
then unlearned" and ``K/2`` statistics "never seen" (``kind="lira_offline"``
skips the unlearning and uses only the "never seen" ones: cheaper, weaker).

The statistic is the logit-scaled confidence ``phi = log p_y - log(1 - p_y)``
(computed from logits as ``z_y - logsumexp_{j != y} z_j``). The U-LiRA score
is the Gaussian log-likelihood ratio ``log N(phi; mu_in, s_in) - log N(phi;
mu_out, s_out)`` with per-example means and, by default, one variance per
side pooled over all examples (``fixed_variance``: recommended by Carlini et
al. when there are few shadows); offline LiRA scores ``(phi - mu_out) /
s_out``. Reported under ``audit`` per model: ``auc`` (0.5 = the forgotten
examples look exactly like unseen ones) and ``tpr_at_1fpr``.

U-LiRA's "in" side is calibrated on models that were unlearned, so it says
little about a model that never was (the original): a confidence above both
sides' means scores near neither. With ``kind="ulira"`` the same shadows,
taken *before* their unlearning, also give Carlini's online LiRA (the same
likelihood ratio, "in" = trained on it), reported under ``audit_trained``:
the attack that tells whether a model still behaves as one trained on D_f.
On the original it measures how much there is to forget; on a good
unlearned model it should read as on the retrained one. ``audit_threshold``
is the same pool scored by the model's own ``phi`` alone (one threshold for
every example, no shadows): the population-level signal the shadows'
per-example calibration has to improve on.

Expensive: ``num_shadows`` trainings (and unlearnings). Off by default; the
evaluator ``audit`` turns it on and ``configs/audit_digits.py`` runs it on
the embedded data in minutes. Shadow models are checkpointed in the run's
checkpoint directory, so a killed audit resumes and a second run reuses them.
``jaxunlearn.run.run(..., shadow_keep=DIR)`` also writes each finished
shadow's statistics to ``DIR/shadow<k>.npz`` (kilobytes, where a checkpoint
is megabytes) and reads them back instead of training that shadow: an audit
longer than the life of one machine's workdir goes on from where it stopped
on another.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import jax
import ml_collections
import numpy as np

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.metrics.evaluators import register
from jaxunlearn.metrics.mia import logit_confidence


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      kind="ulira",          # ulira | lira_offline
      num_shadows=8,         # even; each example is "in" for half of them
      fixed_variance=True,   # one variance per side (few shadows)
      epochs=0,              # shadow training epochs; 0 = the run's recipe
      max_unseen=0,          # unseen examples in the pool; 0 = the whole split
  ))


def balanced_assignment(key: jax.Array, num_shadows: int, num_examples: int
                        ) -> np.ndarray:
  """[K, N] bool: example n is in shadow k's training half; every column has
  exactly K/2 True, drawn uniformly."""
  if num_shadows < 2 or num_shadows % 2:
    raise UserError(f"eval.audit.num_shadows={num_shadows}: use an even number "
                    ">= 2 (each example is in half of the shadow models)")
  ranks = np.argsort(np.asarray(jax.random.uniform(
      key, (num_shadows, num_examples))), axis=0)
  return ranks < num_shadows // 2


def _gaussian_logpdf(x, mean, std):
  return -0.5 * ((x - mean) / std) ** 2 - np.log(std)


def lira_scores(target_phi: np.ndarray, shadow_phi: np.ndarray,
                shadow_in: np.ndarray, kind: str = "ulira",
                fixed_variance: bool = True) -> np.ndarray:
  """Per-example membership scores (higher = "was trained on").

  ``shadow_phi`` [K, N] statistics of the shadow models, ``shadow_in`` [K, N]
  which shadows had the example in their training half.
  """
  def side(mask):
    count = mask.sum(0)
    mean = (shadow_phi * mask).sum(0) / np.maximum(count, 1)
    resid = (shadow_phi - mean) * mask
    if fixed_variance:
      std = np.sqrt((resid ** 2).sum() / max(mask.sum() - 1, 1))
      std = np.full_like(mean, std)
    else:
      std = np.sqrt((resid ** 2).sum(0) / np.maximum(count - 1, 1))
    return mean, np.maximum(std, 1e-6)

  out_mean, out_std = side(~shadow_in)
  if kind == "lira_offline":
    return (target_phi - out_mean) / out_std
  if kind != "ulira":
    raise UserError(f"unknown eval.audit.kind {kind!r}; use ulira or lira_offline")
  in_mean, in_std = side(shadow_in)
  return (_gaussian_logpdf(target_phi, in_mean, in_std)
          - _gaussian_logpdf(target_phi, out_mean, out_std))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """Area under the ROC curve of members (label 1) against non-members
  (label 0), ties counting one half; nan without both."""
  from sklearn.metrics import roc_auc_score  # slow to import: only when used
  if len(np.unique(labels)) < 2:
    return float("nan")
  return float(roc_auc_score(labels, scores))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = 0.01) -> float:
  """Largest TPR over thresholds whose FPR is <= ``fpr``; nan without both
  classes."""
  from sklearn.metrics import roc_curve
  if len(np.unique(labels)) < 2:
    return float("nan")
  # Every threshold kept: dropping collinear points could drop the one
  # that sits exactly at the FPR bound.
  fprs, tprs, _ = roc_curve(labels, scores, drop_intermediate=False)
  return float(tprs[fprs <= fpr].max())


def _concat(*splits: Split) -> Split:
  return Split(*(np.concatenate([getattr(s, f) for s in splits])
                 for f in ("images", "labels", "ids")))


def audit_pool(ctx, max_unseen: int = 0
               ) -> tuple[str, np.ndarray, Split, np.ndarray]:
  """(name of the unseen split, the indices of it in the pool, the pool P =
  D_f + those unseen examples, member labels). With ``max_unseen`` > 0, at
  most that many unseen examples, drawn from the seed (sorted)."""
  unseen = "test_forget" if ctx.class_forgetting else "test_retain"
  forget, other = ctx.split("forget"), ctx.split(unseen)
  if len(other) == 0:
    raise UserError("the audit needs unseen examples of the forgotten data "
                    f"({unseen} is empty)")
  index = np.arange(len(other))
  if 0 < max_unseen < len(other):
    key = jax.random.fold_in(jax.random.key(ctx.seed), 0xA0D15)
    index = np.sort(np.asarray(jax.random.choice(key, len(other), (max_unseen,),
                                                 replace=False)))
    other = other.take(index)
  labels = np.concatenate([np.ones(len(forget), int), np.zeros(len(other), int)])
  return unseen, index, _concat(forget, other), labels


def shadow_statistics(ctx, cfg: ml_collections.ConfigDict) -> dict:
  """Trains (and unlearns) the shadow models once per run; [K, N] phi."""
  return ctx.cached("audit", lambda: _shadow_statistics(ctx, cfg))


def unlearned_once(unlearn_fn, variables, data, key, directory):
  """``unlearn_fn(variables, data, key, directory)``, its result saved in
  ``directory + "-done"`` and restored from there when present: methods with
  loops of their own (L2UL, DLFD) keep no checkpoint in ``directory``, so a
  resumed audit would otherwise unlearn every finished shadow again."""
  if directory is None:
    return unlearn_fn(variables, data, key, None)
  kept = ckpt_lib.load_result(directory + "-done", variables)
  if kept is not None:
    return kept
  variables = unlearn_fn(variables, data, key, directory)
  ckpt_lib.save_result(directory + "-done", variables)
  return variables


def kept_shadow(path: str, fingerprint: str, pool_ids: np.ndarray
                ) -> Optional[dict]:
  """A shadow's statistics kept at ``path`` (``keep_shadow``), or None when
  there are none; kept ones of another audit are an error, not reused."""
  if not os.path.exists(path):
    return None
  with np.load(path) as kept:
    kept = {name: kept[name] for name in kept.files}
  if str(kept["fingerprint"]) != fingerprint or not np.array_equal(
      kept["pool_ids"], pool_ids):
    raise UserError(f"{path} holds the statistics of a shadow of another audit "
                    "(other run config, pool or audit settings); delete it to "
                    "train that shadow again")
  return kept


def keep_shadow(path: str, fingerprint: str, pool_ids: np.ndarray,
                **arrays) -> None:
  """Writes one shadow's statistics to ``path`` (.npz, atomically)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    np.savez_compressed(f, fingerprint=np.asarray(fingerprint),
                        pool_ids=pool_ids, **arrays)
  os.replace(path + ".tmp", path)


def _shadow_statistics(ctx, cfg: ml_collections.ConfigDict) -> dict:
  train_fn, unlearn_fn = ctx.train_fn, ctx.unlearn_fn
  if train_fn is None or unlearn_fn is None:
    raise UserError("the audit evaluator needs the run's train and unlearn "
                    "functions (run it through jaxunlearn.run)")
  unseen, unseen_index, pool, labels = audit_pool(ctx, cfg.max_unseen)
  key = jax.random.fold_in(jax.random.key(ctx.seed), 0xA0D17)
  shadow_in = balanced_assignment(key, cfg.num_shadows, len(pool))
  root, keep = ctx.shadow_dir, ctx.shadow_keep
  # The checkpoint directory's name hashes everything the shadows depend
  # on (model, recipe, forget set, method and audit configs).
  fingerprint = f"{os.path.basename(root or '')} {cfg.kind} {cfg.num_shadows}"
  phis, trained_phis, restored = [], [], []
  for k in range(cfg.num_shadows):
    path = os.path.join(keep, f"shadow{k}.npz") if keep else None
    kept = kept_shadow(path, fingerprint, pool.ids) if keep else None
    if kept is not None:
      restored.append(k)
      trained_phis.append(kept["trained_phi"])
      if cfg.kind == "ulira":
        phis.append(kept["phi"])
      continue
    start = time.perf_counter()
    half = pool.take(np.flatnonzero(shadow_in[k]))
    k_train, k_unlearn = jax.random.split(jax.random.fold_in(key, k))
    directory = (lambda name: os.path.join(root, f"shadow{k}-{name}")
                 if root else None)
    variables = train_fn(_concat(ctx.data.retain, half), k_train,
                         directory("train"), cfg.epochs or None)
    trained_phis.append(logit_confidence(ctx.predict(variables, pool),
                                         pool.labels))
    if cfg.kind == "ulira":
      data = ctx.data._replace(forget=half)
      variables = unlearned_once(unlearn_fn, variables, data, k_unlearn,
                                 directory("unlearn"))
      phis.append(logit_confidence(ctx.predict(variables, pool), pool.labels))
    if keep and jax.process_index() == 0:
      extra = dict(phi=phis[-1]) if cfg.kind == "ulira" else {}
      keep_shadow(path, fingerprint, pool.ids, trained_phi=trained_phis[-1],
                  seconds=np.asarray(time.perf_counter() - start), **extra)
  trained_phi = np.stack(trained_phis)
  return dict(unseen=unseen, unseen_index=unseen_index, labels=labels,
              shadow_in=shadow_in, trained_phi=trained_phi, restored=restored,
              shadow_phi=np.stack(phis) if phis else trained_phi)


@register("audit", default_config, uses_method=True)
def audit_evaluator(ctx, role: str, cfg: ml_collections.ConfigDict):
  """audit = {auc, tpr_at_1fpr, setup} (setup: kind, shadows, pool sizes);
  with kind="ulira" also audit_trained = {auc, tpr_at_1fpr}: online LiRA
  against the shadows before their unlearning; audit_threshold = {auc,
  tpr_at_1fpr} of phi itself."""
  if cfg.kind not in ("ulira", "lira_offline"):
    raise UserError(f"unknown eval.audit.kind {cfg.kind!r}; use ulira or "
                    "lira_offline")
  stats = shadow_statistics(ctx, cfg)
  forget, other = (ctx.outputs(role, s) for s in ("forget", stats["unseen"]))
  index = stats["unseen_index"]
  target = np.concatenate([logit_confidence(forget.logits, forget.labels),
                           logit_confidence(other.logits[index], other.labels[index])])
  labels = stats["labels"]

  def attack(shadow_phi, kind):
    scores = lira_scores(target, shadow_phi, stats["shadow_in"], kind,
                         cfg.fixed_variance)
    return measured(scores)

  def measured(scores):
    return dict(auc=roc_auc(scores, labels),
                tpr_at_1fpr=tpr_at_fpr(scores, labels, 0.01))

  yield "audit", dict(**attack(stats["shadow_phi"], cfg.kind),
                      setup=(f"{cfg.kind}, {cfg.num_shadows} shadows, "
                             f"{int(labels.sum())} forgotten vs "
                             f"{int(len(labels) - labels.sum())} unseen "
                             f"({stats['unseen']})"))
  if cfg.kind == "ulira":
    # The same likelihood ratio with "in" = trained on it, not unlearned.
    yield "audit_trained", attack(stats["trained_phi"], "ulira")
  yield "audit_threshold", measured(target)

