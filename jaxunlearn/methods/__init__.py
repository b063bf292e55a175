"""Unlearning methods, looked up by name.

A method is data, not a class hierarchy: a ``Method`` holds a function
``unlearn(task, config, key) -> (variables, stats)`` and its
``default_config()``; ``stats`` is a JSON-able dict of what the method
measured (steps taken, its stop rule's verdict, an ``outcome`` sentence), which
the run puts in the report.
Inside, each method is a few pure functions (its loss, a jitted step
``(state, batch, key) -> (state, metrics)`` usable under ``jax.jit`` with a
mesh or under ``shard_map`` with ``axis_name``) driven by ``loop.run_epochs``.
Methods never import a dataset: the data arrive in the ``UnlearnTask``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import ml_collections
from jax.sharding import Mesh

from jaxunlearn.batches import ForgetSplit
from jaxunlearn.loop import Augment
from jaxunlearn.registry import Registry


class UnlearnTask(NamedTuple):
  """Everything a method may use; all data are host arrays."""
  model: Any                      # flax module: (logits, features)
  variables: dict                 # the original model {"params", "batch_stats"}
  data: ForgetSplit               # D_f, D_r, D_t,f, D_t,r
  num_classes: int
  image_shape: tuple
  mesh: Mesh
  augment: Augment                # the dataset's training augmentation
  train_config: ml_collections.ConfigDict  # the pretraining recipe
  checkpoint_dir: Optional[str] = None     # where to save / resume
  progress: bool = True
  # Called as on_epoch_end(epoch, variables) after each epoch of the
  # epoch-based methods (curves of accuracy over unlearning; host sync).
  on_epoch_end: Optional[Callable[[int, dict], None]] = None


def epoch_callback(task: UnlearnTask, variables_of: Callable[[Any], dict]):
  """``loop.run_epochs``'s hook for ``task.on_epoch_end`` (None without one);
  ``variables_of(state)`` extracts the model variables from a method's state."""
  if task.on_epoch_end is None:
    return None
  return lambda epoch, state: task.on_epoch_end(epoch, jax.device_get(
      variables_of(state)))


class Method(NamedTuple):
  name: str
  unlearn: Callable[[UnlearnTask, ml_collections.ConfigDict, jax.Array],
                    tuple[dict, dict]]
  default_config: Callable[[], ml_collections.ConfigDict]
  description: str = ""
  # The forgetting settings (config.forget.kind) of the method's paper; a run
  # outside them says so in its report. Empty: any.
  forget_kinds: tuple[str, ...] = ()
  # The evaluators its paper reports, added to config.eval.evaluators when it
  # runs (unless config.eval.method_evaluators is False).
  evaluators: tuple[str, ...] = ()


METHODS: Registry[Method] = Registry("method")


def register(method: Method) -> Method:
  METHODS.add(method.name, method)
  return method


def _import_all() -> None:
  """Imports every module of this package; each registers its method(s)."""
  import importlib
  import pkgutil
  for info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{info.name}")


_import_all()
