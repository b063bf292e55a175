"""SalUn, SSD, SCRUB and Fisher forgetting against independent
re-implementations of their authors' released code
(OPTML-Group/Unlearn-Saliency, if-loops/selective-synaptic-dampening,
meghdadk/SCRUB; Fisher forgetting as the SSD repository copies it from
AdityaGolatkar/SelectiveForgetting) on shared inputs."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxunlearn import loop, parallel
from jaxunlearn.batches import Split
from jaxunlearn.batches import ForgetSplit
from jaxunlearn.methods import UnlearnTask, _stats, fisher, salun, scrub, ssd


class BatchNormLinear(nn.Module):
  """BatchNorm then a dense layer: small enough for gradients by hand, and
  eval-mode BatchNorm (running statistics) is visible in them."""
  num_classes: int = 3

  @nn.compact
  def __call__(self, images, train: bool = False, mask=None):
    x = images.reshape((images.shape[0], -1))
    x = nn.BatchNorm(use_running_average=not train, epsilon=1e-5, name="bn")(x)
    return nn.Dense(self.num_classes, name="head")(x), x


def _tiny(num_features=6, num_classes=3, seed=0):
  rng = np.random.default_rng(seed)
  params = {"bn": {"scale": rng.uniform(0.5, 1.5, num_features),
                   "bias": rng.normal(size=num_features)},
            "head": {"kernel": rng.normal(size=(num_features, num_classes)),
                     "bias": rng.normal(size=num_classes)}}
  stats = {"bn": {"mean": rng.normal(size=num_features) * 0.2,
                  "var": rng.uniform(0.02, 0.1, num_features)}}
  cast = lambda t: jax.tree.map(lambda a: np.asarray(a, np.float32), t)
  return BatchNormLinear(num_classes), {"params": cast(params),
                                        "batch_stats": cast(stats)}


def _split(n, num_features=6, num_classes=3, seed=1, offset=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, num_features, 1, 1)).astype(np.uint8)
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  return Split(images, labels, np.arange(offset, offset + n))


def _forward(variables, images):
  """(params, normalised inputs, features, softmax) in float64, model in
  eval mode (BatchNorm normalises with its running statistics)."""
  p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()}
       for k, d in variables["params"].items()}
  s = {n: np.asarray(v, np.float64) for n, v in variables["batch_stats"]["bn"].items()}
  x = images.reshape(len(images), -1).astype(np.float64) / 255.0
  z = (x - s["mean"]) / np.sqrt(s["var"] + 1e-5)
  h = z * p["bn"]["scale"] + p["bn"]["bias"]
  logits = h @ p["head"]["kernel"] + p["head"]["bias"]
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  return p, z, h, prob / prob.sum(-1, keepdims=True)


def _batch_mean_gradient(variables, images, labels):
  """Gradient of the mean CE of one batch, by hand in float64."""
  p, z, h, prob = _forward(variables, images)
  delta = (prob - np.eye(prob.shape[1])[labels]) / len(labels)
  dh = delta @ p["head"]["kernel"].T
  return {"bn": {"scale": np.sum(dh * z, 0), "bias": np.sum(dh, 0)},
          "head": {"kernel": h.T @ delta, "bias": np.sum(delta, 0)}}


def _released_importance(variables, split, batch_size):
  """``calc_importance``: (1/len(loader)) Σ_batches grad(mean CE)², a loader
  in order that keeps the last partial batch."""
  total, count = None, 0
  for start in range(0, len(split), batch_size):
    g = _batch_mean_gradient(variables, split.images[start:start + batch_size],
                             split.labels[start:start + batch_size])
    sq = jax.tree.map(np.square, g)
    total = sq if total is None else jax.tree.map(np.add, total, sq)
    count += 1
  return jax.tree.map(lambda t: t / count, total)


def _assert_tree_close(got, want, rtol=1e-6):
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got),
                          jax.tree.leaves(want)):
    # Relative to the tensor's scale: a gradient entry that cancels to ~0 is
    # only as exact as float32 allows relative to its neighbours.
    np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * np.abs(w).max(),
                               err_msg=str(path))


def test_ssd_importance_is_mean_of_squared_batch_mean_gradients():
  model, variables = _tiny()
  split = _split(10)  # batches of 4, 4 and a partial 2
  got = _stats.mean_squared_batch_gradient(model, variables, split, 4,
                                           parallel.make_mesh(2))
  _assert_tree_close(got, _released_importance(variables, split, 4))
  # It is not the per-example Fisher the library used before.
  fisher = _stats.fisher_diagonal(model, variables, split, 4, parallel.make_mesh(2))
  assert np.abs(got["head"]["kernel"] - fisher["head"]["kernel"]).max() > 1e-3


def _released_dampen(theta, i_f, i_d, alpha, lam):
  """``modify_weight`` in torch: selection, dampening, bound at 1 (float32)."""
  torch = pytest.importorskip("torch")
  p, fimp, oimp = (torch.tensor(np.asarray(a, np.float32)) for a in (theta, i_f, i_d))
  locations = torch.where(fimp > oimp.mul(alpha))
  weight = (oimp.mul(lam)).div(fimp).pow(1)
  update = weight[locations]
  update[torch.where(update > 1)] = 1
  p[locations] = p[locations].mul(update)
  return p.numpy()


def _task(model, variables, forget, retain, forget_classes=None):
  recipe = ml_collections.ConfigDict(dict(epochs=1, batch_size=4, lr=0.01,
                                          momentum=0.9, weight_decay=0.0))
  empty = Split(np.zeros((0,) + forget.images.shape[1:], np.uint8),
                np.zeros(0, np.int32), np.zeros(0, np.int64))
  data = ForgetSplit(forget=forget, retain=retain, test_forget=empty,
                     test_retain=empty, forget_classes=forget_classes)
  return UnlearnTask(model=model, variables=variables, data=data, num_classes=3,
                     image_shape=forget.images.shape[1:],
                     mesh=parallel.make_mesh(2), augment=loop.Augment(),
                     train_config=recipe, progress=False)


def test_ssd_unlearn_matches_the_released_pipeline():
  """Forget batches of forget_batch_size, full set = D_r then D_f in batches
  of batch_size (their full_train_dl), then the dampening rule."""
  model, variables = _tiny()
  forget, retain = _split(6, seed=2), _split(14, seed=3, offset=6)
  task = _task(model, variables, forget, retain)
  cfg = ssd.default_config()
  cfg.update(batch_size=4, forget_batch_size=8, alpha=1.0, lam=0.5)
  out, _ = ssd.unlearn(task, cfg, jax.random.key(0))
  i_f = _released_importance(variables, forget, 8)
  full = Split(np.concatenate([retain.images, forget.images]),
               np.concatenate([retain.labels, forget.labels]),
               np.concatenate([retain.ids, forget.ids]))
  i_d = _released_importance(variables, full, 4)
  changed = 0
  for got, theta, f, d in zip(jax.tree.leaves(out["params"]),
                              jax.tree.leaves(variables["params"]),
                              jax.tree.leaves(i_f), jax.tree.leaves(i_d)):
    ratio = f / d
    # Only decisions noise cannot flip: no ratio within 1e-3 of alpha.
    assert np.all(np.abs(ratio - cfg.alpha) > 1e-3 * cfg.alpha)
    want = _released_dampen(theta, f, d, cfg.alpha, cfg.lam)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    changed += int(np.sum(got != theta))
  assert changed > 0
  jax.tree.map(np.testing.assert_array_equal, out["batch_stats"],
               variables["batch_stats"])


def test_ssd_dampening_matches_the_released_rule():
  rng = np.random.default_rng(1)
  theta = rng.normal(size=(200,)).astype(np.float32)
  i_d = rng.uniform(0.1, 1.0, 200).astype(np.float32)
  i_f = (i_d * rng.uniform(0.0, 20.0, 200)).astype(np.float32)
  i_f[:5] = 0.0  # never selected, never divided by
  out = ssd.dampen({"w": theta}, {"w": i_f}, {"w": i_d}, alpha=10.0, lam=1.0)["w"]
  selected = i_f > 10.0 * i_d
  assert selected.any() and (~selected).any()
  np.testing.assert_array_equal(out, _released_dampen(theta, i_f, i_d, 10.0, 1.0))
  np.testing.assert_array_equal(out[~selected], theta[~selected])


def test_ssd_defaults_are_the_authors():
  cfg = ssd.default_config()
  assert (cfg.alpha, cfg.lam, cfg.batch_size, cfg.forget_batch_size) == (10.0, 1.0, 64, 128)


# --- Fisher forgetting ------------------------------------------------------

@pytest.mark.parametrize("devices,per_example", [(1, "vmap"), (2, "vmap"),
                                                 (1, "scan"), (2, "scan")])
def test_predictive_fisher_weights_every_class_by_its_probability(devices,
                                                                  per_example):
  """The released ``hessian``: a loader of batch 1, and for every class y,
  prob[y] * grad(CE(x, y))^2, averaged over the examples; examples vmapped
  or scanned, on one or two devices (10 examples, batch 4: padding)."""
  model, variables = _tiny()
  split = _split(10)
  got = _stats.predictive_fisher_diagonal(model, variables, split, 4,
                                          parallel.make_mesh(devices),
                                          per_example=per_example)
  _, _, _, prob = _forward(variables, split.images)
  want = None
  for i in range(len(split)):
    for y in range(prob.shape[1]):
      g = _batch_mean_gradient(variables, split.images[i:i + 1], np.asarray([y]))
      term = jax.tree.map(lambda t: prob[i, y] * t * t / len(split), g)
      want = term if want is None else jax.tree.map(np.add, want, term)
  _assert_tree_close(got, want, rtol=1e-5)
  # It is not the empirical Fisher of the labelled loss.
  empirical = _stats.fisher_diagonal(model, variables, split, 4, parallel.make_mesh(1))
  assert not np.allclose(got["head"]["kernel"], empirical["head"]["kernel"], rtol=0.1)


def test_per_example_mode_is_checked():
  model, variables = _tiny()
  with pytest.raises(ValueError, match="per_example='pmap'"):
    _stats.predictive_fisher_diagonal(model, variables, _split(4), 4,
                                      parallel.make_mesh(1), per_example="pmap")


def _released_get_mean_var(p, grad2, alpha, num_classes, forget_class):
  """``get_mean_var`` of ``FisherForgetting`` in torch layout: the full-class
  script with ``forget_class`` (a list), the random script with None."""
  var = 1.0 / (grad2 + 1e-8)
  var = var.clamp(max=1e3)
  if p.size(0) == num_classes:
    var = var.clamp(max=1e2)
  var = alpha * var
  if p.ndim > 1:
    var = var.mean(dim=1, keepdim=True).expand_as(p).clone()
  mu = p.clone()
  if forget_class is not None:
    if p.size(0) == num_classes:
      mu[forget_class] = 0
      var[forget_class] = 0.0001
    if p.size(0) == num_classes:
      var *= 10
    elif p.ndim == 1:
      var *= 10
  elif p.ndim == 1:
    var *= 10
  return mu, var


def _to_torch(a):
  """A flax kernel in torch's layout: (out, in) or (out, in, kh, kw)."""
  import torch
  a = np.asarray(a, np.float32)
  a = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a.T if a.ndim == 2 else a
  return torch.tensor(np.ascontiguousarray(a))


