"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

The student starts from the original model (also the frozen teacher).
Epochs alternate: during the first ``msteps`` epochs a *max* pass over D_f
maximises ``KL_T(teacher || student)``; every epoch a *min* pass over D_r
minimises ``α KL_T(teacher || student) + γ CE``. ``KL_T`` is the released
``DistillKL``: ``T² · KL(softmax(t/T) || softmax(s/T))`` averaged over the
batch. Teacher in inference mode, student in training mode.
"""
from __future__ import annotations

import jax

from jaxunlearn import loop, parallel
from jaxunlearn.losses import kl_divergence, weighted_mean
from jaxunlearn.methods import Method, _common, register
from jaxunlearn.state import TrainState, apply_eval, apply_train


def default_config():
  return _common.base_config(lr=0.005, epochs=5, msteps=3, temperature=4.0,
                             alpha=0.001, gamma=0.99, weight_decay=5e-4)


def distill_kl(student_logits, teacher_logits, temperature: float):
  """Per-example T² KL(softmax(t/T) || softmax(s/T))."""
  target = jax.nn.softmax(teacher_logits / temperature)
  return kl_divergence(target, student_logits / temperature) * temperature ** 2


def make_loss(mode: str, cfg):
  def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
    teacher_logits, _ = apply_eval(net, frozen["teacher"], batch["image"])
    logits, _, batch_stats = apply_train(net, params, batch_stats, batch["image"],
                                         batch["mask"])
    kl = weighted_mean(distill_kl(logits, jax.lax.stop_gradient(teacher_logits),
                                  cfg.temperature), batch["mask"], axis_name)
    if mode == "max":
      return -kl, batch_stats, {}
    from jaxunlearn.losses import cross_entropy
    ce = weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"], axis_name)
    return cfg.alpha * kl + cfg.gamma * ce, batch_stats, {}
  return loss_fn


def unlearn(task, cfg, key):
  tx = _common.optimizer(cfg)
  state = _common.MethodState(TrainState.create(task.variables, tx),
                              {"teacher": task.variables})
  steps = {mode: parallel.jit_step(_common.make_step(task.model, tx,
                                                     make_loss(mode, cfg)), task.mesh)
           for mode in ("max", "min")}
  augment = task.augment if cfg.augment else loop.Augment()
  for epoch in range(cfg.epochs):
    passes = (("max", task.data.forget),) if epoch < cfg.msteps else ()
    for mode, split in passes + (("min", task.data.retain),):
      state = loop.run_epochs(steps[mode], state, split, batch_size=cfg.batch_size,
                              epochs=1, key=jax.random.fold_in(key, 2 * epoch + (mode == "min")),
                              mesh=task.mesh, augment=augment,
                              desc=f"scrub {mode}", progress=task.progress)
  return jax.device_get(state.train.variables)


register(Method("scrub", unlearn, default_config,
                "alternating max (D_f) / min (D_r) teacher distillation"))
