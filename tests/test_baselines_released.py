"""SalUn, SSD and SCRUB against independent re-implementations of their
authors' released code (OPTML-Group/Unlearn-Saliency,
if-loops/selective-synaptic-dampening, meghdadk/SCRUB) on shared inputs."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxunlearn import loop, parallel
from jaxunlearn.data.pipeline import Split
from jaxunlearn.data.splits import ForgetSplit
from jaxunlearn.methods import UnlearnTask, _stats, ssd


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


def _batch_mean_gradient(variables, images, labels):
  """Gradient of the mean CE of one batch, by hand in float64, model in eval
  mode (BatchNorm normalises with its running statistics)."""
  p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()}
       for k, d in variables["params"].items()}
  s = {n: np.asarray(v, np.float64) for n, v in variables["batch_stats"]["bn"].items()}
  x = images.reshape(len(images), -1).astype(np.float64) / 255.0
  z = (x - s["mean"]) / np.sqrt(s["var"] + 1e-5)
  h = z * p["bn"]["scale"] + p["bn"]["bias"]
  logits = h @ p["head"]["kernel"] + p["head"]["bias"]
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  delta = (prob - np.eye(logits.shape[1])[labels]) / len(labels)
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


def _task(model, variables, forget, retain):
  recipe = ml_collections.ConfigDict(dict(epochs=1, batch_size=4, lr=0.01,
                                          momentum=0.9, weight_decay=0.0))
  empty = Split(np.zeros((0,) + forget.images.shape[1:], np.uint8),
                np.zeros(0, np.int32), np.zeros(0, np.int64))
  data = ForgetSplit(forget=forget, retain=retain, test_forget=empty,
                     test_retain=empty, forget_classes=None)
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
  out = ssd.unlearn(task, cfg, jax.random.key(0))
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