def _from_torch(t):
  a = t.numpy()
  return a.transpose(2, 3, 1, 0) if a.ndim == 4 else a.T if a.ndim == 2 else a


@pytest.mark.parametrize("forget_classes", [(1,), (0, 2), ()])
def test_fisher_mean_and_variance_match_the_released_get_mean_var(forget_classes):
  pytest.importorskip("torch")
  rng = np.random.default_rng(4)
  shapes = {"conv": {"kernel": (3, 3, 2, 5)}, "bn": {"scale": (5,), "bias": (5,)},
            "fc": {"kernel": (7, 4), "bias": (4,)},
            "head": {"kernel": (4, 3), "bias": (3,)}}
  is_shape = lambda x: isinstance(x, tuple)
  params = jax.tree.map(lambda s: rng.normal(size=s).astype(np.float32), shapes,
                        is_leaf=is_shape)
  # Fisher values on both sides of both caps (1/F = 1e2 and 1e3).
  f = jax.tree.map(lambda s: (10.0 ** rng.uniform(-5, 0, s)).astype(np.float32),
                   shapes, is_leaf=is_shape)
  mean, var = fisher.released_mean_var(params, f, 1e-6, 3, forget_classes)
  for p, g, mu, v in zip(*(jax.tree.leaves(t) for t in (params, f, mean, var))):
    want_mu, want_var = _released_get_mean_var(
        _to_torch(p), _to_torch(g), 1e-6, 3, list(forget_classes) or None)
    np.testing.assert_array_equal(mu, _from_torch(want_mu))
    np.testing.assert_allclose(v, _from_torch(want_var), rtol=1e-6)
  capped = np.concatenate([np.ravel(g) for g in jax.tree.leaves(f)])
  assert (capped < 1e-3).any() and (capped > 1e-2).any()
  if forget_classes:
    assert np.all(mean["head"]["kernel"][:, list(forget_classes)] == 0)


