"""Fine-tune: CE on the retain set D_r for a few epochs.

The forget set is dropped and the model, trained further on what remains,
gradually loses what only D_f supported ("catastrophic forgetting"; Warnecke
et al. NDSS 2023, Golatkar et al. CVPR 2020 use it as a baseline).
``L = CE(f_θ(x_r), y_r)``.
"""
from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.05, epochs=10)


def finetune_loss(net, params, batch_stats, frozen, batch, key, axis_name):
  loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
  return loss, batch_stats, {}


def unlearn(task, cfg, key):
  return _common.run(task, cfg, key, finetune_loss, task.data.retain, desc="finetune")


register(Method("finetune", unlearn, default_config, "CE on D_r"))
