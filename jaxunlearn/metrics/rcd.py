"""Relearning convergence delay (RCD), jaxunlearn's definition.

From a model, fine-tune on the forget set with a fixed recipe (SGD, ``lr``,
``momentum``, ``batch_size``, ``seed``; training mode) and record the forget
accuracy (inference mode, on up to ``eval_size`` forget samples) before the
first step and after every step. ``rcd_steps`` is the first step at which
the accuracy reaches the threshold — by default the original model's forget
accuracy minus ``tolerance`` (``reference="retrained"``: the retrained
model's forget accuracy minus ``tolerance``) — so with the default the
original model scores 0. A model that never reaches it within ``steps``
reports ``rcd_steps = steps`` and ``rcd_reached = False``.
``rcd_weight_distance`` is ||θ_t - θ_0||_2 at that step: how far the weights
had to travel to relearn. Larger delays = more thoroughly unlearned
(the IEU paper, arXiv 2604.09391; the paper publishes no code, so the
protocol is ours and every constant is in ``config.eval.rcd``).

On GPU/TPU the whole curve is one jitted ``lax.scan`` (no host round trip per
step); on CPU a host loop of jitted steps (``device_loop``), which XLA:CPU
runs much faster.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxunlearn import optim, parallel
from jaxunlearn.batches import Split
from jaxunlearn.metrics.evaluators import EvalContext, register
from jaxunlearn.losses import cross_entropy
from jaxunlearn.state import apply_eval, apply_train


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      lr=0.01, momentum=0.9, batch_size=32, steps=100, tolerance=0.05,
      reference="original", eval_size=512, seed=0, device_loop="auto"))


def relearning_curve(model, variables: dict, forget: Split, *, lr: float,
                     momentum: float, batch_size: int, steps: int, seed: int,
                     eval_size: int = 512, device_loop: str = "auto"):
  """(accuracy [steps+1], weight distance [steps+1]) while fine-tuning on D_f.

  The batch sequence and the evaluation subset depend on ``seed`` only, so
  every model relearns from the same data in the same order.
  ``device_loop``: "device" (one ``lax.scan``), "host" (a loop of jitted
  steps) or "auto" (host on CPU, device elsewhere).
  """
  rng = np.random.default_rng(seed)
  n = len(forget)
  eval_index = np.sort(rng.choice(n, min(n, eval_size), replace=False))
  size = min(batch_size, n)
  batches = np.stack([rng.choice(n, size, replace=False) for _ in range(steps)])
  # On the device once: the host loop hands these to every step.
  start, batch_stats, images, labels, eval_index, batches = jax.device_put((
      variables["params"], variables["batch_stats"],
      np.asarray(forget.images, np.float32), np.asarray(forget.labels, np.int32),
      eval_index, batches))
  images = _unit_range(images)
  on_device = parallel.loop_on_device(device_loop, name="rcd.device_loop")
  accs, dists = (_curve if on_device else _host_curve)(
      model, float(lr), float(momentum), start, batch_stats, images, labels,
      eval_index, batches)
  return jax.device_get((accs, dists))


@jax.jit
def _unit_range(images):
  return images / 255.0


def _accuracy(model, params, stats, images, labels):
  logits, _ = apply_eval(model, {"params": params, "batch_stats": stats}, images)
  return jnp.mean(jnp.argmax(logits, -1) == labels)


def _relearn_step(model, lr, momentum, carry, start, images, labels,
                  eval_images, eval_labels, index):
  """One SGD step on D_f[index]: (carry, (forget accuracy, distance))."""
  tx = optim.sgd(lr, momentum)
  params, stats, opt_state = carry

  def loss_fn(p):
    logits, _, new_stats = apply_train(model, p, stats, images[index], None)
    return jnp.mean(cross_entropy(logits, labels[index])), new_stats
  grads, stats = jax.grad(loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  distance = jnp.sqrt(sum(jnp.sum((a - b) ** 2) for a, b in
                          zip(jax.tree.leaves(params), jax.tree.leaves(start))))
  return ((params, stats, opt_state),
          (_accuracy(model, params, stats, eval_images, eval_labels), distance))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _curve(model, lr, momentum, start, batch_stats, images, labels, eval_index,
           batches):
  """One jitted scan; compiled once per (model, recipe, shapes)."""
  tx = optim.sgd(lr, momentum)
  eval_images, eval_labels = images[eval_index], labels[eval_index]
  body = lambda carry, index: _relearn_step(
      model, lr, momentum, carry, start, images, labels, eval_images,
      eval_labels, index)
  _, (accs, dists) = jax.lax.scan(body, (start, batch_stats, tx.init(start)), batches)
  first = _accuracy(model, start, batch_stats, eval_images, eval_labels)
  return (jnp.concatenate([first[None], accs]),
          jnp.concatenate([jnp.zeros((1,)), dists]))


# The step replaces its carry: donated.
_host_step = jax.jit(_relearn_step, static_argnums=(0, 1, 2), donate_argnums=3)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _host_start(model, lr, momentum, start, batch_stats, images, labels,
                eval_index):
  """(first carry, in buffers of its own: the steps donate it; the forget
  accuracy before any step; the evaluation images and labels)."""
  eval_images, eval_labels = images[eval_index], labels[eval_index]
  carry = jax.tree.map(jnp.copy, (start, batch_stats,
                                  optim.sgd(lr, momentum).init(start)))
  first = _accuracy(model, start, batch_stats, eval_images, eval_labels)
  return carry, first, eval_images, eval_labels


@jax.jit
def _stack_curve(first, accs, dists):
  return jnp.stack([first] + accs), jnp.stack([jnp.zeros(())] + dists)


def _host_curve(model, lr, momentum, start, batch_stats, images, labels,
                eval_index, batches):
  """``_curve`` as a host loop of jitted steps: the same numbers, and on
  XLA:CPU far faster, where a convolution's weight gradient inside a scan
  is ~50x slower than outside one (jax-ml/jax#12868). No host sync: the
  curve is fetched once, whole."""
  carry, first, eval_images, eval_labels = _host_start(
      model, lr, momentum, start, batch_stats, images, labels, eval_index)
  accs, dists = [], []
  for index in batches:
    carry, (acc, dist) = _host_step(model, lr, momentum, carry, start, images,
                                    labels, eval_images, eval_labels, index)
    accs.append(acc)
    dists.append(dist)
  return _stack_curve(first, accs, dists)


def delay(accuracies: np.ndarray, threshold: float) -> tuple[int, bool]:
  """First index with accuracy >= threshold; (len-1, False) if none."""
  hits = np.flatnonzero(accuracies >= threshold - 1e-9)
  if hits.size == 0:
    return len(accuracies) - 1, False
  return int(hits[0]), True


@register("rcd", default_config)
def rcd_evaluator(ctx: EvalContext, role: str, o: ml_collections.ConfigDict):
  """rcd_steps, rcd_weight_distance, rcd_reached, rcd_threshold; curves saved
  to WORKDIR/rcd_curves.json and rcd_curves.png."""
  reference_role = o.reference
  if ctx.models.get(reference_role) is None:
    reference_role = "original"
  reference = ctx.outputs(reference_role, "forget")
  reference_acc = float(np.mean(np.argmax(reference.logits, -1) == reference.labels))
  threshold = reference_acc - o.tolerance
  accs, dists = relearning_curve(ctx.model, ctx.models[role], ctx.data.forget,
                                 lr=o.lr, momentum=o.momentum,
                                 batch_size=o.batch_size, steps=o.steps, seed=o.seed,
                                 eval_size=o.eval_size, device_loop=o.device_loop)
  steps, reached = delay(accs, threshold)
  curves = ctx.curves.setdefault("rcd", {})
  curves[role] = {"forget_acc": accs.tolist(), "weight_distance": dists.tolist(),
                  "threshold": threshold}
  if ctx.workdir:
    _save(ctx.workdir, curves)
  yield "rcd_steps", steps
  yield "rcd_reached", reached
  yield "rcd_threshold", threshold
  yield "rcd_weight_distance", float(dists[steps])


def _save(workdir: str, curves: dict) -> None:
  from jaxunlearn.checkpoint import write_json
  if jax.process_index() != 0:  # one writer per run
    return
  # compact: thousands of numbers per curve, one per line when indented
  write_json(os.path.join(workdir, "rcd_curves.json"), curves, indent=None)
  plot_curves(curves, os.path.join(workdir, "rcd_curves.png"))


def plot_curves(curves: dict, path: str, title: str = "Relearning on D_f") -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for role, curve in curves.items():
    ax.plot(curve["forget_acc"], label=role)
  if curves:
    ax.axhline(next(iter(curves.values()))["threshold"], color="gray", ls="--",
               lw=1, label="threshold")
  ax.set_xlabel("fine-tuning steps on D_f")
  ax.set_ylabel("forget accuracy")
  ax.set_title(title)
  ax.legend()
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