def test_fisher_unlearn_draws_around_the_released_mean():
  """θ = μ + sqrt(var) ε, μ and var from the retain set's predictive Fisher
  and the task's forget classes, one normal draw per parameter tensor."""
  model, variables = _tiny()
  forget, retain = _split(6, seed=2), _split(14, seed=3, offset=6)
  task = _task(model, variables, forget, retain, forget_classes=(2,))
  cfg = fisher.default_config()
  cfg.batch_size = 4
  key = jax.random.key(3)
  out, _ = fisher.unlearn(task, cfg, key)
  f = _stats.predictive_fisher_diagonal(model, variables, retain, 4, task.mesh)
  mean, var = fisher.released_mean_var(variables["params"], f, cfg.alpha, 3, (2,))
  keys = jax.random.split(key, len(jax.tree.leaves(mean)))
  for got, mu, v, k in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(mean),
                           jax.tree.leaves(var), keys):
    eps = np.asarray(jax.random.normal(k, mu.shape))
    np.testing.assert_allclose(got, mu + np.sqrt(v) * eps, rtol=1e-6, atol=1e-7)
  assert np.abs(out["params"]["head"]["kernel"][:, 2]).max() < 0.2  # std sqrt(1e-3)
  assert np.abs(variables["params"]["head"]["kernel"][:, 2]).max() > 0.5
  jax.tree.map(np.testing.assert_array_equal, out["batch_stats"],
               variables["batch_stats"])


