"""l1-sparse fine-tuning: fine-tune on D_r with an l1 penalty on the weights.

Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023:
``L = CE(f_θ(x_r), y_r) + γ_t ||θ||_1``, with γ_t decaying linearly from
``gamma`` to 0 over the run (their schedule; ``decay=False`` keeps it fixed).
"""
import jax
import jax.numpy as jnp

from jaxunlearn.methods import Method, _common, register


def default_config():
  return _common.base_config(lr=0.05, epochs=10, gamma=5e-4, decay=True)


def l1_norm(params) -> jnp.ndarray:
  return sum(jnp.sum(jnp.abs(p)) for p in jax.tree.leaves(params))


def make_loss(gamma: float, total_steps: int, decay: bool):
  def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
    loss, batch_stats, _ = _common.ce_on(net, params, batch_stats, batch, axis_name)
    step = frozen["step"].astype(jnp.float32)
    scale = (1.0 - step / total_steps) if decay else 1.0
    return loss + gamma * scale * l1_norm(params), batch_stats, {}
  return loss_fn


def unlearn(task, cfg, key):
  from jaxunlearn.batches import num_batches
  total = max(cfg.epochs * num_batches(len(task.data.retain), cfg.batch_size), 1)
  return _common.run(task, cfg, key, make_loss(cfg.gamma, total, cfg.decay),
                     task.data.retain, desc="l1_sparse")


register(Method("l1_sparse", unlearn, default_config,
                "fine-tune on D_r with an l1 penalty (Jia et al. 2023)"))
