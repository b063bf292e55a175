"""DELETE's loss and gradient against independent NumPy computations."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn.losses import weighted_mean
from jaxunlearn.methods.delete import delete_loss, forget_class_mask_for


def np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def np_delete_loss(student, teacher, labels, extra_masked=()):
  """KL(q || p) batchmean, q = softmax(teacher with masked classes), in float64."""
  b, c = teacher.shape
  masked = teacher.astype(np.float64).copy()
  masked[np.arange(b), labels] = -np.inf
  for k in extra_masked:
    masked[:, k] = -np.inf
  q = np_softmax(masked)
  log_p = np.log(np_softmax(student.astype(np.float64)))
  total = 0.0
  for i in range(b):
    for j in range(c):
      if q[i, j] > 0:  # 0 log 0 = 0
        total += q[i, j] * (np.log(q[i, j]) - log_p[i, j])
  return total / b, q


@pytest.mark.parametrize("extra", [(), (1, 4)])
def test_loss_equals_numpy_formula(extra):
  rng = np.random.default_rng(0)
  b, c = 16, 7
  student = rng.normal(size=(b, c)).astype(np.float32) * 3
  teacher = rng.normal(size=(b, c)).astype(np.float32) * 3
  labels = rng.integers(0, c, b)
  class_mask = None
  if extra:
    class_mask = forget_class_mask_for("all_forget_classes", extra, c)
  per_example = delete_loss(jnp.asarray(student), jnp.asarray(teacher),
                            jnp.asarray(labels), class_mask)
  loss = float(weighted_mean(per_example, jnp.ones(b)))
  expected, q = np_delete_loss(student, teacher, labels, extra)
  assert np.all(np.isfinite(np.asarray(per_example)))
  assert (q == 0).sum() >= b  # the masked entries really are exact zeros
  np.testing.assert_allclose(loss, expected, rtol=0, atol=1e-6)


def test_loss_is_retention_plus_forgetting_term():
  """KL(q || p) = KL(q || p~) - log(1 - p_y), p~ = p renormalised without y."""
  rng = np.random.default_rng(1)
  b, c = 8, 5
  student = rng.normal(size=(b, c))
  teacher = rng.normal(size=(b, c))
  labels = rng.integers(0, c, b)
  per_example = np.asarray(delete_loss(jnp.asarray(student, jnp.float32),
                                       jnp.asarray(teacher, jnp.float32),
                                       jnp.asarray(labels)))
  p = np_softmax(student)
  _, q = np_delete_loss(student, teacher, labels)
  for i in range(b):
    keep = np.arange(c) != labels[i]
    p_tilde = p[i, keep] / p[i, keep].sum()
    kl = np.sum(q[i, keep] * (np.log(q[i, keep]) - np.log(p_tilde)))
    np.testing.assert_allclose(per_example[i], kl - np.log(1 - p[i, labels[i]]),
                               atol=1e-5)


def test_gradient_wrt_student_logits_is_p_minus_q_over_b():
  rng = np.random.default_rng(2)
  b, c = 12, 10
  student = jnp.asarray(rng.normal(size=(b, c)), jnp.float32)
  teacher = jnp.asarray(rng.normal(size=(b, c)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, c, b))
  grad = jax.grad(lambda s: weighted_mean(delete_loss(s, teacher, labels),
                                          jnp.ones(b)))(student)
  p = np_softmax(np.asarray(student, np.float64))
  _, q = np_delete_loss(np.asarray(student), np.asarray(teacher), np.asarray(labels))
  np.testing.assert_allclose(np.asarray(grad), (p - q) / b, atol=1e-7)


def test_padding_does_not_change_the_loss():
  rng = np.random.default_rng(3)
  student = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  teacher = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  labels = jnp.asarray([0, 1, 2, 3, 0, 1])
  mask = jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)
  padded = weighted_mean(delete_loss(student, teacher, labels), mask)
  unpadded = weighted_mean(delete_loss(student[:4], teacher[:4], labels[:4]),
                           jnp.ones(4))
  np.testing.assert_allclose(float(padded), float(unpadded), rtol=1e-6)


class DeleteStepTest(chex.TestCase):
  """The step as a plain function and under jax.jit (chex variants): the
  same numbers either way."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_retain_term_adds_the_weighted_distillation_kl(self):
    """make_step(retain_weight=w): the loss grows by w * KL(softmax(teacher) ||
    softmax(student)) on the paired retain batch, computed here in NumPy."""
    from jaxunlearn.methods.delete import DeleteState, make_step
    from jaxunlearn.models import get_model
    from jaxunlearn.optim import sgd
    from jaxunlearn.state import TrainState
    model = get_model("small_cnn", num_classes=5, mean=(0.5,) * 3, std=(0.25,) * 3,
                      widths=(4, 8, 8))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 1, (6, 8, 8, 3)), jnp.float32)
    retain = jnp.asarray(rng.uniform(0, 1, (4, 8, 8, 3)), jnp.float32)
    variables = model.init(jax.random.key(0), images)
    teacher = jax.tree.map(lambda x: x + 0.05 * jnp.sign(x), variables)
    tx = sgd(0.0, 0.0)
    state = DeleteState(TrainState.create(variables, tx), teacher)
    batch = dict(image=images, label=jnp.asarray([0, 1, 2, 3, 4, 0]),
                 mask=jnp.ones(6), paired=dict(image=retain, label=jnp.zeros(4, int),
                                               mask=jnp.ones(4)))
    losses = {}
    for w in (0.0, 2.0):
      new_state, metrics = self.variant(make_step(model, tx, retain_weight=w))(
          state, batch, None)
      chex.assert_shape(metrics["loss"], ())
      chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
      losses[w] = float(metrics["loss"])
    (student, _), _ = model.apply(variables, retain, train=True, mutable=["batch_stats"])
    (target, _) = model.apply(teacher, retain)
    p_t = np_softmax(np.asarray(target, np.float64))
    log_p_s = np.log(np_softmax(np.asarray(student, np.float64)))
    kl = np.mean(np.sum(p_t * (np.log(p_t) - log_p_s), -1))
    assert kl > 1e-4
    np.testing.assert_allclose(losses[2.0] - losses[0.0], 2.0 * kl, rtol=1e-4)