def test_fisher_defaults_are_the_authors():
  cfg = fisher.default_config()
  assert (cfg.form, cfg.alpha, cfg.zero_forget_classes) == ("released", 1e-6, True)


# --- SalUn ------------------------------------------------------------------

def test_salun_saliency_gradient_sums_batch_mean_gradients():
  """generate_mask.py: Σ over forget batches of grad(mean CE), eval mode."""
  model, variables = _tiny()
  split = _split(10, seed=4)
  got = _stats.summed_batch_gradient(model, variables, split, 4,
                                     parallel.make_mesh(2))
  want = None
  for start in range(0, 10, 4):
    g = _batch_mean_gradient(variables, split.images[start:start + 4],
                             split.labels[start:start + 4])
    want = g if want is None else jax.tree.map(np.add, want, g)
  _assert_tree_close(got, want)


def test_salun_mask_keeps_int_of_fraction_times_size():
  gradient = {"a": np.arange(1.0, 36.0).reshape(7, 5), "b": -np.arange(36.0, 49.0)}
  mask = salun.saliency_mask(gradient, 0.1)  # 48 entries: int(4.8) = 4
  flat = np.concatenate([np.ravel(mask["a"]), np.ravel(mask["b"])])
  assert flat.sum() == 4
  np.testing.assert_array_equal(np.flatnonzero(mask["b"]), [9, 10, 11, 12])


