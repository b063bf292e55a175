"""Gradient statistics over a split: per-example (empirical and predictive
diagonal Fisher) and per-batch (sums of batch-mean gradients, as the SalUn
and SSD released code compute them).

Each is one jitted, sharded pass over padded batches in the split's order
(inference mode, so examples are independent and padding is exact). The
per-example ones take ``per_example``: ``"vmap"`` (all of a device's
examples at once), ``"scan"`` (one after another) or ``"auto"`` (scan on
CPU, vmap elsewhere).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxunlearn import parallel
from jaxunlearn import batches
from jaxunlearn.batches import Split
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.state import apply_eval


def _example_loss(model, params, batch_stats, image, label):
  logits, _ = apply_eval(model, {"params": params, "batch_stats": batch_stats},
                         image[None])
  return cross_entropy(logits, label[None])[0]


def _example_squared_gradient(model, params, batch_stats, image, label):
  """(grad CE(x, y))^2 for one example: its term of the empirical Fisher."""
  grad = jax.grad(_example_loss, argnums=1)(model, params, batch_stats, image, label)
  return jax.tree.map(lambda g: g * g, grad)


def _example_predictive_fisher(model, params, batch_stats, image, label):
  """sum_y p(y|x) (grad CE(x, y))^2 for one example: the Fisher under the
  model's own predictive distribution (its label is not used). One forward
  pass; a scan over the classes keeps one gradient in memory at a time."""
  del label
  def logits_of(p):
    logits, _ = apply_eval(model, {"params": p, "batch_stats": batch_stats},
                           image[None])
    return logits[0]
  logits, vjp = jax.vjp(logits_of, params)
  prob = jax.nn.softmax(logits)

  def add_class(total, y):
    # d CE(logits, y) / d logits = softmax(logits) - one_hot(y)
    (grad,) = vjp(prob - jax.nn.one_hot(y, prob.shape[0], dtype=prob.dtype))
    return jax.tree.map(lambda t, g: t + prob[y] * g * g, total, grad), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  total, _ = jax.lax.scan(add_class, zeros, jnp.arange(prob.shape[0]))
  return total


PER_EXAMPLE = ("auto", "vmap", "scan")


def _per_example_mode(per_example: str, mesh) -> str:
  """``"auto"``: a sequential scan over the examples on CPU, ``vmap``
  elsewhere. On CPU, XLA lowers the vmapped convolution weight gradients
  (one kernel gradient per example) far slower than one example at a time:
  benchmarks/fisher_per_example.py measures it."""
  if per_example not in PER_EXAMPLE:
    raise ValueError(f"per_example={per_example!r}; use one of {PER_EXAMPLE}")
  if per_example != "auto":
    return per_example
  return "scan" if mesh.devices.flat[0].platform == "cpu" else "vmap"


def _accumulate(model, variables, split: Split, batch_size: int, mesh,
                example_stat, per_example: str = "auto"):
  """(1/N) Σ_i example_stat(model, params, batch_stats, x_i, y_i)."""
  # Per-example weight gradients are computed per device under shard_map and
  # summed with psum. (Under plain jit with the batch sharded, XLA's SPMD
  # partitioning of the vmapped convolution weight gradients gave wrong
  # numbers on 2 CPU devices: 3e-3 absolute error vs 1e-9 on one device.)
  mode = _per_example_mode(per_example, mesh)

  def one(params, batch_stats, image, label, mask):
    stat = example_stat(model, params, batch_stats, image, label)
    return jax.tree.map(lambda g: g * mask, stat)

  def local_sum(variables, batch):
    params, batch_stats = variables["params"], variables["batch_stats"]
    examples = (batch["image"], batch["label"], batch["mask"])
    if mode == "vmap":
      stats = jax.vmap(one, in_axes=(None, None, 0, 0, 0))(params, batch_stats,
                                                            *examples)
      sums = jax.tree.map(lambda g: jnp.sum(g, 0), stats)
    else:
      def add(total, example):
        return jax.tree.map(jnp.add, total, one(params, batch_stats, *example)), None
      sums, _ = jax.lax.scan(add, jax.tree.map(jnp.zeros_like, params), examples)
    return jax.lax.psum(sums, parallel.DATA_AXIS)

  total, _ = _sum_over_batches(local_sum, variables, split, batch_size, mesh)
  return jax.device_get(jax.tree.map(lambda t: t / max(len(split), 1), total))


def _sum_over_batches(per_batch, variables, split: Split, batch_size: int, mesh):
  """(Σ over the in-order batches of ``per_batch(variables, batch)``, the
  number of batches); ``per_batch`` runs under ``shard_map`` on the mesh
  (batch sharded, variables replicated) and returns a replicated tree."""
  from jax.sharding import PartitionSpec as P
  batch_fn = jax.jit(jax.shard_map(
      per_batch, mesh=mesh, in_specs=(P(), P(parallel.DATA_AXIS)), out_specs=P(),
      check_vma=False))
  parallel.check_batch_size(batch_size, mesh)
  variables = parallel.replicate(variables, mesh)
  total = jax.tree.map(jnp.zeros_like, variables["params"])
  count = 0
  for batch in batches.in_order(split, batch_size):
    total = jax.tree.map(jnp.add, total,
                         batch_fn(variables, parallel.shard_batch(batch, mesh)))
    count += 1
  return total, count


def fisher_diagonal(model, variables, split: Split, batch_size: int, mesh,
                    per_example: str = "auto"):
  """Empirical diagonal Fisher: (1/N) sum_i (grad CE(x_i, y_i))^2, per-example
  gradients (not squared batch gradients)."""
  return _accumulate(model, variables, split, batch_size, mesh,
                     _example_squared_gradient, per_example)


def predictive_fisher_diagonal(model, variables, split: Split, batch_size: int,
                               mesh, per_example: str = "auto"):
  """(1/N) sum_i sum_y p(y|x_i) (grad CE(x_i, y))^2: the diagonal Fisher of
  Golatkar et al.'s released ``hessian`` (one example per step, every class
  weighted by the model's probability; inference mode)."""
  return _accumulate(model, variables, split, batch_size, mesh,
                     _example_predictive_fisher, per_example)


