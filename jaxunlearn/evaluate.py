"""Evaluation: named evaluators over cached predictions (big_vision style).

An evaluator is a function ``evaluator(ctx, role) -> Iterator[(name, value)]``
registered under a name in ``EVALUATORS``; ``config.eval.evaluators`` lists
the ones a run uses, and every pair lands in ``report.json`` under
``models[role][name]``. ``ctx.outputs(role, split)`` runs one jitted,
sharded inference pass per (model, split) and caches it, so evaluators share
the work; attack classifiers are fitted on the host on the small per-sample
arrays only.

Roles: ``original``, ``unlearned``, ``retrained`` (each a variables dict).
Splits: ``forget`` (D_f), ``retain`` (D_r), ``test_forget`` (D_t,f),
``test_retain`` (D_t,r), ``test`` (D_t = D_t,f + D_t,r).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from jax.sharding import Mesh

from jaxunlearn.data import pipeline
from jaxunlearn.data.pipeline import Split
from jaxunlearn.data.splits import ForgetSplit
from jaxunlearn.metrics import mia
from jaxunlearn.metrics.predict import make_predict_fn, predict
from jaxunlearn.registry import Registry

GAP_METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_threshold")
DEFAULT_EVALUATORS = ("accuracy", "mia_efficacy", "mia_threshold")

Evaluator = Callable[["EvalContext", str], Iterator[tuple[str, Any]]]
EVALUATORS: Registry[Evaluator] = Registry("evaluator")


@dataclasses.dataclass
class Outputs:
  logits: np.ndarray
  features: np.ndarray
  labels: np.ndarray


@dataclasses.dataclass
class EvalContext:
  """What evaluators see: the models, the data, cached predictions."""
  model: Any
  models: dict[str, Optional[dict]]  # role -> variables
  data: ForgetSplit
  mesh: Mesh
  num_classes: int
  batch_size: int = 256
  seed: int = 0
  config: Any = None                 # config.eval (evaluator options)
  workdir: Optional[str] = None      # for evaluators that save curves/plots
  extras: dict = dataclasses.field(default_factory=dict)  # e.g. train recipe
  _cache: dict = dataclasses.field(default_factory=dict)
  _predict_fn: Any = None

  def split(self, name: str) -> Split:
    if name == "test":
      d = self.data
      return pipeline.concat([d.test_forget, d.test_retain])
    return getattr(self.data, name)

  def outputs(self, role: str, split: str) -> Outputs:
    """Logits and features of model ``role`` on ``split`` (computed once)."""
    if (role, split) not in self._cache:
      if split == "test":
        parts = [p for p in (self.outputs(role, "test_forget"),
                             self.outputs(role, "test_retain")) if len(p.labels)]
        self._cache[(role, split)] = Outputs(
            *(np.concatenate([getattr(p, f) for p in parts])
              for f in ("logits", "features", "labels")))
      else:
        if self._predict_fn is None:
          self._predict_fn = make_predict_fn(self.model, self.mesh)
        data = self.split(split)
        if len(data) == 0:
          out = Outputs(np.zeros((0, self.num_classes), np.float32),
                        np.zeros((0, 0), np.float32), data.labels)
        else:
          logits, features = predict(self._predict_fn, self.models[role], data,
                                     self.batch_size, self.mesh, with_features=True)
          out = Outputs(logits, features, data.labels)
        self._cache[(role, split)] = out
    return self._cache[(role, split)]

  @property
  def class_forgetting(self) -> bool:
    return self.data.forget_classes is not None


def accuracy(logits: np.ndarray, labels: np.ndarray) -> Optional[float]:
  if len(labels) == 0:
    return None
  return float(np.mean(np.argmax(logits, -1) == labels))


@EVALUATORS.register("accuracy")
def accuracy_evaluator(ctx: EvalContext, role: str):
  """forget_acc, retain_acc, test_acc, test_forget_acc, test_retain_acc."""
  for key, split in (("forget_acc", "forget"), ("retain_acc", "retain"),
                     ("test_acc", "test")):
    out = ctx.outputs(role, split)
    yield key, accuracy(out.logits, out.labels)
  for key, split in (("test_forget_acc", "test_forget"),
                     ("test_retain_acc", "test_retain")):
    out = ctx.outputs(role, split) if ctx.class_forgetting else None
    yield key, None if out is None else accuracy(out.logits, out.labels)


def shadow_outputs(ctx: EvalContext, role: str, nonmember_split: str = "test_retain"
                   ) -> tuple[Outputs, Outputs, Outputs]:
  """(members, non-members, target) for a membership attack on ``role``:
  a seeded sample of D_r the size of ``nonmember_split``, that split, D_f."""
  retain, non, forget = (ctx.outputs(role, s)
                         for s in ("retain", nonmember_split, "forget"))
  idx = mia.shadow_member_index(len(retain.labels), len(non.labels), ctx.seed)
  members = Outputs(retain.logits[idx], retain.features[idx], retain.labels[idx])
  return members, non, forget


def _attack(name: str, fit: mia.Fit, feature, ctx: EvalContext, role: str):
  """``name`` (fraction of D_f called member), ``name_attack_acc`` (held-out
  balanced accuracy on the shadow sets) and ``name_signal`` (bool, not a
  table column: whether that accuracy is above chance)."""
  members, non, forget = (feature(o.logits, o.labels)
                          for o in shadow_outputs(ctx, role))
  acc = mia.attack_accuracy(fit, members, non, ctx.seed)
  yield name, mia.member_fraction(fit, members, non, forget)
  yield f"{name}_attack_acc", acc
  yield f"{name}_signal", mia.has_signal(acc, len(members) + len(non))


@EVALUATORS.register("mia_efficacy")
def mia_efficacy_evaluator(ctx: EvalContext, role: str):
  """SalUn / DELETE's SVC on the true-class confidence: fraction of D_f
  called 'member' (for comparison with those papers; see ``mia``)."""
  yield from _attack("mia_efficacy", mia.fit_svc, mia.confidence, ctx, role)


@EVALUATORS.register("mia_threshold")
def mia_threshold_evaluator(ctx: EvalContext, role: str):
  """A threshold on the logit-scaled confidence, fitted on the shadow sets:
  fraction of D_f called 'member' (monotone, so it does not depend on the
  CPU; the MIA of the gap to the retrained model)."""
  yield from _attack("mia_threshold", mia.fit_threshold, mia.logit_confidence,
                     ctx, role)


def avg_gap(metrics: dict, reference: dict,
            keys: Sequence[str] = GAP_METRICS) -> float:
  """Mean absolute difference to the retrained model over ``keys``."""
  gaps = [abs(metrics[k] - reference[k]) for k in keys
          if metrics.get(k) is not None and reference.get(k) is not None]
  return float(np.mean(gaps)) if gaps else float("nan")


def evaluate(ctx: EvalContext, evaluators: Sequence[str] = DEFAULT_EVALUATORS,
             gap_metrics: Sequence[str] = GAP_METRICS) -> dict:
  """{role: {name: value}} for every model present, plus ``avg_gap``."""
  results: dict[str, Optional[dict]] = {}
  fns = [(name, EVALUATORS.get(name)) for name in evaluators]
  for role, variables in ctx.models.items():
    if variables is None:
      results[role] = None
      continue
    results[role] = {}
    for _, fn in fns:
      results[role].update(fn(ctx, role))
  if results.get("retrained") is not None:
    for role, metrics in results.items():
      if metrics is not None:
        metrics["avg_gap"] = avg_gap(metrics, results["retrained"], gap_metrics)
  return results


def _import_evaluator_modules() -> None:
  """Every module in jaxunlearn/metrics/ may register evaluators."""
  import importlib
  import pkgutil

  import jaxunlearn.metrics as pkg
  for info in pkgutil.iter_modules(pkg.__path__):
    importlib.import_module(f"jaxunlearn.metrics.{info.name}")


_import_evaluator_modules()
