"""DLFD's gate: the authors' ``MIA(model, retain, forget_test, val)``.

After every ``gate_every`` steps the driver evaluates the forgetting score
(``metrics.forgetting``: validation losses then D_f losses, unbalanced,
10-fold logistic regression) on the validation set vs all of D_f, and the
accuracy on the same validation set: the score decides whether the next
step synthesises, and both decide which model is kept. The authors refit
sklearn's logistic regression after every step; here the per-sample losses
come from one jitted pass and the 10 folds are fitted in JAX by Newton's
method (``metrics.forgetting.forgetting_score_jax``). The task carries no
validation split, so a seeded ``val_fraction`` of D_t is the validation set
(the reported test accuracy still uses all of D_t: selection has seen part
of it; say so when comparing).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxunlearn import batches, parallel
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.losses import cross_entropy
from jaxunlearn.metrics import forgetting
from jaxunlearn.state import apply_eval


def _gate_batch(split: Split, index: np.ndarray, batch: int) -> dict:
  """``index`` of ``split`` as one host batch padded to a multiple of
  ``batch`` (``batches.make_batch``). Every row is read: the gate's arrays
  are replicated, while ``make_batch`` decodes only this process's rows of
  lazy images."""
  part = split.take(index)
  part = Split(np.asarray(part.images), part.labels, part.ids)
  return batches.make_batch(part, np.arange(len(index)),
                            batches.num_batches(len(index), batch) * batch)


def gate_sizes(data, cfg) -> tuple[int, int]:
  """(|D_f|, number of validation samples) the gate's score compares."""
  n_test = len(data.test_forget) + len(data.test_retain)
  return len(data.forget), int(round(cfg.val_fraction * n_test))


def score_floor(n_forget: int, n_val: int) -> float:
  """|n_f / (n_f + n_v) - 0.5|: the unbalanced score of a regression that
  gives every sample the larger set's label, about what a model that leaks
  nothing scores. A ``forget_threshold`` not above it keeps the gate
  synthesising (it closes only by chance); a ``max_forgetting_score`` under
  it selects no model."""
  return abs(n_forget / (n_forget + n_val) - 0.5)


def gate_sets(data, cfg, seed: int):
  """The gate's samples: (test split = D_t,f + D_t,r, validation indices
  into it (a seeded ``val_fraction``, in test order), MIA labels: 0 = the
  validation samples, 1 = all of D_f in its order). As in the authors' loop
  (``MIA(model, retain, forget_test, val)``), the validation set is both the
  unseen set of the forgetting score and the set of the selection accuracy."""
  test = batches.concat([data.test_forget, data.test_retain])
  rng = np.random.default_rng(seed)
  _, n_val = gate_sizes(data, cfg)
  val_idx = np.sort(rng.permutation(len(test))[:n_val])
  if n_val < 10 or len(data.forget) < 10:
    raise UserError("dlfd: need >= 10 forget and validation (test) samples; "
                    "raise dlfd.val_fraction or enlarge the forget set")
  _, labels = forgetting.authors_samples(np.zeros(len(data.forget)),
                                         np.zeros(n_val))
  return test, val_idx, labels


class GateInputs(NamedTuple):
  """The gate's host arrays (``gate_inputs``)."""
  forget: dict       # D_f: image, label, mask, padded to eval_batch_size
  val: dict          # the validation samples, likewise
  labels: np.ndarray       # MIA labels of [validation losses, D_f losses]
  train_index: np.ndarray  # the 10 folds (``forgetting.cv_splits``)
  test_index: np.ndarray


def gate_inputs(data, cfg, seed: int) -> GateInputs:
  """The samples of ``gate_sets`` as padded batches, with the MIA labels and
  the folds of the forgetting score."""
  test, val_idx, labels = gate_sets(data, cfg, seed)
  train_index, test_index = forgetting.cv_splits(labels)
  b = cfg.eval_batch_size
  return GateInputs(_gate_batch(data.forget, np.arange(len(data.forget)), b),
                    _gate_batch(test, val_idx, b), labels, train_index, test_index)


def losses_and_correct(model, variables, images, labels, batch_size: int):
  """Per-sample cross-entropy and correctness in inference mode, over
  ``images`` in chunks of ``batch_size`` (``lax.map``: one program whatever
  the number of samples)."""
  def chunk(args):
    img, lab = args
    logits, _ = apply_eval(model, variables, img)
    return cross_entropy(logits, lab), jnp.argmax(logits, -1) == lab
  shape = images.shape
  loss, correct = jax.lax.map(chunk, (images.reshape(-1, batch_size, *shape[1:]),
                                      labels.reshape(-1, batch_size)))
  return loss.reshape(-1), correct.reshape(-1)


def make_gate(model, data, cfg, seed: int, mesh: Optional[Mesh] = None):
  """gate(variables) -> (FS, val accuracy) on device; one jitted call (its
  arrays replicated on ``mesh``). FS follows the authors' MIA() protocol
  (``metrics.forgetting``) on the validation set vs D_f, with the 10-fold
  logistic regression fitted in JAX (``forgetting.forgetting_score_jax``;
  ``benchmarks/dlfd_gate.py`` times it against the authors' sklearn refit)."""
  inputs = gate_inputs(data, cfg, seed)
  b = cfg.eval_batch_size
  nf, nv = int(inputs.forget["mask"].sum()), int(inputs.val["mask"].sum())
  consts = jax.device_put(
      dict(f=(inputs.forget["image"], inputs.forget["label"]),
           v=(inputs.val["image"], inputs.val["label"]), labels=inputs.labels,
           tr=inputs.train_index, te=inputs.test_index),
      parallel.replicated(mesh) if mesh is not None else None)

  @jax.jit
  def gate(variables, c):
    f_loss, _ = losses_and_correct(model, variables, *c["f"], b)
    v_loss, v_correct = losses_and_correct(model, variables, *c["v"], b)
    losses = jnp.concatenate([v_loss[:nv], f_loss[:nf]])
    score = forgetting.forgetting_score_jax(losses, c["labels"], c["tr"], c["te"])
    return score, jnp.mean(v_correct[:nv])

  return lambda variables: gate(variables, consts)
