"""Evaluation: named evaluators over cached predictions (big_vision style).

An evaluator is registered under a name with ``register(name,
default_config)``: a function ``fn(ctx, role, options) -> Iterator[(name,
value)]``. ``config.eval.evaluators`` lists the ones a run uses; each gets its
own options, ``default_config()`` updated with ``config.eval.<name>`` when the
run's config has that section. Every pair lands in ``report.json`` under
``models[role][name]``. ``ctx.outputs(role, split)`` runs one jitted, sharded
inference pass per (model, split) and caches it, so evaluators share the
work; attack classifiers are fitted on the host on the small per-sample
arrays only.

Roles: ``original``, ``unlearned``, ``retrained`` (each a variables dict).
Splits: ``forget`` (D_f), ``retain`` (D_r), ``test_forget`` (D_t,f),
``test_retain`` (D_t,r), ``test`` (D_t = D_t,f + D_t,r), and any extra split
the task names (``ctx.splits``, e.g. the backdoor's ``triggered`` test set).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxunlearn import batches
from jaxunlearn.batches import ForgetSplit, Split
from jaxunlearn.errors import Diverged, UserError
from jaxunlearn.metrics import mia
from jaxunlearn.metrics.predict import make_predict_fn, predict
from jaxunlearn.registry import Registry

GAP_METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_threshold")
DEFAULT_EVALUATORS = ("accuracy", "mia_efficacy", "mia_threshold")
CLASSIFIER_TASKS = ("classification", "backdoor", "face")
METRICS_DIR = os.path.dirname(os.path.abspath(__file__))  # every evaluator's module


class Evaluator(NamedTuple):
  fn: Callable[["EvalContext", str, ml_collections.ConfigDict],
               Iterator[tuple[str, Any]]]
  default_config: Callable[[], ml_collections.ConfigDict]
  # The tasks whose models it can judge (per-image logits: not segmentation).
  tasks: tuple[str, ...] = CLASSIFIER_TASKS
  # Whether its value for the original or retrained model depends on the
  # unlearning method too (the audit unlearns its shadow models with it), so
  # a stored evaluation of those models holds for that method only.
  uses_method: bool = False


EVALUATORS: Registry[Evaluator] = Registry("evaluator")


def register(name: str, default_config: Optional[Callable] = None,
             tasks: tuple[str, ...] = CLASSIFIER_TASKS, uses_method: bool = False):
  """Decorator: registers ``fn(ctx, role, options)`` as evaluator ``name``."""
  def decorator(fn):
    EVALUATORS.add(name, Evaluator(
        fn, default_config or ml_collections.ConfigDict, tuple(tasks),
        uses_method))
    return fn
  return decorator


def options_for(name: str, eval_config=None) -> ml_collections.ConfigDict:
  """The evaluator's defaults updated with ``eval_config.<name>`` (if any)."""
  options = EVALUATORS.get(name).default_config()
  given = None if eval_config is None else eval_config.get(name)
  if isinstance(given, (dict, ml_collections.ConfigDict)):
    options.update(dict(given))
  return options


@dataclasses.dataclass
class Outputs:
  logits: np.ndarray
  features: np.ndarray
  labels: np.ndarray


@dataclasses.dataclass
class EvalContext:
  """What evaluators see: the models, the data, the run's means of training,
  and cached predictions."""
  model: Any
  models: dict[str, Optional[dict]]  # role -> variables
  data: ForgetSplit
  mesh: Mesh
  num_classes: int
  batch_size: int = 256
  seed: int = 0
  eval_config: Any = None            # config.eval (the evaluators' sections)
  run_config: Any = None             # the whole run config (read only)
  workdir: Optional[str] = None      # for evaluators that save curves/plots
  task: str = "classification"
  splits: dict[str, Split] = dataclasses.field(default_factory=dict)
  # Training from scratch and unlearning as the run does them (the audit's
  # shadow models): train_fn(split, key, directory, epochs=None) -> variables,
  # unlearn_fn(variables, forget_split, key, directory) -> variables.
  train_fn: Optional[Callable] = None
  unlearn_fn: Optional[Callable] = None
  shadow_dir: Optional[str] = None   # where the audit keeps its shadow models
  shadow_keep: Optional[str] = None  # and each shadow's statistics (small)
  phase_seconds: dict = dataclasses.field(default_factory=dict)
  curves: dict = dataclasses.field(default_factory=dict)  # evaluator -> curves
  # A compiled ``make_predict_fn(model, mesh)`` to share between contexts.
  predict_fn: Optional[Callable] = None
  _cache: dict = dataclasses.field(default_factory=dict)

  def split(self, name: str) -> Split:
    if name == "test":
      d = self.data
      return batches.concat([d.test_forget, d.test_retain])
    if name in self.splits:
      return self.splits[name]
    return getattr(self.data, name)

  def cached(self, key, compute: Callable[[], Any]):
    """``compute()`` once per context under ``key`` (shared work)."""
    if key not in self._cache:
      self._cache[key] = compute()
    return self._cache[key]

  def predict(self, variables: dict, split: Split, with_features: bool = False):
    """Inference-mode logits (and features) of ``variables`` on ``split``."""
    if self.predict_fn is None:
      self.predict_fn = make_predict_fn(self.model, self.mesh)
    return predict(self.predict_fn, variables, split, self.batch_size, self.mesh,
                   with_features=with_features)

  def outputs(self, role: str, split: str) -> Outputs:
    """Logits and features of model ``role`` on ``split`` (computed once)."""
    def compute():
      if split == "test":
        parts = [p for p in (self.outputs(role, "test_forget"),
                             self.outputs(role, "test_retain")) if len(p.labels)]
        return Outputs(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("logits", "features", "labels")))
      data = self.split(split)
      if len(data) == 0:
        return Outputs(np.zeros((0, self.num_classes), np.float32),
                       np.zeros((0, 0), np.float32), data.labels)
      logits, features = self.predict(self.models[role], data, with_features=True)
      if not np.all(np.isfinite(logits)):
        raise Diverged(f"the {role} model's logits on {split} are NaN/inf: its "
                       "weights overflow; lower the learning rate that made it")
      return Outputs(logits, features, data.labels)
    return self.cached(("outputs", role, split), compute)

  @property
  def class_forgetting(self) -> bool:
    return self.data.forget_classes is not None


