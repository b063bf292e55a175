"""Boundary expand (Chen et al., "Boundary Unlearning", CVPR 2023).

The classifier gets one extra "shadow" output; the model is fine-tuned with
every forget sample labelled as the shadow class (so D_f's features move into
a region no real class owns), then the shadow output is pruned, leaving the
original C-way head.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.01, epochs=5, weight_decay=0.0)


def expand_head(params: dict, key: jax.Array, scale: float = 0.01) -> dict:
  """Adds one output to the ``head`` Dense layer (small random new column)."""
  if "head" not in params:
    raise UserError("boundary_expand needs a model whose classifier is named 'head'")
  kernel, bias = params["head"]["kernel"], params["head"]["bias"]
  column = scale * jax.random.normal(key, (kernel.shape[0], 1), kernel.dtype)
  head = {"kernel": jnp.concatenate([kernel, column], 1),
          "bias": jnp.concatenate([bias, jnp.zeros((1,), bias.dtype)])}
  return dict(params, head=head)


def prune_head(params: dict) -> dict:
  head = {"kernel": params["head"]["kernel"][:, :-1], "bias": params["head"]["bias"][:-1]}
  return dict(params, head=head)


def unlearn(task, cfg, key):
  head_key, run_key = jax.random.split(key)
  num_classes = task.num_classes
  expanded = task._replace(model=task.model.clone(num_classes=num_classes + 1))
  variables = {"params": expand_head(task.variables["params"], head_key),
               "batch_stats": task.variables["batch_stats"]}
  forget = task.data.forget
  shadow = Split(forget.images, np.full(len(forget), num_classes, np.int32), forget.ids)

  def loss_fn(net, params, batch_stats, frozen, batch, k, axis_name):
    loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    return loss, batch_stats, {}
  out, stats = _common.run(expanded, cfg, run_key, loss_fn, shadow, variables=variables,
                    desc="boundary_expand")
  return {"params": prune_head(out["params"]), "batch_stats": out["batch_stats"]}, stats


register(Method("boundary_expand", unlearn, default_config,
                "train D_f into an extra shadow class, then prune it (Chen et al. 2023)"))