def _torch_net(variables):
  """BatchNormLinear as a torch module with the same weights and statistics."""
  torch = pytest.importorskip("torch")
  p, stats = variables["params"], variables["batch_stats"]["bn"]
  bn = torch.nn.BatchNorm1d(p["bn"]["scale"].shape[0], eps=1e-5)
  fc = torch.nn.Linear(*p["head"]["kernel"].shape)
  with torch.no_grad():
    bn.weight.copy_(torch.tensor(p["bn"]["scale"]))
    bn.bias.copy_(torch.tensor(p["bn"]["bias"]))
    bn.running_mean.copy_(torch.tensor(stats["mean"]))
    bn.running_var.copy_(torch.tensor(stats["var"]))
    fc.weight.copy_(torch.tensor(p["head"]["kernel"].T))
    fc.bias.copy_(torch.tensor(p["head"]["bias"]))
  return torch.nn.Sequential(bn, fc)


def _params_of(net):
  w = dict(net.named_parameters())
  return {"bn": {"scale": w["0.weight"].detach().numpy(),
                 "bias": w["0.bias"].detach().numpy()},
          "head": {"kernel": w["1.weight"].detach().numpy().T,
                   "bias": w["1.bias"].detach().numpy()}}


def _torch_rl_steps(variables, mask, batches, lr, momentum, wd):
  """RL.py's steps on the same network in torch: grad *= mask, SGD step,
  masked-out weights restored to theta0, their momentum buffers zeroed."""
  torch = pytest.importorskip("torch")
  net = _torch_net(variables).train()
  masks = {"0.weight": mask["bn"]["scale"], "0.bias": mask["bn"]["bias"],
           "1.weight": mask["head"]["kernel"].T, "1.bias": mask["head"]["bias"]}
  masks = {k: torch.tensor(np.ascontiguousarray(v)) for k, v in masks.items()}
  theta0 = {n: q.detach().clone() for n, q in net.named_parameters()}
  opt = torch.optim.SGD(net.parameters(), lr, momentum=momentum, weight_decay=wd)
  for batch in batches:
    x = torch.tensor(batch["image"].reshape(len(batch["image"]), -1))
    loss = torch.nn.functional.cross_entropy(net(x), torch.tensor(batch["label"]).long())
    opt.zero_grad()
    loss.backward()
    for n, q in net.named_parameters():
      q.grad *= masks[n]
    opt.step()
    with torch.no_grad():
      for n, q in net.named_parameters():
        q.data.mul_(masks[n]).add_(theta0[n] * (1 - masks[n]))
        opt.state[q]["momentum_buffer"].mul_(masks[n])
  return _params_of(net)


def test_salun_step_moves_only_salient_weights_as_the_released_code():
  from jaxunlearn.methods import _common, random_label
  from jaxunlearn.state import TrainState
  model, variables = _tiny()
  rng = np.random.default_rng(5)
  mask = jax.tree.map(lambda a: (rng.random(a.shape) < 0.5).astype(np.float32),
                      variables["params"])
  cfg = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, weight_decay=0.05))
  tx = salun.masked_sgd(cfg, mask)
  step = jax.jit(_common.make_step(model, tx, random_label.loss_fn))
  state = _common.MethodState(TrainState.create(variables, tx), {})
  batches = []
  for _ in range(3):
    b = _split(8, seed=int(rng.integers(1 << 30)))
    batches.append({"image": (b.images / 255.0).astype(np.float32),
                    "label": b.labels, "mask": np.ones(8, np.float32)})
    state, _ = step(state, batches[-1], jax.random.key(0))
  params = jax.device_get(state.train.params)
  for got, before, m in zip(jax.tree.leaves(params), jax.tree.leaves(variables["params"]),
                            jax.tree.leaves(mask)):
    np.testing.assert_array_equal(got[m == 0], before[m == 0])  # bit-identical
    assert np.all(got[m == 1] != before[m == 1])
  trace = state.train.opt_state[-1][0].trace  # momentum of optax.sgd
  for t, m in zip(jax.tree.leaves(trace), jax.tree.leaves(mask)):
    assert np.all(np.asarray(t)[m == 0] == 0)
  want = _torch_rl_steps(variables, mask, batches, 0.1, 0.9, 0.05)
  _assert_tree_close(params, want)


