"""UNSIR (Tarun et al., "Fast Yet Effective Machine Unlearning", TNNLS 2023).

1. Error-maximising noise: for each label of the forget set, ``n_noise``
   images ``N`` learnt on the frozen original model by ``noise_steps`` of
   gradient ascent on ``CE(f(N), y) - λ mean(N²)`` (kept in the valid pixel
   range [0, 1], where every image of the library lives).
2. Impair: one pass over a retain subset with the noise batch (labelled with
   the forget labels) beside it, CE on both, at ``lr``.
3. Repair: one pass of CE on the retain subset at ``repair_lr``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxunlearn.batches import Split
from jaxunlearn.losses import cross_entropy
from jaxunlearn.methods import Method, _common, register
from jaxunlearn.state import apply_eval


def default_config():
  return _common.base_config(lr=0.02, repair_lr=0.01, epochs=2, n_noise=128,
                             noise_steps=50, noise_lr=0.1, noise_lambda=0.1,
                             retain_fraction=0.3, weight_decay=0.0)


def error_maximising_noise(model, variables, labels: np.ndarray, shape, key,
                           steps: int, lr: float, lam: float) -> np.ndarray:
  """Images in [0,1] that maximise CE(f(N), y) - λ mean(N²) (signed ascent)."""
  labels = jnp.asarray(labels)

  def objective(noise):
    logits, _ = apply_eval(model, variables, noise)
    return jnp.sum(cross_entropy(logits, labels)) - lam * jnp.sum(jnp.mean(
        noise ** 2, axis=(1, 2, 3)))

  @jax.jit
  def run(noise):
    def body(_, n):
      return jnp.clip(n + lr * jnp.sign(jax.grad(objective)(n)), 0.0, 1.0)
    return jax.lax.fori_loop(0, steps, body, noise)
  start = jax.random.uniform(key, (len(labels),) + tuple(shape))
  return np.asarray(run(start))


def unlearn(task, cfg, key):
  noise_key, subset_key, impair_key, repair_key = jax.random.split(key, 4)
  forget_labels = np.unique(task.data.forget.labels)
  labels = np.repeat(forget_labels, cfg.n_noise).astype(np.int32)
  noise = error_maximising_noise(task.model, task.variables, labels, task.image_shape,
                                 noise_key, cfg.noise_steps, cfg.noise_lr,
                                 cfg.noise_lambda)
  noise_split = Split(np.rint(noise * 255).astype(np.uint8), labels,
                      -np.arange(1, len(labels) + 1))
  retain = task.data.retain
  count = max(1, int(round(cfg.retain_fraction * len(retain))))
  subset = retain.take(np.sort(np.asarray(
      jax.random.choice(subset_key, len(retain), (count,), replace=False))))

  def impair_loss(net, params, batch_stats, frozen, batch, k, axis_name):
    retain_ce, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    noise_ce, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch["paired"],
                                             axis_name)
    return retain_ce + noise_ce, batch_stats, {}

  def repair_loss(net, params, batch_stats, frozen, batch, k, axis_name):
    loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    return loss, batch_stats, {}
  impaired, _ = _common.run(task._replace(checkpoint_dir=None), cfg, impair_key,
                         impair_loss, subset, paired=noise_split, desc="unsir impair")
  repair_cfg = ml_collections.ConfigDict(dict(cfg.to_dict(), lr=cfg.repair_lr))
  return _common.run(task._replace(checkpoint_dir=None), repair_cfg, repair_key,
                     repair_loss, subset, variables=impaired, desc="unsir repair")


register(Method("unsir", unlearn, default_config,
                "error-maximising noise, impair then repair (Tarun et al. 2023)"))
