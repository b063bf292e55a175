"""L2UL pieces: PGD constraints, MAS importance, the loss against NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ml_collections

from jaxunlearn import loop, parallel
from jaxunlearn.attacks import pgd_l2_targeted, random_targets
from jaxunlearn.data.splits import random_forget_split
from jaxunlearn.errors import UserError
from jaxunlearn.methods import UnlearnTask, l2ul
from jaxunlearn.models import get_model
from jaxunlearn.models import init_variables
from jaxunlearn.train import train_model


@pytest.fixture(scope="module")
def model_vars(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std,
                    widths=(8, 16, 16))
  variables = init_variables(model, spec.image_shape, jax.random.key(0))
  images = jnp.asarray(splits["train"].images[:12], jnp.float32) / 255.0
  labels = jnp.asarray(splits["train"].labels[:12])
  return model, variables, images, labels


def test_pgd_stays_in_the_box_and_the_ball_and_moves_toward_the_target(trained):
  """On a trained CNN: every example in [0, 1] and in the eps-ball of its
  source, and the targets' probability goes up."""
  spec, splits, model, variables = trained
  images = jnp.asarray(splits["train"].images[:12], jnp.float32) / 255.0
  labels = jnp.asarray(splits["train"].labels[:12])
  targets = random_targets(jax.random.key(1), labels, 10, 1)[:, 0]
  adv = pgd_l2_targeted(model, variables, images, targets, jax.random.key(2),
                        epsilon=1.0, step_size=0.2, steps=20)
  assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
  dist = np.sqrt(np.sum((np.asarray(adv) - np.asarray(images)) ** 2, axis=(1, 2, 3)))
  assert np.all(dist <= 1.0 + 1e-5)
  def target_prob(x):
    logits = model.apply(variables, x, train=False)[0]
    return np.asarray(jax.nn.softmax(logits))[np.arange(12), np.asarray(targets)]
  before, after = target_prob(images), target_prob(adv)
  assert np.mean(before) < 0.2 and np.mean(after) > np.mean(before) + 0.1


def test_random_targets_never_equal_the_label():
  labels = jnp.tile(jnp.arange(10), 50)
  t = np.asarray(random_targets(jax.random.key(0), labels, 10, 20))
  assert np.all(t != np.asarray(labels)[:, None])


def test_importance_is_zero_for_a_parameter_the_logits_ignore(model_vars):
  model, variables, images, _ = model_vars
  # A parameter tensor the forward pass never reads.
  params = dict(variables["params"], unused={"w": jnp.ones((3,))})
  omega = l2ul.mas_importance(model, dict(variables, params=params), images, 5)
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
  batch = dict(forget_x=images, forget_y=labels, forget_mask=jnp.ones(12),
               adv_x=adv_x, adv_t=adv_t, adv_mask=jnp.ones(5))
  loss, _ = l2ul.l2ul_loss(variables["params"], variables["batch_stats"], model,
                           batch, theta0, omega, 2.0, "full", -1)
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


# --------------------------------------------------------------------------
# The whole method on a briefly trained tiny CNN.

@pytest.fixture(scope="module")
def trained(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std,
                    widths=(8, 16, 16))
  recipe = ml_collections.ConfigDict(dict(epochs=6, batch_size=64, lr=0.05,
                                          momentum=0.9, weight_decay=5e-4,
                                          schedule="cosine"))
  variables, _ = train_model(model, recipe, splits["train"], spec.image_shape,
                             jax.random.key(0), parallel.make_mesh(1),
                             progress=False)
  return spec, splits, model, variables


def make_task(trained, count, num_devices, seed=0):
  spec, splits, model, variables = trained
  data = random_forget_split(splits["train"], splits["test"].take(np.arange(200)),
                             jax.random.key(seed), count=count)
  return UnlearnTask(model, variables, data, 10, spec.image_shape,
                     parallel.make_mesh(num_devices), loop.Augment(),
                     ml_collections.ConfigDict(), progress=False)


