"""Bad teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting?", AAAI 2023).

The student (from the original model) learns from two teachers at once: on
D_f it matches a randomly initialised "incompetent" teacher, on a retain
subset (``retain_fraction`` of D_r, as the paper's 30%) the original model:
``L = KL(softmax(t_rand(x_f)/T) || softmax(s(x_f)/T)) + KL(softmax(t_0(x_r)/T) || softmax(s(x_r)/T))``.
"""
from __future__ import annotations

import jax
import numpy as np

from jaxunlearn.losses import kl_divergence, weighted_mean
from jaxunlearn.methods import Method, _common, register
from jaxunlearn.state import apply_eval, apply_train
from jaxunlearn.models import init_variables


def default_config():
  return _common.base_config(lr=0.05, epochs=10, temperature=1.0, retain_fraction=0.3,
                             weight_decay=0.0)


def teacher_kl(net, params, batch_stats, teacher, batch, temperature, axis_name):
  teacher_logits, _ = apply_eval(net, teacher, batch["image"])
  logits, _, batch_stats = apply_train(net, params, batch_stats, batch["image"],
                                       batch["mask"])
  target = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature)
  kl = kl_divergence(target, logits / temperature)
  return weighted_mean(kl, batch["mask"], axis_name), batch_stats


def make_loss(temperature: float):
  def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
    retain, batch_stats = teacher_kl(net, params, batch_stats, frozen["good"], batch,
                                     temperature, axis_name)
    forget, batch_stats = teacher_kl(net, params, batch_stats, frozen["bad"],
                                     batch["paired"], temperature, axis_name)
    return retain + forget, batch_stats, {}
  return loss_fn


def unlearn(task, cfg, key):
  bad_key, subset_key, run_key = jax.random.split(key, 3)
  bad = init_variables(task.model, task.image_shape, bad_key)
  retain = task.data.retain
  count = max(1, int(round(cfg.retain_fraction * len(retain))))
  subset = retain.take(np.sort(np.asarray(
      jax.random.choice(subset_key, len(retain), (count,), replace=False))))
  return _common.run(task, cfg, run_key, make_loss(cfg.temperature), subset,
                     paired=task.data.forget,
                     frozen={"good": task.variables, "bad": bad}, desc="bad_teacher")


register(Method("bad_teacher", unlearn, default_config,
                "KL to a random teacher on D_f, to the original on D_r"))
