"""IEU's update and the relearning convergence delay."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxunlearn import parallel
from jaxunlearn.data.splits import class_forget_split
from jaxunlearn.methods import _common, finetune, ieu
from jaxunlearn.metrics import rcd
from jaxunlearn.models import get_model
from jaxunlearn.optim import sgd
from jaxunlearn.state import TrainState
from jaxunlearn.models import init_variables
from jaxunlearn.train import make_supervised_step, train_model


@pytest.fixture(scope="module")
def setup(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std,
                    widths=(8, 16, 16))
  variables = init_variables(model, spec.image_shape, jax.random.key(0))
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((8, 8, 8, 1)).astype(np.float32),
           "label": rng.integers(0, 10, 8).astype(np.int32),
           "mask": np.ones(8, np.float32)}
  batch["paired"] = {"image": rng.random((8, 8, 8, 1)).astype(np.float32),
                     "label": rng.integers(0, 10, 8).astype(np.int32),
                     "mask": np.ones(8, np.float32)}
  return spec, splits, model, variables, batch


def ieu_cfg(**kw):
  cfg = ieu.default_config()
  cfg.update(kw)
  return cfg


def test_no_noise_no_forget_term_is_sgd_with_weight_decay(setup):
  spec, splits, model, variables, batch = setup
  cfg = ieu_cfg(lr=0.05, momentum=0.0, weight_decay=0.01, alpha=0.0, sigma0=0.0)
  mesh = parallel.make_mesh(2)
  step = parallel.jit_step(ieu.make_step(model, cfg, 10), mesh, donate=False)
  state = parallel.replicate(ieu.init_state(variables), mesh)
  sharded = parallel.shard_batch(batch, mesh)
  for _ in range(3):
    state, _ = step(state, sharded, jax.random.key(3))
  tx = sgd(0.05, 0.0, 0.01)
  reference = parallel.replicate(TrainState.create(variables, tx), mesh)
  plain = parallel.jit_step(make_supervised_step(model, tx), mesh, donate=False)
  retain_only = {k: v for k, v in batch.items() if k != "paired"}
  for _ in range(3):
    reference, _ = plain(reference, parallel.shard_batch(retain_only, mesh),
                         jax.random.key(3))
  for a, b in zip(jax.tree.leaves(jax.device_get(state.params)),
                  jax.tree.leaves(jax.device_get(reference.params))):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_noise_has_the_configured_variance(setup):
  spec, splits, model, variables, batch = setup
  sigma = 0.03
  cfg = ieu_cfg(lr=0.0, alpha=0.0, sigma0=sigma, noise_schedule="constant")
  step = jax.jit(ieu.make_step(model, cfg, 10))
  state, _ = step(ieu.init_state(variables), batch, jax.random.key(11))
  delta = np.concatenate([np.ravel(a - b) for a, b in zip(
      jax.tree.leaves(state.params), jax.tree.leaves(variables["params"]))])
  n = delta.size
  assert n > 3000
  # The sample variance of n normals has std sigma^2 * sqrt(2 / n).
  assert abs(delta.var() - sigma ** 2) < 5 * sigma ** 2 * np.sqrt(2 / n)
  assert abs(delta.mean()) < 5 * sigma / np.sqrt(n)


@pytest.mark.parametrize("kind,expected", [("constant", [1.0, 1.0, 1.0]),
                                           ("exponential", [1.0, 0.5, 0.25]),
                                           ("cosine", [1.0, 0.5, 0.0])])
def test_noise_schedules(kind, expected):
  cfg = ieu_cfg(sigma0=1.0, gamma=0.5, noise_schedule=kind)
  got = [float(ieu.noise_scale(cfg, jnp.asarray(t), 2)) for t in (0, 1, 2)]
  np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.fixture(scope="module")
def trained(setup):
  spec, splits, model, variables, batch = setup
  recipe = ml_collections.ConfigDict(dict(epochs=6, batch_size=64, lr=0.05,
                                          momentum=0.9, weight_decay=5e-4))
  data = class_forget_split(splits["train"], splits["test"], (3,), 10)
  original, _ = train_model(model, recipe, splits["train"], spec.image_shape,
                            jax.random.key(1), parallel.make_mesh(1), progress=False)
  retrained, _ = train_model(model, recipe, data.retain, spec.image_shape,
                             jax.random.key(1), parallel.make_mesh(1), progress=False)
  return model, data, original, retrained


def test_rcd_of_the_original_model_is_zero(trained):
  model, data, original, retrained = trained
  accs, dists = rcd.relearning_curve(model, original, data.forget, lr=0.01,
                                     momentum=0.9, batch_size=32, steps=20, seed=0)
  threshold = accs[0] - 0.05
  assert rcd.delay(accs, threshold) == (0, True) and dists[0] == 0.0


def test_rcd_of_the_retrained_model_is_positive_and_monotone_in_the_threshold(trained):
  model, data, original, retrained = trained
  accs, dists = rcd.relearning_curve(model, retrained, data.forget, lr=0.01,
                                     momentum=0.9, batch_size=32, steps=40, seed=0)
  assert accs[0] < 0.05  # never saw class 3
  steps = [rcd.delay(accs, t)[0] for t in (0.3, 0.6, 0.9)]
  assert steps[0] > 0 and steps == sorted(steps)
  # The on-device scan computes the same curve as the host loop.
  scan_accs, scan_dists = rcd.relearning_curve(
      model, retrained, data.forget, lr=0.01, momentum=0.9, batch_size=32,
      steps=40, seed=0, device_loop="device")
  np.testing.assert_allclose(scan_accs, accs, atol=1e-6)
  np.testing.assert_allclose(scan_dists, dists, rtol=1e-4, atol=1e-5)
  assert np.all(np.diff(dists[: steps[-1] + 1]) >= -1e-6) or dists[steps[-1]] > 0


def test_rcd_reports_the_cap_when_never_reached():
  accs = np.array([0.0, 0.1, 0.2])
  assert rcd.delay(accs, 0.9) == (2, False)
