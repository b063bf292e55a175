"""One jitted, sharded inference pass over a split: logits and features."""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh

from jaxunlearn import parallel
from jaxunlearn import batches
from jaxunlearn.batches import Split
from jaxunlearn.state import apply_eval


def make_predict_fn(model, mesh: Mesh) -> Callable:
  """jit(variables, images) -> (logits, features), batch sharded over the mesh."""
  return jax.jit(lambda variables, images: apply_eval(model, variables, images),
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh))


def predict(predict_fn: Callable, variables: dict, split: Split, batch_size: int,
            mesh: Mesh, with_features: bool = False):
  """Logits [N, C] (and features [N, D]) of ``split`` in inference mode."""
  parallel.check_batch_size(batch_size, mesh)
  variables = parallel.replicate(variables, mesh)
  logits, features = [], []
  for batch in batches.in_order(split, batch_size):
    n = int(batch["mask"].sum())
    out_logits, out_features = predict_fn(variables,
                                          parallel.shard_batch(batch["image"], mesh))
    logits.append(np.asarray(parallel.to_host(out_logits))[:n])
    if with_features:
      features.append(np.asarray(parallel.to_host(out_features))[:n])
  if not logits:
    empty = np.zeros((0, 0), np.float32)
    return (empty, empty) if with_features else empty
  logits = np.concatenate(logits)
  return (logits, np.concatenate(features)) if with_features else logits


def accuracy(predict_fn: Callable, variables: dict, split: Split, batch_size: int,
             mesh: Mesh) -> float:
  """Inference-mode accuracy of ``variables`` on ``split``."""
  logits = predict(predict_fn, variables, split, batch_size, mesh)
  return float(np.mean(logits.argmax(-1) == split.labels))