@pytest.mark.parametrize("variant", ["released", "paired"])
def test_salun_unlearn_keeps_non_salient_weights_and_matches_the_mask(monkeypatch,
                                                                    variant):
  model, variables = _tiny()
  task = _task(model, variables, _split(6, seed=6), _split(10, seed=7, offset=6))
  cfg = salun.default_config()
  cfg.update(epochs=2, batch_size=4, variant=variant)
  seen = {}
  compute = salun.compute_mask
  monkeypatch.setattr(salun, "compute_mask",
                      lambda t, c: seen.setdefault("mask", compute(t, c)))
  out, _ = salun.unlearn(task, cfg, jax.random.key(3))
  mask = seen["mask"]
  assert sum(int(m.sum()) for m in jax.tree.leaves(mask)) == int(
      sum(m.size for m in jax.tree.leaves(mask)) * 0.5)
  moved = 0
  for got, before, m in zip(jax.tree.leaves(out["params"]),
                            jax.tree.leaves(variables["params"]), jax.tree.leaves(mask)):
    np.testing.assert_array_equal(got[m == 0], before[m == 0])
    moved += int(np.sum(got[m == 1] != before[m == 1]))
  assert moved > 0


def test_salun_released_loop_resumes_bit_identical(tmp_path, monkeypatch):
  """Stopped after 2 of 3 epochs (its checkpoints kept), the loop resumes:
  it trains only the third epoch and ends where an uninterrupted run ends."""
  model, variables = _tiny()
  task = _task(model, variables, _split(6, seed=6), _split(10, seed=7, offset=6))
  cfg = salun.default_config()
  cfg.update(epochs=3, batch_size=4)
  straight, _ = salun.unlearn(task._replace(checkpoint_dir=str(tmp_path / "a")),
                              cfg, jax.random.key(3))
  resumed_task = task._replace(checkpoint_dir=str(tmp_path / "b"))
  salun.unlearn(resumed_task, dict_replace(cfg, epochs=2), jax.random.key(3))
  passes = []
  run_epochs = loop.run_epochs
  monkeypatch.setattr(loop, "run_epochs",
                      lambda *a, **k: passes.append(k["desc"]) or run_epochs(*a, **k))
  resumed, _ = salun.unlearn(resumed_task, cfg, jax.random.key(3))
  assert passes == ["salun forget", "salun retain"]  # epoch 2 only
  monkeypatch.setattr(loop, "run_epochs", run_epochs)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  once, _ = salun.unlearn(task, dict_replace(cfg, epochs=1), jax.random.key(3))
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(once), jax.tree.leaves(resumed)))


def dict_replace(cfg, **changes):
  out = ml_collections.ConfigDict(cfg.to_dict())
  out.update(changes)
  return out


def test_salun_defaults_are_the_authors():
  cfg = salun.default_config()
  assert (cfg.lr, cfg.epochs, cfg.fraction, cfg.batch_size, cfg.momentum,
          cfg.weight_decay, cfg.augment, cfg.variant) == (
              0.013, 10, 0.5, 256, 0.9, 5e-4, True, "released")


# --- SCRUB ------------------------------------------------------------------