def accuracy(logits: np.ndarray, labels: np.ndarray) -> Optional[float]:
  if len(labels) == 0:
    return None
  return float(np.mean(np.argmax(logits, -1) == labels))


@register("accuracy")
def accuracy_evaluator(ctx: EvalContext, role: str, options=None):
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


@register("mia_efficacy")
def mia_efficacy_evaluator(ctx: EvalContext, role: str, options=None):
  """SalUn / DELETE's SVC on the true-class confidence: fraction of D_f
  called 'member' (for comparison with those papers; see ``mia``)."""
  yield from _attack("mia_efficacy", mia.fit_svc, mia.confidence, ctx, role)


@register("mia_threshold")
def mia_threshold_evaluator(ctx: EvalContext, role: str, options=None):
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


def check(names: Sequence[str], task: str = "classification") -> None:
  """Fails fast on an unknown evaluator or one that cannot judge the task."""
  for name in names:
    if task not in EVALUATORS.get(name).tasks:
      raise UserError(f"evaluator {name!r} does not apply to the {task} task; "
                      "remove it from config.eval.evaluators")


def evaluate(ctx: EvalContext, evaluators: Sequence[str] = DEFAULT_EVALUATORS,
             gap_metrics: Sequence[str] = GAP_METRICS) -> dict:
  """{role: {name: value}} for every model present, plus ``avg_gap`` when a
  retrained model is present (NaN without any of ``gap_metrics``)."""
  return add_gaps(evaluate_roles(ctx, evaluators), gap_metrics)


def evaluate_roles(ctx: EvalContext, evaluators: Sequence[str] = DEFAULT_EVALUATORS,
                   known: Optional[dict] = None) -> dict:
  """{role: {name: value}} (None for an absent model), without ``avg_gap``.

  ``known``: {role: ``role_record(...)``} of models evaluated before with the
  same data, evaluators and options (``jaxunlearn.run`` keeps them beside the
  checkpoints); those roles are not evaluated again, and their curves are
  put back in ``ctx.curves`` first, so an evaluator that saves every role's
  curves (``rcd``) still saves theirs."""
  check(evaluators, ctx.task)
  known = known or {}
  for role, record in known.items():
    for name, curve in record.get("curves", {}).items():
      ctx.curves.setdefault(name, {})[role] = curve
  results: dict[str, Optional[dict]] = {}
  fns = [(EVALUATORS.get(name).fn, options_for(name, ctx.eval_config))
         for name in evaluators]
  for role, variables in ctx.models.items():
    if variables is None:
      results[role] = None
    elif role in known:
      results[role] = dict(known[role]["metrics"])
    else:
      results[role] = {}
      for fn, options in fns:
        results[role].update(fn(ctx, role, options))
  return results


def role_record(ctx: EvalContext, results: dict, role: str) -> dict:
  """What ``evaluate_roles`` needs to reuse ``role``'s evaluation: its
  metrics and the curves the evaluators kept for it (JSON-serialisable)."""
  return {"metrics": {k: v for k, v in results[role].items() if k != "avg_gap"},
          "curves": {name: curves[role] for name, curves in ctx.curves.items()
                     if role in curves}}


def add_gaps(results: dict, gap_metrics: Sequence[str] = GAP_METRICS) -> dict:
  """``results`` with ``avg_gap`` (to the retrained model) in every role,
  when a retrained model was evaluated."""
  reference = results.get("retrained")
  if reference is not None:
    for role, metrics in results.items():
      if metrics is not None:
        metrics["avg_gap"] = avg_gap(metrics, reference, gap_metrics)
  return results


def _import_evaluator_modules() -> None:
  """Every module in jaxunlearn/metrics/ may register evaluators."""
  import importlib
  import pkgutil

  import jaxunlearn.metrics as pkg
  for info in pkgutil.iter_modules(pkg.__path__):
    if info.name != "evaluators":
      importlib.import_module(f"jaxunlearn.metrics.{info.name}")


_import_evaluator_modules()
