"""Training from scratch: the original model and the retrained gold standard.

Both use the same recipe (``config.train``): SGD with momentum and coupled
weight decay (PyTorch semantics), a learning-rate schedule, the dataset's
training augmentation, and the task's loss (cross-entropy by default; the
face task's margin loss, segmentation's pixel cross-entropy). The retrained
model sees only D_r.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import ml_collections
from jax.sharding import Mesh

from jaxunlearn import batches, loop, optim, parallel
from jaxunlearn.batches import Split
from jaxunlearn.losses import accuracy_count, cross_entropy, weighted_mean
from jaxunlearn.models import for_axis, init_variables
from jaxunlearn.state import TrainState, apply_train, gradient_update


def make_supervised_step(model, tx):
  """``step(state, batch, key, axis_name=None)``: one SGD step on mean CE."""
  def step(state: TrainState, batch: dict, key: jax.Array, axis_name=None):
    del key
    net = for_axis(model, axis_name)

    def loss_fn(params):
      logits, _, batch_stats = apply_train(net, params, state.batch_stats,
                                           batch["image"], batch["mask"])
      loss = weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"],
                           axis_name)
      correct = accuracy_count(logits, batch["label"], batch["mask"])
      return loss, (batch_stats, {"correct": correct})
    return gradient_update(state, tx, loss_fn, axis_name)
  return step


def train_model(model, train_cfg: ml_collections.ConfigDict, split: Split,
                image_shape, key: jax.Array, mesh: Mesh, *,
                augment: loop.Augment = loop.Augment(),
                checkpoint_dir: Optional[str] = None, desc: str = "train",
                progress: bool = True,
                make_step: Callable = make_supervised_step) -> tuple[dict, float]:
  """Trains ``model`` from scratch on ``split`` with the step
  ``make_step(model, tx)`` builds; returns (variables, seconds).

  With ``checkpoint_dir`` a finished training is reused and an interrupted
  one resumes.
  """
  start = time.perf_counter()
  init_key, data_key = jax.random.split(key)
  steps = train_cfg.epochs * batches.num_batches(len(split), train_cfg.batch_size)
  tx = optim.for_training(train_cfg, steps)
  state = TrainState.create(init_variables(model, image_shape, init_key), tx)
  step = parallel.jit_step(make_step(model, tx), mesh)
  state = loop.run_epochs(step, state, split, batch_size=train_cfg.batch_size,
                          epochs=train_cfg.epochs, key=data_key, mesh=mesh,
                          augment=augment, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=train_cfg.get("checkpoint_every", 5),
                          desc=desc, progress=progress,
                          learning_rate=optim.lr_schedule(
                              train_cfg.lr, steps, train_cfg.get("schedule", "constant"),
                              train_cfg.get("warmup_steps", 0)))
  variables = jax.device_get(state.variables)
  return variables, time.perf_counter() - start
