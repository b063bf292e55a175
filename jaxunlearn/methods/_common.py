"""What the baselines share: a generic state, step and driver.

A baseline is its loss: ``loss_fn(net, params, batch_stats, frozen, batch,
key, axis_name) -> (loss, batch_stats, metrics)``, where ``frozen`` holds
whatever the method keeps fixed (teacher variables, masks, labels) and
``batch["paired"]`` the second stream (e.g. D_f beside D_r) when the driver
pairs two splits. ``make_step`` turns it into the library's step and
``run`` drives it with ``loop.run_epochs``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import flax
import jax
import ml_collections
import optax

from jaxunlearn import loop, optim, parallel
from jaxunlearn.batches import Split
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.methods import UnlearnTask, epoch_callback
from jaxunlearn.models import for_axis
from jaxunlearn.state import TrainState, apply_train, gradient_update


@flax.struct.dataclass
class MethodState:
  train: TrainState
  frozen: dict  # constants of the method (teachers, masks, ...)


def make_step(model, tx, loss_fn: Callable,
              grad_transform: Optional[Callable[[Any, Any], Any]] = None):
  """``step(state, batch, key, axis_name=None)`` from a baseline's loss."""
  def step(state: MethodState, batch: dict, key: jax.Array, axis_name=None):
    net = for_axis(model, axis_name)

    # Losses also see the step number (schedules inside the loss).
    frozen = dict(state.frozen, step=state.train.step)

    def objective(params):
      loss, batch_stats, metrics = loss_fn(net, params, state.train.batch_stats,
                                           frozen, batch, key, axis_name)
      return loss, (batch_stats, metrics)
    transform = (None if grad_transform is None
                 else lambda g: grad_transform(g, state.frozen))
    train, metrics = gradient_update(state.train, tx, objective, axis_name, transform)
    return state.replace(train=train), metrics
  return step


def ce_on(net, params, batch_stats, batch, axis_name, labels=None, sign=1.0):
  """sign * mean CE of a (sub)batch in training mode: (loss, new batch_stats)."""
  logits, _, batch_stats = apply_train(net, params, batch_stats, batch["image"],
                                       batch["mask"])
  labels = batch["label"] if labels is None else labels
  loss = weighted_mean(cross_entropy(logits, labels), batch["mask"], axis_name)
  return sign * loss, batch_stats, logits


def run(task: UnlearnTask, cfg: ml_collections.ConfigDict, key: jax.Array,
        loss_fn: Callable, split: Split, *, frozen: Any = None,
        paired: Optional[Split] = None, grad_transform=None, desc: str = "",
        variables: Optional[dict] = None,
        tx: Optional[optax.GradientTransformation] = None) -> tuple[dict, dict]:
  """Trains from the original model (or ``variables``) with ``loss_fn`` for
  ``cfg.epochs`` passes over ``split`` (``paired`` cycled alongside), with
  ``tx`` (default: ``optim.for_method(cfg)``). Returns (variables, stats)."""
  tx = optim.for_method(cfg) if tx is None else tx
  start = task.variables if variables is None else variables
  state = MethodState(TrainState.create(start, tx), {} if frozen is None else frozen)
  step = parallel.jit_step(make_step(task.model, tx, loss_fn, grad_transform),
                           task.mesh)
  state = loop.run_epochs(
      step, state, split, batch_size=cfg.batch_size, epochs=cfg.epochs, key=key,
      mesh=task.mesh, augment=task.augment if cfg.get("augment", True) else loop.Augment(),
      checkpoint_dir=task.checkpoint_dir, checkpoint_every=cfg.get("checkpoint_every", 5),
      desc=desc, progress=task.progress, paired=paired,
      paired_batch_size=cfg.get("paired_batch_size", None) or cfg.batch_size,
      on_epoch_end=epoch_callback(task, lambda s: s.train.variables),
      learning_rate=cfg.get("lr"))
  return jax.device_get(state.train.variables), {}


def base_config(**overrides) -> ml_collections.ConfigDict:
  values = dict(lr=0.01, momentum=0.9, weight_decay=5e-4, epochs=5, batch_size=64,
                augment=True)
  values.update(overrides)
  return ml_collections.ConfigDict(values)