def small_config(**overrides):
  """The digits settings (configs/l2ul_digits.py) with few, short attacks."""
  cfg = l2ul.default_config()
  cfg.update(dict(epsilon=0.5, lr=0.01, lam=0.1, n_adv=4, pgd_steps=5,
                  adv_batch_size=20), **overrides)
  return cfg


def _assert_same(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)


def test_two_devices_and_the_on_device_loop_give_the_single_device_numbers(trained):
  """6 steps of the full method, k = 7 in forget batches of 3 (the last one
  of 1 sample: 1 row per device and a padding row on 2 devices) and 28
  adversarial examples in batches of 15: the shard_map version (2 devices)
  and the lax.while_loop version give the numbers of the single-device host
  loop."""
  cfg = small_config(max_iter=2, adv_batch_size=15, forget_batch_size=3)
  one, info_one = l2ul.run(make_task(trained, 7, 1), cfg, jax.random.key(3))
  two, info_two = l2ul.run(make_task(trained, 7, 2), cfg, jax.random.key(3))
  cfg.device_loop = "device"
  dev, info_dev = l2ul.run(make_task(trained, 7, 1), cfg, jax.random.key(3))
  # max_iter + 1 = 3 passes of 2 adversarial batches.
  assert info_one["steps"] == info_two["steps"] == info_dev["steps"] == 6
  assert info_one["max_steps"] == 6
  moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
              zip(jax.tree.leaves(one), jax.tree.leaves(trained[3])))
  assert moved > 1e-3  # the steps did change the model
  _assert_same(one, two, 1e-5)
  _assert_same(one, dev, 1e-5)


def test_two_device_host_loop_compiles_no_step_after_the_first(trained,
                                                               backend_compiles):
  """2 steps and 8 steps of the loop on 2 devices compile the same programs:
  the initial carry is replicated like every later one, so the second call
  does not see new shardings (it used to compile the stop check and the
  update again)."""
  task = make_task(trained, 7, 2)
  l2ul.run(task, small_config(max_iter=0), jax.random.key(3))  # eager ops' programs
  counts = {}
  for passes in (1, 4):  # of 2 adversarial batches (4 x 7 examples, batch 20)
    (_, info), counts[passes] = backend_compiles(
        lambda: l2ul.run(task, small_config(max_iter=passes - 1), jax.random.key(3)))
    assert info["steps"] == 2 * passes
  assert counts[1] > 0 and counts[4] == counts[1], counts


def _predict(model, variables, split):
  logits, _ = model.apply(variables, jnp.asarray(split.images, jnp.float32) / 255.0)
  return np.asarray(jnp.argmax(logits, -1))


def test_relabel_moves_every_sample_to_the_label(trained):
  task = make_task(trained, 4, 1)
  new, info = l2ul.run(task, small_config(max_iter=300, relabel=0),
                       jax.random.key(1))
  assert info["stopped"]
  assert np.all(_predict(task.model, new, task.data.forget) == 0)


def test_continual_requests_keep_earlier_samples_forgotten(trained):
  """Two requests of 6 on 2 devices: each stops with every sample forgotten
  so far misclassified (the first request is the plain method)."""
  task = make_task(trained, 4, 2)
  train = trained[1]["train"]
  pick = np.random.default_rng(0).choice(len(train), 12, replace=False)
  assert np.mean(_predict(task.model, task.variables, train.take(pick))
                 == train.labels[pick]) > 0.5
  requests = [train.ids[pick[:6]], train.ids[pick[6:]]]
  _, report = l2ul.continual(task, small_config(max_iter=300), jax.random.key(2),
                             requests)
  assert [r["request"] for r in report] == [0, 1]
  assert report[0]["steps"] > 0
  for r in report:
    assert r["stopped"] and r["forgotten_so_far_acc"] == 0.0
    assert 0.0 < r["test_acc"] <= 1.0


