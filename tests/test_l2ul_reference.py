"""L2UL against independent torch transcriptions of the authors' code:
advertorch's L2 PGD, their loaders, stop budget and importance
(csm9493/L2UL main_unlearn_cifar10_mixed_label_resnet18.py, utils.py)."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn.attacks import pgd_l2_targeted

torch = pytest.importorskip("torch")
# --------------------------------------------------------------------------
# PGD against an independent torch transcription of advertorch's L2PGDAttack
# (rand_init=True, targeted=True, clip [0, 1]; BorealisAI/advertorch
# attacks/utils.py rand_init_delta, attacks/iterative_projected_gradient.py).

def _torch_l2_norm(x):
  return x.abs().pow(2).reshape(len(x), -1).sum(1).pow(0.5)


def _torch_clamp_by_l2(x, eps):
  factor = torch.min(eps / _torch_l2_norm(x), torch.ones(len(x)))
  return (x.transpose(0, -1) * factor).transpose(0, -1)


def _torch_advertorch_l2_pgd(predict, x, y, uniform, eps, eps_iter, nb_iter):
  """advertorch's computation, the random draw ``uniform`` given."""
  delta = uniform.clone()                    # delta.uniform_(clip_min, clip_max)
  delta = delta - x
  delta = _torch_clamp_by_l2(delta, eps)
  delta = torch.clamp(x + delta, 0.0, 1.0) - x   # end of rand_init_delta
  delta = torch.clamp(x + delta, 0.0, 1.0) - x   # PGDAttack.perturb
  delta.requires_grad_()
  for _ in range(nb_iter):
    loss = -torch.nn.functional.cross_entropy(predict(x + delta), y, reduction="sum")
    loss.backward()
    grad = delta.grad.data
    norm = torch.max(_torch_l2_norm(grad), torch.ones(len(x)) * 1e-6)
    grad = (grad.transpose(0, -1) * (1.0 / norm)).transpose(0, -1)
    delta.data = delta.data + eps_iter * grad
    delta.data = torch.clamp(x + delta.data, 0.0, 1.0) - x
    delta.data = _torch_clamp_by_l2(delta.data, eps)
    delta.grad.data.zero_()
  return torch.clamp(x + delta, 0.0, 1.0).detach()


class _TinyMLP(flax.linen.Module):
  @flax.linen.compact
  def __call__(self, images, train=False, mask=None):
    hidden = jnp.tanh(flax.linen.Dense(16, name="hidden")(images.reshape(len(images), -1)))
    logits = flax.linen.Dense(10, name="out")(hidden)
    return logits, hidden


def _tiny_mlp_pair():
  model = _TinyMLP()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  p = jax.tree.map(np.asarray, variables["params"])
  def predict(x):
    h = torch.tanh(x.reshape(len(x), -1) @ torch.from_numpy(p["hidden"]["kernel"])
                   + torch.from_numpy(p["hidden"]["bias"]))
    return h @ torch.from_numpy(p["out"]["kernel"]) + torch.from_numpy(p["out"]["bias"])
  return model, variables, predict


@pytest.mark.parametrize("steps", [0, 1, 6])
def test_pgd_is_advertorchs_l2_pgd_given_the_same_uniform_draw(steps):
  """Start (steps = 0), first iterate and 6 iterates equal advertorch's on a
  tiny MLP: the start is the random image U[0,1] pulled to within eps of x
  (so on the eps-sphere, not at a uniform radius), clipped to [0, 1]."""
  model, variables, predict = _tiny_mlp_pair()
  x = jax.random.uniform(jax.random.key(1), (12, 8, 8, 1))
  x = x.at[:3].set(jnp.round(x[:3]))  # pixels at 0 and 1: the clip acts
  targets = jnp.arange(12) % 10
  key = jax.random.key(2)
  kw = dict(epsilon=1.5, step_size=0.4, steps=steps)
  ours = np.asarray(pgd_l2_targeted(model, variables, x, targets, key, **kw))
  uniform = torch.from_numpy(np.array(jax.random.uniform(key, x.shape)))
  theirs = _torch_advertorch_l2_pgd(
      predict, torch.from_numpy(np.array(x)), torch.from_numpy(np.array(targets)).long(),
      uniform, 1.5, 0.4, steps).numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-6)
  radius = np.sqrt(np.sum((ours - np.asarray(x)) ** 2, axis=(1, 2, 3)))
  assert np.all(radius <= 1.5 + 1e-5)
  if steps == 0:  # every random image is farther than eps: starts on the sphere
    far = np.asarray(_flat(uniform.numpy() - np.asarray(x))) > 1.5
    np.testing.assert_allclose(radius[far & (np.arange(12) >= 3)], 1.5, rtol=1e-5)