def _torch_scrub(variables, forget, retain, cfg):
  """The released loop: for epoch 1..E, adjust_learning_rate, a maximize
  train_distill pass over D_f while epoch <= msteps, then a minimize pass over
  D_r; student in train mode, teacher in eval mode, one SGD optimiser. Each
  split here is one batch, so the loaders' shuffling cannot matter."""
  torch = pytest.importorskip("torch")
  F = torch.nn.functional
  student, teacher = _torch_net(variables).train(), _torch_net(variables).eval()
  opt = torch.optim.SGD(student.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
  T = cfg.temperature

  def distill_kl(y_s, y_t):
    return F.kl_div(F.log_softmax(y_s / T, dim=1), F.softmax(y_t / T, dim=1),
                    reduction="sum") * T ** 2 / y_s.shape[0]

  def tensors(split):
    x = torch.tensor((split.images / 255.0).astype(np.float32).reshape(len(split), -1))
    return x, torch.tensor(split.labels).long()

  for epoch in range(1, cfg.epochs + 1):
    steps = np.sum(epoch > np.asarray(cfg.lr_decay_epochs))
    if steps > 0:
      for group in opt.param_groups:
        group["lr"] = cfg.lr * cfg.lr_decay_rate ** steps
    passes = [("maximize", forget)] if epoch <= cfg.msteps else []
    for split_name, split in passes + [("minimize", retain)]:
      x, y = tensors(split)
      logit_s = student(x)
      with torch.no_grad():
        logit_t = teacher(x)
      if split_name == "minimize":
        loss = cfg.gamma * F.cross_entropy(logit_s, y) + cfg.alpha * distill_kl(logit_s, logit_t)
      else:
        loss = -distill_kl(logit_s, logit_t)
      opt.zero_grad()
      loss.backward()
      opt.step()
  return _params_of(student)


def test_scrub_matches_the_released_loop():
  model, variables = _tiny()
  forget, retain = _split(6, seed=8), _split(8, seed=9, offset=6)
  task = _task(model, variables, forget, retain)
  cfg = scrub.default_config()
  cfg.update(epochs=3, msteps=2, batch_size=8, forget_batch_size=6, lr=0.05,
             weight_decay=0.01, temperature=2.0, alpha=0.3, gamma=0.7,
             lr_decay_epochs=(1,))  # epochs 2 and 3 at lr / 10
  out, _ = scrub.unlearn(task, cfg, jax.random.key(0))
  want = _torch_scrub(variables, forget, retain, cfg)
  _assert_tree_close(out["params"], want)
  # and it did move: the comparison is not between two copies of the original
  assert np.abs(out["params"]["head"]["kernel"] - variables["params"]["head"]["kernel"]).max() > 1e-3


def test_scrub_learning_rate_per_epoch():
  cfg = scrub.default_config()
  assert [scrub.epoch_lr(cfg, e) for e in (1, 2, 3)] == [5e-4] * 3
  cfg.lr_decay_epochs = (1, 2)
  np.testing.assert_allclose([scrub.epoch_lr(cfg, e) for e in (1, 2, 3)],
                             [5e-4, 5e-5, 5e-6])


def test_scrub_defaults_are_the_authors():
  cfg = scrub.default_config()
  assert (cfg.lr, cfg.epochs, cfg.msteps, cfg.batch_size, cfg.forget_batch_size,
          cfg.augment, cfg.temperature, cfg.alpha, cfg.gamma, cfg.momentum,
          cfg.weight_decay, tuple(cfg.lr_decay_epochs), cfg.lr_decay_rate) == (
              5e-4, 3, 2, 128, 512, False, 4.0, 0.001, 0.99, 0.9, 5e-4, (3, 5, 9), 0.1)


@pytest.mark.parametrize("method", ["salun", "ssd", "scrub"])
def test_digits_config_changes_only_its_method(method):
  import os
  from jaxunlearn.config import get_config, load_file
  from jaxunlearn.methods import METHODS
  root = os.path.join(os.path.dirname(__file__), os.pardir)
  cfg = load_file(os.path.join(root, "configs", f"{method}_digits.py")).to_dict()
  base = get_config().to_dict()
  assert cfg["method"] == method
  assert {k for k in base if cfg[k] != base[k]} == {"method", method}
  assert set(cfg[method]) == set(METHODS.get(method).default_config().to_dict())