def test_bad_variant_and_empty_forget_set_are_user_errors(trained):
  task = make_task(trained, 4, 1)
  with pytest.raises(UserError, match="unknown l2ul.variant"):
    l2ul.run(task, small_config(variant="nope"), jax.random.key(0))
  empty = task._replace(data=task.data._replace(
      forget=task.data.forget.take(np.arange(0))))
  with pytest.raises(UserError, match="forget set is empty"):
    l2ul.run(empty, small_config(), jax.random.key(0))


def test_adversarial_examples_sharded_over_two_devices_equal_one_device():
  """PGD with the examples split over 2 devices (as ``run`` does on a
  multi-device mesh) gives the 1-device examples: the random starts are
  drawn as on one device."""
  model = get_model("small_cnn", num_classes=10, mean=(0.5,), std=(0.3,))
  variables = init_variables(model, (8, 8, 1), jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (40, 8, 8, 1))
  t = jnp.arange(40) % 10
  kw = dict(epsilon=0.5, step_size=0.1, steps=10)
  one = l2ul.adversarial_examples(model, variables, x, t, jax.random.key(2), **kw)
  mesh = parallel.make_mesh(2)
  xs, ts = jax.device_put((x, t), parallel.batch_sharded(mesh))
  two = l2ul.adversarial_examples(
      model, jax.device_put(variables, parallel.replicated(mesh)), xs, ts,
      jax.random.key(2), **kw)
  assert len(two.sharding.device_set) == 2
  assert float(jnp.abs(one - x).max()) > 0.1  # the attack moved the images
  np.testing.assert_allclose(np.asarray(one), np.asarray(two), atol=1e-6)