def _flat(x):
  return np.sqrt(np.sum(x ** 2, axis=tuple(range(1, x.ndim))))


def test_l2_normalisation_and_ball_clamp_handle_zero_like_advertorch():
  from jaxunlearn.attacks import clamp_l2, normalise_l2
  g = jnp.stack([jnp.zeros((2, 2, 1)), jnp.full((2, 2, 1), 1e-8),
                 jnp.full((2, 2, 1), 3.0)])
  np.testing.assert_array_equal(np.asarray(normalise_l2(g))[0], 0.0)
  # ||g|| = 2e-8 < 1e-6: divided by 1e-6, not normalised to length 1.
  np.testing.assert_allclose(np.asarray(normalise_l2(g))[1], 1e-2, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(normalise_l2(g))[2], 0.5, rtol=1e-6)
  clamped = np.asarray(clamp_l2(g, 1.0))
  np.testing.assert_array_equal(clamped[:2], np.asarray(g)[:2])  # inside: kept
  np.testing.assert_allclose(_flat(clamped[2:]), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------
# The released unlearning loop (csm9493/L2UL
# main_unlearn_cifar10_mixed_label_resnet18.py): forget loader of batch 32,
# adversarial loader of batch 256, neither shuffled, last batch kept;
# ``cycle(forget_loader)`` made once; ``for (adv, forget) in zip(adv_loader,
# cycle)`` inside ``while``, ``j += 1`` after each pass, break on
# ``max_iter < j``; ``naive_train`` (the -CE baseline) runs whole epochs.

def _authors_pairs(count, n_adv_total, steps, forget_batch=32, adv_batch=256):
  """(forget rows, adversarial rows) of the released loop's first ``steps``."""
  from itertools import cycle
  from torch.utils.data import DataLoader, TensorDataset
  forget_loader = DataLoader(TensorDataset(torch.arange(count)), batch_size=forget_batch)
  adv_loader = DataLoader(TensorDataset(torch.arange(n_adv_total)), batch_size=adv_batch)
  forget_cycle = cycle(forget_loader)
  pairs = []
  while len(pairs) < steps:
    for (adv,), (forget,) in zip(adv_loader, forget_cycle):
      pairs.append((forget.tolist(), adv.tolist()))
      if len(pairs) == steps:
        break
  return pairs


def _authors_budget(variant, count, n_adv_total, max_iter, forget_batch=32,
                    adv_batch=256):
  """Steps the released loop takes when the stop rule never holds."""
  from itertools import cycle
  from torch.utils.data import DataLoader, TensorDataset
  forget_loader = DataLoader(TensorDataset(torch.arange(count)), batch_size=forget_batch)
  adv_loader = DataLoader(TensorDataset(torch.arange(n_adv_total)), batch_size=adv_batch)
  steps, j = 0, 0
  if variant == "ga":
    while True:
      for _ in forget_loader:   # naive_train
        steps += 1
      j += 1
      if max_iter < j:
        return steps
  forget_cycle = cycle(forget_loader)
  while True:
    for _ in zip(adv_loader, forget_cycle):
      steps += 1
    j += 1
    if max_iter < j:
      return steps


def _ours_pairs(count, n_adv_total, steps, forget_batch=32, adv_batch=256):
  from jaxunlearn.methods.l2ul import loader_batch
  pairs = []
  for step in range(steps):
    rows = []
    for n, b in ((count, forget_batch), (n_adv_total, adv_batch)):
      r, m = (np.asarray(a) for a in loader_batch(jnp.int32(step), n, b))
      rows.append(r[m > 0].tolist())
    pairs.append(tuple(rows))
  return pairs


@pytest.mark.parametrize("count,n_adv", [(1, 20), (16, 20), (70, 20), (40, 3)])
def test_batches_are_the_released_loaders_zipped(count, n_adv):
  """Step by step, the (forget batch, adversarial batch) rows equal the
  released loop's: the forget cycle runs on across passes, the adversarial
  loader restarts, last partial batches kept."""
  steps = 3 * -(-count * n_adv // 256) + 5
  assert _ours_pairs(count, count * n_adv, steps) == _authors_pairs(
      count, count * n_adv, steps)


@pytest.mark.parametrize("variant", ["full", "ga"])
@pytest.mark.parametrize("count,max_iter", [(1, 1000), (16, 1000), (64, 7), (70, 3)])
def test_step_budget_is_max_iter_plus_one_passes(variant, count, max_iter):
  import ml_collections
  from jaxunlearn.methods.l2ul import default_config, max_steps
  cfg = ml_collections.ConfigDict(dict(default_config(), variant=variant,
                                       max_iter=max_iter, n_adv=20,
                                       forget_batch_size=32, adv_batch_size=256))
  assert max_steps(cfg, count, count * 20) == _authors_budget(
      variant, count, count * 20, max_iter)
  if (variant, count) == ("full", 16):
    assert max_steps(cfg, count, count * 20) == 2002


def test_adversarial_examples_are_ordered_as_released():
  """The first-commit ``adv_attack`` (the one the CIFAR-10 script's call
  matches): ``for i in range(n_adv): for batch in forget_loader: append
  each``: example r k + j attacks forget sample j."""
  from torch.utils.data import DataLoader, TensorDataset
  from jaxunlearn.methods.l2ul import adversarial_sources
  count, n_adv = 70, 3
  loader = DataLoader(TensorDataset(torch.arange(count)), batch_size=32)
  theirs = [(int(j), i) for i in range(n_adv) for (batch,) in loader for j in batch]
  x = jnp.arange(count, dtype=jnp.float32).reshape(count, 1, 1, 1)
  table = jnp.arange(count)[:, None] * 10 + jnp.arange(n_adv)  # sample j, round r
  sources, targets = adversarial_sources(x, table)
  ours = [(int(s), int(t) % 10) for s, t in zip(np.asarray(sources).reshape(-1),
                                                 np.asarray(targets))]
  assert ours == theirs
  assert np.all(np.asarray(targets) // 10 == np.asarray(sources).reshape(-1))


def test_loop_steps_train_on_the_released_batches():
  """5 steps of ``make_loop``'s body (k = 7 in forget batches of 3, 12
  adversarial examples in batches of 5: partial batches of 1 and 2) equal
  5 SGD steps on ``l2ul_loss`` of the exact, unpadded batches the released
  loaders give."""
  import ml_collections
  from jaxunlearn import parallel
  from jaxunlearn.methods import l2ul
  from jaxunlearn.models import get_model
  from jaxunlearn.optim import sgd
  from jaxunlearn.models import init_variables
  model = get_model("small_cnn", num_classes=10, mean=(0.5,), std=(0.3,),
                    widths=(4, 8, 8))
  variables = init_variables(model, (8, 8, 1), jax.random.key(0))
  x_f = jax.random.uniform(jax.random.key(1), (7, 8, 8, 1))
  y_f = jnp.arange(7) % 10
  adv_x = jax.random.uniform(jax.random.key(2), (12, 8, 8, 1))
  adv_t = (jnp.arange(12) * 3) % 10
  omega = jax.tree.map(lambda p: jnp.full_like(p, 0.5), variables["params"])
  cfg = ml_collections.ConfigDict(dict(
      l2ul.default_config(), forget_batch_size=3, adv_batch_size=5, lr=0.05,
      lam=0.5, max_iter=100))
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
  _, body = l2ul.make_loop(model, tx, cfg, relabel=-1)
  jit_fn, carry, args = l2ul.prepare_loop(
      tx, parallel.make_mesh(1), variables, omega, jax.random.key(3),
      (np.asarray(x_f), np.asarray(y_f)),
      dict(image=np.asarray(x_f), label=np.asarray(y_f), mask=np.ones(7, np.float32)),
      adv_x, adv_t)
  body_fn = jit_fn(body)
  for _ in range(5):
    carry = body_fn(carry, *args)

  params, batch_stats = variables["params"], variables["batch_stats"]
  opt_state = tx.init(params)
  for f_rows, a_rows in _authors_pairs(7, 12, 5, forget_batch=3, adv_batch=5):
    batch = dict(forget_x=x_f[np.array(f_rows)], forget_y=y_f[np.array(f_rows)],
                 forget_mask=jnp.ones(len(f_rows)), adv_x=adv_x[np.array(a_rows)],
                 adv_t=adv_t[np.array(a_rows)], adv_mask=jnp.ones(len(a_rows)))
    grads, batch_stats = jax.grad(l2ul.l2ul_loss, has_aux=True)(
        params, batch_stats, model, batch, variables["params"], omega, cfg.lam,
        "full", -1)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  assert int(carry[0]) == 5
  for a, b in zip(jax.tree.leaves((carry[1], carry[2])),
                  jax.tree.leaves((params, batch_stats))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
