"""Forget / retain splits: D_f, D_r (train) and D_t,f, D_t,r (test).

Two kinds, chosen by ``config.forget.kind``:

- ``"class"``: every training example of ``classes`` is forgotten; the test
  split is divided into the forgotten classes (D_t,f) and the rest (D_t,r).
- ``"random"``: a seeded random subset of the training set, ``count``
  examples or a ``fraction`` of it; D_t,f is empty and D_t,r the whole test
  split.

The forget ids are saved next to the run (``forget_ids.json``), and a run
with ``kind="ids"`` + ``ids_file`` reproduces any split exactly.
"""
from __future__ import annotations

import json
import os
from typing import Sequence

import jax
import numpy as np

from jaxunlearn.batches import ForgetSplit, Split
from jaxunlearn.errors import UserError


def _partition(split: Split, in_forget: np.ndarray) -> tuple[Split, Split]:
  return split.take(np.flatnonzero(in_forget)), split.take(np.flatnonzero(~in_forget))


def class_forget_split(train: Split, test: Split, classes: Sequence[int],
                       num_classes: int) -> ForgetSplit:
  classes = tuple(int(c) for c in classes)
  if not classes:
    raise UserError("forget.classes is empty; name at least one class to forget")
  bad = [c for c in classes if not 0 <= c < num_classes]
  if bad:
    raise UserError(f"forget class {bad[0]} is out of range: the dataset has "
                    f"classes 0..{num_classes - 1}")
  if len(set(classes)) == num_classes:
    raise UserError("forget.classes names every class; nothing would remain")
  forget, retain = _partition(train, np.isin(train.labels, classes))
  test_forget, test_retain = _partition(test, np.isin(test.labels, classes))
  if len(forget) == 0:
    raise UserError(f"the forget set is empty: no training example has class "
                    f"{classes}")
  return ForgetSplit(forget, retain, test_forget, test_retain, classes)


def random_forget_split(train: Split, test: Split, key: jax.Array,
                        count: int = 0, fraction: float = 0.0) -> ForgetSplit:
  n = len(train)
  if count <= 0:
    if not 0.0 < fraction < 1.0:
      raise UserError("random forgetting needs forget.count > 0 or "
                      "0 < forget.fraction < 1")
    count = int(round(fraction * n))
  if count <= 0:
    raise UserError(f"the forget set is empty: forget.fraction={fraction} of "
                    f"{n} examples rounds to 0; raise it or set forget.count")
  if count >= n:
    raise UserError(f"forget.count={count} leaves no retain data (train has {n})")
  chosen = np.asarray(jax.random.choice(key, n, (count,), replace=False))
  in_forget = np.zeros(n, bool)
  in_forget[chosen] = True
  forget, retain = _partition(train, in_forget)
  return ForgetSplit(forget, retain, test.take(np.zeros(0, np.int64)), test, None)


def ids_forget_split(train: Split, test: Split, ids: Sequence[int]) -> ForgetSplit:
  ids = np.asarray(ids, np.int64)
  if ids.size == 0:
    raise UserError("the forget id list is empty")
  unknown = np.setdiff1d(ids, train.ids)
  if unknown.size:
    raise UserError(f"forget id {int(unknown[0])} is not in the training split")
  forget, retain = _partition(train, np.isin(train.ids, ids))
  return ForgetSplit(forget, retain, test.take(np.zeros(0, np.int64)), test, None)


def hold_out(train: Split, count: int, key: jax.Array) -> tuple[Split, Split]:
  """(train without ``count`` random examples, those examples).

  The held-out examples stand in for the test split when hyperparameters
  are chosen (``config.validation``): they were never trained on, so they are
  non-members for the membership attacks as the test split is, and the
  reported test split stays unseen by the tuning."""
  n = len(train)
  if not 0 < count < n:
    raise UserError(f"validation={count} must be between 1 and the training "
                    f"split's size - 1 ({n - 1}); 0 turns it off")
  chosen = np.asarray(jax.random.choice(key, n, (count,), replace=False))
  held = np.zeros(n, bool)
  held[chosen] = True
  validation, rest = _partition(train, held)
  return rest, validation


def make_forget_split(forget_cfg, train: Split, test: Split, num_classes: int,
                      key: jax.Array) -> ForgetSplit:
  """Builds the split named by ``config.forget`` (kind: class, random or ids)."""
  kind = forget_cfg.kind
  if kind in ("class", "identity"):  # identity datasets: classes are identities
    if kind == "identity" and forget_cfg.get("identities", None) is not None:
      return class_forget_split(train, test, forget_cfg.identities, num_classes)
    return class_forget_split(train, test, forget_cfg.classes, num_classes)
  if kind == "random":
    return random_forget_split(train, test, key, forget_cfg.get("count", 0),
                               forget_cfg.get("fraction", 0.0))
  if kind == "ids":
    path = forget_cfg.get("ids_file", "")
    if not path or not os.path.exists(path):
      raise UserError(f"forget.kind='ids' needs forget.ids_file; {path!r} not found")
    with open(path) as f:
      return ids_forget_split(train, test, json.load(f)["forget_ids"])
  raise UserError(f"unknown forget.kind {kind!r}; use class, identity, random "
                  "or ids (backdoor forgetting is config.task='backdoor')")


def save_forget_ids(path: str, split: ForgetSplit, spec: dict) -> None:
  """Writes the forget ids (and the spec that chose them) atomically."""
  payload = {"spec": spec, "forget_ids": [int(i) for i in split.forget.ids]}
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f)
  os.replace(tmp, path)