@pytest.mark.parametrize("count", [64, 70])
def test_importance_is_the_released_accumulation_over_batches_of_32(count):
  """k = 64 and 70 (batches 32, 32, 6): the released
  ``estimate_parameter_importance`` zeroes the gradients of another model,
  so the copy's ``p.grad`` accumulates; Ω += |accumulated grad| · batch
  size, divided by (k // 32 + 1) · 32; then min-max inverted. Written here
  with per-batch gradients on the exact (unpadded) batches."""
  model = get_model("small_cnn", num_classes=10, mean=(0.5,), std=(0.3,),
                    widths=(4, 8, 8))
  variables = init_variables(model, (8, 8, 1), jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (count, 8, 8, 1))

  def batch_grad(x):
    def objective(params):
      # The mask (all ones) selects the BatchNorm code path the library's
      # padded batches use, so the two differ by rounding only.
      logits = model.apply(dict(variables, params=params), x, train=True,
                           mask=jnp.ones(len(x)), mutable=["batch_stats"])[0][0]
      return jnp.mean(jnp.sqrt(jnp.sum(logits ** 2, -1)))
    return jax.tree.map(np.asarray, jax.grad(objective)(variables["params"]))

  def reference(accumulate):
    """(Ω with the authors' divisor, Ω̂) per parameter tensor."""
    grads = [batch_grad(images[i:i + 32]) for i in range(0, count, 32)]
    sizes = [min(32, count - i) for i in range(0, count, 32)]
    leaves = [jax.tree.leaves(g) for g in grads]
    out = []
    for n in range(len(leaves[0])):
      p_grad, omega = np.zeros_like(leaves[0][n]), np.zeros_like(leaves[0][n])
      for g, size in zip(leaves, sizes):
        p_grad = p_grad + g[n] if accumulate else g[n]
        omega += np.abs(p_grad) * size
      omega = omega / ((count // 32 + 1) * 32)
      out.append((omega, 1 - (omega - omega.min()) / (omega.max() - omega.min())))
    return out

  for name, accumulate in (("released", True), ("per_batch", False)):
    raw = jax.tree.leaves(l2ul.mas_importance(model, variables, images, 32, name))
    normalised = jax.tree.leaves(l2ul.normalised_importance(
        model, variables, images, batch_size=32, importance=name))
    for a, a_hat, (b, b_hat) in zip(raw, normalised, reference(accumulate)):
      # Ours divides by k: the divisors differ by a constant the min-max
      # normalisation cancels.
      a = np.asarray(a) * count / ((count // 32 + 1) * 32)
      np.testing.assert_allclose(a, b, atol=1e-6)
      # Ω̂ = 1 - (Ω - min)/(max - min) carries Ω's tolerance divided by the span.
      np.testing.assert_allclose(np.asarray(a_hat), b_hat,
                                 atol=2e-6 / (b.max() - b.min()))
  gap = max(float(np.abs(a[1] - b[1]).max())
            for a, b in zip(reference(True), reference(False)))
  assert gap > 0.05  # the two rules differ at this k


def test_unknown_importance_rule_is_a_user_error(model_vars):
  model, variables, images, _ = model_vars
  with pytest.raises(UserError, match="l2ul.importance"):
    l2ul.mas_importance(model, variables, images, 32, importance="mas")


def test_defaults_are_the_authors_cifar10_setting():
  """csm9493/L2UL run_unlearn_cifar_imagenet.sh (--num-adv-images 20
  --pgd-eps 4.0 --unlearn-lr 0.001 --reg-lamb 1.0) on
  main_unlearn_cifar10_mixed_label_resnet18.py (--pgd-alpha 0.1,
  --pgd-iter 100, SGD momentum 0.9 weight decay 1e-4, loaders of 32 and
  256, max_iter 1000)."""
  authors = dict(variant="full", n_adv=20, epsilon=4.0, pgd_step_size=0.1,
                 pgd_steps=100, lr=1e-3, momentum=0.9, weight_decay=1e-4,
                 lam=1.0, max_iter=1000, forget_batch_size=32,
                 adv_batch_size=256, importance="released", relabel=-1)
  cfg = l2ul.default_config()
  assert {k: cfg[k] for k in authors} == authors


def test_digits_config_starts_from_the_base_config_and_changes_five_values():
  import os
  from jaxunlearn.config import get_config, load_file
  cfg = load_file(os.path.join(os.path.dirname(__file__), "..", "configs",
                               "l2ul_digits.py"))
  assert cfg.method == "l2ul" and cfg.forget.kind == "random"
  assert cfg.forget.count == 16
  changed = {k: v for k, v in cfg.l2ul.items() if v != l2ul.default_config()[k]}
  assert changed == dict(epsilon=0.5, pgd_steps=50, lr=0.01, lam=0.1,
                         adv_batch_size=64)
  base = get_config()
  assert cfg.train == base.train and cfg.model == base.model


def test_unlearn_returns_steps_budget_and_stop_flag(trained):
  """The stats (the run puts them in its report) hold the steps, the budget
  and whether the stop rule held, in one dict."""
  task = make_task(trained, 4, 1)
  _, stats = l2ul.unlearn(task, small_config(max_iter=1, variant="ga"),
                          jax.random.key(0))
  assert set(stats) == {"steps", "max_steps", "stopped", "outcome"}
  assert stats["max_steps"] == 2  # 2 passes over one forget batch of 4
  assert 0 <= stats["steps"] <= 2 and isinstance(stats["stopped"], bool)
  assert stats["stopped"] or stats["steps"] == 2
  assert stats["outcome"] == l2ul.outcome(stats, small_config(max_iter=1))


def test_outcome_says_whether_the_stop_rule_held():
  cfg = small_config()
  assert l2ul.outcome(dict(steps=7, max_steps=10, stopped=True), cfg) == (
      "stopped after 7 steps: no forget sample keeps its label.")
  assert "budget of 10 steps ran out" in l2ul.outcome(
      dict(steps=10, max_steps=10, stopped=False), cfg)
  assert "classified as 2" in l2ul.outcome(
      dict(steps=3, max_steps=10, stopped=True), small_config(relabel=2))
