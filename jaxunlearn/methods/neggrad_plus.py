"""NegGrad+: descend on the retain set while ascending on the forget set.

``L = β CE(f_θ(x_r), y_r) - (1 - β) CE(f_θ(x_f), y_f)`` (Kurmanji et al.,
NeurIPS 2023, the "NegGrad+" baseline of SCRUB). One pass over D_r per epoch
with D_f cycled alongside; the two halves run as separate training-mode
forward passes (BatchNorm statistics update on each).
"""
from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.01, epochs=3, beta=0.95)


def make_loss(beta: float):
  def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
    retain, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    forget, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch["paired"],
                                           axis_name)
    return beta * retain - (1.0 - beta) * forget, batch_stats, {}
  return loss_fn


def unlearn(task, cfg, key):
  return _common.run(task, cfg, key, make_loss(cfg.beta), task.data.retain,
                     paired=task.data.forget, desc="neggrad_plus")


register(Method("neggrad_plus", unlearn, default_config,
                "beta CE(D_r) - (1 - beta) CE(D_f)"))
