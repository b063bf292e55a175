"""Random label: train the forget set toward fixed random wrong labels.

``L = CE(f_θ(x_f), ỹ_f)`` with ``ỹ`` drawn once, uniformly among the classes
other than the true one (Golatkar et al. CVPR 2020; Hayase et al.).
Optionally with retain data alongside (``with_retain``, as SalUn's RL).
"""
import jax
import numpy as np

from jaxunlearn.batches import Split
from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.01, epochs=5, with_retain=True)


def random_wrong_labels(labels: np.ndarray, num_classes: int,
                        key: jax.Array) -> np.ndarray:
  """Uniform over the classes != label: (y + U{1..C-1}) mod C."""
  shift = np.asarray(jax.random.randint(key, labels.shape, 1, num_classes))
  return ((labels + shift) % num_classes).astype(np.int32)


def relabelled_forget_set(task, key) -> Split:
  forget = task.data.forget
  return Split(forget.images, random_wrong_labels(forget.labels, task.num_classes, key),
               forget.ids)


def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
  loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
  if "paired" in batch:
    retain, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch["paired"],
                                           axis_name)
    loss = loss + retain
  return loss, batch_stats, {}


def unlearn(task, cfg, key):
  label_key, run_key = jax.random.split(key)
  return _common.run(task, cfg, run_key, loss_fn, relabelled_forget_set(task, label_key),
                     paired=task.data.retain if cfg.with_retain else None,
                     desc="random_label")


register(Method("random_label", unlearn, default_config,
                "CE on D_f toward fixed random wrong labels"))
