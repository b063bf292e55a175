"""Every optimiser of the library: PyTorch's SGD (coupled weight decay, then
momentum) with a learning-rate schedule.

Training from scratch, each method and the relearning-delay metric build
their optimiser here, so a change of recipe reaches all of them at once.
"""
from __future__ import annotations

from typing import Optional

import ml_collections
import optax

from jaxunlearn.errors import UserError


def sgd(learning_rate, momentum: float = 0.9, weight_decay: float = 0.0,
        nesterov: bool = False,
        gradient_transform: Optional[optax.GradientTransformation] = None,
        ) -> optax.GradientTransformation:
  """PyTorch's ``torch.optim.SGD``: coupled weight decay, then momentum.

  PyTorch: ``g <- g + wd * p; b <- m * b + g; p <- p - lr * b``. optax's
  ``add_decayed_weights`` followed by ``sgd`` computes exactly that (checked
  in tests/test_optim.py against the formula). ``gradient_transform`` (e.g.
  SalUn's saliency mask) acts on the decayed gradient, before momentum.
  """
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(weight_decay))
  if gradient_transform is not None:
    parts.append(gradient_transform)
  parts.append(optax.sgd(learning_rate, momentum=momentum or None,
                         nesterov=nesterov))
  return optax.chain(*parts)


def lr_schedule(base_lr: float, total_steps: int, kind: str = "constant",
                warmup_steps: int = 0) -> optax.Schedule:
  """'constant', 'cosine' (to 0) or 'step' (x0.1 at 50% and 75%)."""
  total_steps = max(int(total_steps), 1)
  if kind == "constant":
    schedule = optax.constant_schedule(base_lr)
  elif kind == "cosine":
    schedule = optax.cosine_decay_schedule(base_lr, total_steps - warmup_steps)
  elif kind == "step":
    schedule = optax.piecewise_constant_schedule(
        base_lr, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})
  else:
    raise UserError(f"unknown lr schedule {kind!r}; use constant, cosine or step")
  if warmup_steps:
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, base_lr, warmup_steps), schedule],
        [warmup_steps])
  return schedule


def for_training(train_cfg: ml_collections.ConfigDict, steps: int
                 ) -> optax.GradientTransformation:
  """``config.train``'s optimiser over ``steps`` steps (its schedule and
  warm-up included)."""
  schedule = lr_schedule(train_cfg.lr, steps, train_cfg.get("schedule", "constant"),
                         train_cfg.get("warmup_steps", 0))
  return sgd(schedule, train_cfg.momentum, train_cfg.weight_decay,
             train_cfg.get("nesterov", False))


def for_method(cfg: ml_collections.ConfigDict,
               gradient_transform: Optional[optax.GradientTransformation] = None,
               ) -> optax.GradientTransformation:
  """A method's optimiser from its section (``lr``, ``momentum``,
  ``weight_decay``): constant learning rate."""
  return sgd(cfg.lr, cfg.get("momentum", 0.9), cfg.get("weight_decay", 0.0),
             cfg.get("nesterov", False), gradient_transform)


def for_method_per_epoch(cfg: ml_collections.ConfigDict
                         ) -> optax.GradientTransformation:
  """``for_method`` whose learning rate lives in the optimiser state
  (``opt_state.hyperparams["learning_rate"]``), for methods that set it each
  epoch without recompiling their step."""
  return optax.inject_hyperparams(
      sgd, static_args=("momentum", "weight_decay", "nesterov"))(
          learning_rate=cfg.lr, momentum=cfg.get("momentum", 0.9),
          weight_decay=cfg.get("weight_decay", 0.0),
          nesterov=cfg.get("nesterov", False))
