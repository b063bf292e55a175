"""The training state pytree and the one gradient step every method uses."""
from __future__ import annotations

from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

Variables = dict  # {"params": ..., "batch_stats": ...}


@flax.struct.dataclass
class TrainState:
  """Parameters, BatchNorm statistics and optimiser state; nothing static."""
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any

  @classmethod
  def create(cls, variables: Variables, tx: optax.GradientTransformation):
    params = variables["params"]
    return cls(step=jnp.zeros((), jnp.int32), params=params,
               batch_stats=variables.get("batch_stats", {}),
               opt_state=tx.init(params))

  @property
  def variables(self) -> Variables:
    return {"params": self.params, "batch_stats": self.batch_stats}


def apply_train(model, params, batch_stats, images, mask):
  """Training-mode forward: (logits, features, new batch_stats)."""
  (logits, features), updates = model.apply(
      {"params": params, "batch_stats": batch_stats}, images, train=True,
      mask=mask, mutable=["batch_stats"])
  return logits, features, updates["batch_stats"]


def apply_eval(model, variables, images):
  """Inference-mode forward (BatchNorm running statistics): (logits, features)."""
  return model.apply(variables, images, train=False)


def gradient_update(state: TrainState, tx: optax.GradientTransformation,
                    loss_fn: Callable[[Any], tuple[jnp.ndarray, tuple[Any, dict]]],
                    axis_name: Optional[str] = None,
                    grad_transform: Optional[Callable[[Any], Any]] = None,
                    ) -> tuple[TrainState, dict]:
  """One optimiser step on ``loss_fn(params) -> (loss, (batch_stats, metrics))``.

  Under ``shard_map``/``pmap`` the per-device loss is a locally weighted sum
  over the global example count (``losses.weighted_mean`` with
  ``axis_name``), so the per-device gradients are summed with ``lax.psum``.
  ``grad_transform`` (e.g. a saliency mask) is applied to the global gradient.
  """
  (loss, (batch_stats, metrics)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads = lax.psum(grads, axis_name)
    loss = lax.psum(loss, axis_name)
  if grad_transform is not None:
    grads = grad_transform(grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss)
  return state.replace(step=state.step + 1, params=params,
                       batch_stats=batch_stats, opt_state=opt_state), metrics

