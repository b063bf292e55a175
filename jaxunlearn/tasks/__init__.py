"""Tasks: what an unlearning job is about, as registered records.

The job is the same for every task (``jaxunlearn.run``: data -> forget split ->
original and retrained models -> unlearn -> evaluate -> report); a ``Task``
says what differs: how to load the data and choose the forget set, which
model to build and which loss trains it, which unlearning methods apply, and
what the report adds. Classification (class / random / instance forgetting),
backdoor removal, face identity and segmentation are four records; a new task
is one module that calls ``register``. Tasks never import ``jaxunlearn.run``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import ml_collections

from jaxunlearn.batches import ForgetSplit, Split
from jaxunlearn.loop import Augment
from jaxunlearn.registry import Registry


class TaskData(NamedTuple):
  """What a task's ``load`` gives the job."""
  dataset: str                  # the name the report gives
  train: Split                  # what the original model is trained on
  data: ForgetSplit             # D_f, D_r, D_t,f, D_t,r
  num_classes: int
  image_shape: tuple
  mean: tuple
  std: tuple
  augment: Augment              # the training augmentation
  forget_spec: dict             # how D_f was chosen (report, forget_ids.json)
  splits: dict = {}             # extra named evaluation splits


class PhaseKeys(NamedTuple):
  split: Optional[jax.Array]    # choosing the forget set (None: deterministic)
  pretrain: jax.Array
  retrain: jax.Array
  unlearn: jax.Array


def four_keys(root: jax.Array) -> PhaseKeys:
  return PhaseKeys(*jax.random.split(root, 4))


def three_keys(root: jax.Array) -> PhaseKeys:
  """For tasks whose forget set needs no randomness."""
  return PhaseKeys(None, *jax.random.split(root, 3))


def no_fingerprint(cfg: ml_collections.ConfigDict) -> tuple:
  return ()


def no_report(cfg: ml_collections.ConfigDict) -> dict:
  return {}


def no_check(cfg: ml_collections.ConfigDict) -> None:
  return None


class Task(NamedTuple):
  name: str
  # (config, root key, forget-set key) -> TaskData
  load: Callable[[ml_collections.ConfigDict, jax.Array, Optional[jax.Array]],
                 TaskData]
  # (config, TaskData) -> flax module returning (logits, features)
  build_model: Callable[[ml_collections.ConfigDict, TaskData], Any]
  # config -> make_step(model, tx): the loss that trains the original and
  # the retrained model (``train.train_model``)
  train_step: Callable[[ml_collections.ConfigDict], Callable]
  # (config, method name) -> methods.Method, or a UserError naming the choices
  method: Callable[[ml_collections.ConfigDict, str], Any]
  # Fails fast, before any data is read, on a config the task cannot run.
  check: Callable[[ml_collections.ConfigDict], None] = no_check
  # Config parts, beyond dataset / model / train / seed, that determine the
  # trained models (checkpoint fingerprints) ...
  fingerprint: Callable[[ml_collections.ConfigDict], tuple] = no_fingerprint
  # ... and the unlearned one, beyond the method's section.
  unlearn_fingerprint: Callable[[ml_collections.ConfigDict], tuple] = no_fingerprint
  # Fields the report adds (e.g. the face margin).
  report: Callable[[ml_collections.ConfigDict], dict] = no_report
  keys: Callable[[jax.Array], PhaseKeys] = four_keys
  # Datasets only this task reads (not in ``data.DATASETS``), for
  # ``jaxunlearn datasets``: (name, classes, image shape, note).
  datasets: tuple = ()


TASKS: Registry[Task] = Registry("task")


def register(task: Task) -> Task:
  TASKS.add(task.name, task)
  return task


def task_name(cfg: ml_collections.ConfigDict) -> str:
  return cfg.get("task", "classification") or "classification"


def _import_all() -> None:
  """Imports every module of this package; each registers its task(s)."""
  import importlib
  import pkgutil
  for info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{info.name}")


_import_all()
