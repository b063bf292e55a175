"""The library's one optimiser against PyTorch's SGD update, written out."""
import jax.numpy as jnp
import numpy as np
import optax

from jaxunlearn.optim import sgd


def test_coupled_weight_decay_is_pytorch_sgd():
  lr, m, wd = 0.1, 0.9, 0.01
  tx = sgd(lr, m, wd)
  p = jnp.asarray([1.0, -2.0])
  grads = [jnp.asarray([0.5, 0.1]), jnp.asarray([-0.2, 0.3]), jnp.asarray([0.0, 1.0])]
  state = tx.init(p)
  p_ref, buf = np.array([1.0, -2.0]), np.zeros(2)
  for g in grads:
    updates, state = tx.update(g, state, p)
    p = optax.apply_updates(p, updates)
    d = np.asarray(g) + wd * p_ref        # PyTorch: d_p = g + wd * p
    buf = m * buf + d                     # buf = momentum * buf + d_p
    p_ref = p_ref - lr * buf              # p = p - lr * buf
  np.testing.assert_allclose(np.asarray(p), p_ref, rtol=1e-6)
