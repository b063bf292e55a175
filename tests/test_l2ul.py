"""L2UL pieces: PGD constraints, MAS importance, the loss against NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn.attacks import pgd_l2_targeted, random_targets
from jaxunlearn.methods import l2ul
from jaxunlearn.models import get_model
from jaxunlearn.train import init_variables


@pytest.fixture(scope="module")
def model_vars(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std,
                    widths=(8, 16, 16))
  variables = init_variables(model, spec.image_shape, jax.random.key(0))
  images = jnp.asarray(splits["train"].images[:12], jnp.float32) / 255.0
  labels = jnp.asarray(splits["train"].labels[:12])
  return model, variables, images, labels


def test_pgd_stays_in_the_box_and_the_ball_and_moves_toward_the_target(model_vars):
  model, variables, images, labels = model_vars
  targets = random_targets(jax.random.key(1), labels, 10, 1)[:, 0]
  adv = pgd_l2_targeted(model, variables, images, targets, jax.random.key(2),
                        epsilon=1.0, step_size=0.2, steps=20)
  assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
  dist = np.sqrt(np.sum((np.asarray(adv) - np.asarray(images)) ** 2, axis=(1, 2, 3)))
  assert np.all(dist <= 1.0 + 1e-5)
  def target_prob(x):
    logits = model.apply(variables, x, train=False)[0]
    return np.asarray(jax.nn.softmax(logits))[np.arange(12), np.asarray(targets)]
  assert np.mean(target_prob(adv)) > np.mean(target_prob(images))


def test_random_targets_never_equal_the_label():
  labels = jnp.tile(jnp.arange(10), 50)
  t = np.asarray(random_targets(jax.random.key(0), labels, 10, 20))
  assert np.all(t != np.asarray(labels)[:, None])


def test_importance_is_zero_for_a_parameter_the_logits_ignore(model_vars):
  model, variables, images, _ = model_vars
  # A parameter tensor the forward pass never reads.
  params = dict(variables["params"], unused={"w": jnp.ones((3,))})
  omega = l2ul.mas_importance(model, dict(variables, params=params), images)
  np.testing.assert_array_equal(np.asarray(omega["unused"]["w"]), 0.0)
  norm = l2ul.normalise_inverted(omega)
  assert np.all(np.asarray(norm["unused"]["w"]) == 1.0)  # max == min: defined, no NaN
  for leaf in jax.tree.leaves(norm):
    assert np.all(np.isfinite(leaf)) and leaf.min() >= 0 and leaf.max() <= 1


def test_loss_matches_numpy(model_vars):
  model, variables, images, labels = model_vars
  rng = np.random.default_rng(0)
  adv_x, adv_t = images[:5], jnp.asarray(rng.integers(0, 10, 5))
  theta0 = jax.tree.map(lambda p: p + 0.01, variables["params"])
  omega = jax.tree.map(lambda p: jnp.full_like(p, 0.5), variables["params"])
  loss, _ = l2ul.l2ul_loss(variables["params"], variables["batch_stats"], model,
                           images, labels, adv_x, adv_t, theta0, omega, 2.0, "full", -1)
  def ce(x, y):
    logits = np.asarray(model.apply(variables, x, train=True,
                                    mutable=["batch_stats"])[0][0], np.float64)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), np.asarray(y)])
  n_params = sum(p.size for p in jax.tree.leaves(variables["params"]))
  expected = (-12 * ce(images, labels) + 5 * ce(adv_x, adv_t)) / 17 \
      + 2.0 * 0.5 * n_params * 0.01 ** 2 / 2
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)


def test_coupled_weight_decay_is_pytorch_sgd():
  from jaxunlearn.state import sgd
  import optax
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
