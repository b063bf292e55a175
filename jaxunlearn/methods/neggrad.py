"""Gradient ascent (NegGrad): maximise CE on the forget set.

``L = -CE(f_θ(x_f), y_f)`` (Golatkar et al. CVPR 2020; Thudi et al. 2022).
Unbounded: few epochs and a small learning rate, or the model collapses.
"""
from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.002, epochs=3, weight_decay=0.0)


def neggrad_loss(net, params, batch_stats, frozen, batch, key, axis_name):
  loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name,
                                       sign=-1.0)
  return loss, batch_stats, {}


def unlearn(task, cfg, key):
  return _common.run(task, cfg, key, neggrad_loss, task.data.forget, desc="neggrad")


register(Method("neggrad", unlearn, default_config, "gradient ascent on D_f"))
