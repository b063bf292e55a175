"""SCRUB (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Released code: meghdadk/SCRUB (the notebooks' ``scrub`` cells and
thirdparty/repdistiller/helper/loops.py ``train_distill``).

The student starts from the original model (also the frozen teacher).
Epochs ``e = 1..epochs`` alternate: while ``e <= msteps`` a *max* pass over D_f
(batches of ``forget_batch_size``) maximises ``KL_T(teacher || student)``;
every epoch a *min* pass over D_r (batches of ``batch_size``) minimises
``α KL_T(teacher || student) + γ CE``. ``KL_T`` is the released ``DistillKL``:
``T² · KL(softmax(t/T) || softmax(s/T))`` averaged over the batch. Teacher in
inference mode, student in training mode, one SGD optimiser (coupled weight
decay, momentum) for both passes. The learning rate of epoch ``e`` is
``lr · rate^#{d in lr_decay_epochs : e > d}`` (``adjust_learning_rate``).
"""
from __future__ import annotations

import jax
import numpy as np

from jaxunlearn import loop, optim, parallel
from jaxunlearn.losses import cross_entropy, kl_divergence, weighted_mean
from jaxunlearn.methods import Method, _common, epoch_callback, register
from jaxunlearn.state import TrainState, apply_eval, apply_train


def default_config():
  # The authors' CIFAR-10 setting (BadT_experiments.ipynb, scrub() and the
  # loaders of the seeds loop; large_scale_unlearning.ipynb the same but a
  # D_r batch of 256): optim sgd, sgda_learning_rate 5e-4, sgda_epochs 3,
  # msteps 2, kd_T 4, alpha 0.001, gamma 0.99, beta 0 (no other KD term),
  # sgda_weight_decay 5e-4, sgda_momentum 0.9, lr_decay_epochs [3,5,9] with
  # rate 0.1 (no decay within 3 epochs), retain_bs 128, forget_bs 512,
  # augment=False. Their `smoothing` is unused since the SGDA smoothing was
  # removed (commit 812dd5d).
  return _common.base_config(lr=5e-4, epochs=3, msteps=2, temperature=4.0,
                             alpha=0.001, gamma=0.99, momentum=0.9,
                             weight_decay=5e-4, batch_size=128,
                             forget_batch_size=512, augment=False,
                             lr_decay_epochs=(3, 5, 9), lr_decay_rate=0.1)


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
    ce = weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"], axis_name)
    return cfg.alpha * kl + cfg.gamma * ce, batch_stats, {}
  return loss_fn


def epoch_lr(cfg, epoch: int) -> float:
  """The learning rate of 1-based ``epoch`` (``adjust_learning_rate``)."""
  decays = int(np.sum(epoch > np.asarray(cfg.get("lr_decay_epochs", ()), float)))
  return cfg.lr * cfg.get("lr_decay_rate", 0.1) ** decays


def unlearn(task, cfg, key):
  tx = optim.for_method_per_epoch(cfg)  # the epoch loop sets the lr
  state = _common.MethodState(TrainState.create(task.variables, tx),
                              {"teacher": task.variables})
  steps = {mode: parallel.jit_step(_common.make_step(task.model, tx,
                                                     make_loss(mode, cfg)), task.mesh)
           for mode in ("max", "min")}
  augment = task.augment if cfg.augment else loop.Augment()
  batch_size = {"max": cfg.get("forget_batch_size", None) or cfg.batch_size,
                "min": cfg.batch_size}
  on_epoch_end = epoch_callback(task, lambda s: s.train.variables)
  pass_keys = list(loop.folded_keys(key, 2 * cfg.epochs))
  for epoch in range(cfg.epochs):
    opt_state = state.train.opt_state
    dtype = opt_state.hyperparams["learning_rate"].dtype
    lr = parallel.put_replicated(np.asarray(epoch_lr(cfg, epoch + 1), dtype),
                                 task.mesh)
    state = state.replace(train=state.train.replace(opt_state=opt_state._replace(
        hyperparams=dict(opt_state.hyperparams, learning_rate=lr))))
    passes = (("max", task.data.forget),) if epoch < cfg.msteps else ()
    for mode, split in passes + (("min", task.data.retain),):
      state = loop.run_epochs(steps[mode], state, split, batch_size=batch_size[mode],
                              epochs=1, key=pass_keys[2 * epoch + (mode == "min")],
                              mesh=task.mesh, augment=augment,
                              desc=f"scrub {mode}", progress=task.progress)
    if on_epoch_end is not None:
      on_epoch_end(epoch, state)
  return jax.device_get(state.train.variables), {}


register(Method("scrub", unlearn, default_config,
                "alternating max (D_f) / min (D_r) teacher distillation"))