def _batch_gradient_sum(model, variables, split: Split, batch_size: int, mesh,
                        power: int):
  """(sum over batches of g_b ** power, number of batches), where g_b is the
  gradient of the batch's mean CE; the last batch may be partial."""
  def batch_power(variables, batch):
    def batch_loss(params):
      logits, _ = apply_eval(model, {"params": params,
                                     "batch_stats": variables["batch_stats"]},
                             batch["image"])
      return weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"],
                           parallel.DATA_AXIS)
    grads = jax.lax.psum(jax.grad(batch_loss)(variables["params"]),
                         parallel.DATA_AXIS)
    return jax.tree.map(lambda g: g ** power, grads)

  return _sum_over_batches(batch_power, variables, split, batch_size, mesh)


def summed_batch_gradient(model, variables, split: Split, batch_size: int, mesh):
  """sum_b grad mean_{i in b} CE(x_i, y_i): the saliency gradient of SalUn's
  ``generate_mask.py`` (inference mode, summed over batches, not averaged)."""
  total, _ = _batch_gradient_sum(model, variables, split, batch_size, mesh, 1)
  return jax.device_get(total)


def mean_squared_batch_gradient(model, variables, split: Split, batch_size: int,
                                mesh):
  """(1/K) sum_b (grad mean_{i in b} CE(x_i, y_i))^2 over the K batches (the
  last one partial): SSD's importance (``calc_importance`` in
  if-loops/selective-synaptic-dampening src/ssd.py; model in eval mode)."""
  total, count = _batch_gradient_sum(model, variables, split, batch_size, mesh, 2)
  return jax.device_get(jax.tree.map(lambda t: t / max(count, 1), total))
