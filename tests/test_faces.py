"""Face-identity unlearning: margin heads, synthetic faces, the face task's pieces."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxunlearn import parallel
from jaxunlearn.data import synthetic_faces
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.models import get_model
from jaxunlearn.models.margin import (FaceCNN, margin_cross_entropy,
                                      margin_logits)
from jaxunlearn.optim import sgd
from jaxunlearn.state import TrainState
from jaxunlearn.tasks import faces


def numpy_arcface(cos, labels, s, m, easy_margin=False):
  """insightface ArcMarginProduct, written independently in NumPy (float64)."""
  cos = np.asarray(cos, np.float64)
  out = cos.copy()
  for b, y in enumerate(labels):
    c = cos[b, y]
    theta = math.acos(c)
    phi = math.cos(theta + m)
    if easy_margin:
      out[b, y] = phi if c > 0 else c
    else:
      out[b, y] = phi if c > math.cos(math.pi - m) else c - math.sin(math.pi - m) * m
  return s * out


# Column 0 of row 2 has θ = acos(-0.95) ≈ 2.83 > π - 0.5: the fallback branch.
COS = np.array([[0.9, 0.1, -0.3], [0.2, -0.5, 0.6], [-0.95, 0.4, 0.0],
                [0.05, 0.7, -0.8]], np.float32)
LABELS = np.array([0, 2, 0, 1])


@pytest.mark.parametrize("easy_margin", [False, True])
def test_arcface_logits_match_numpy_formula(easy_margin):
  s, m = 16.0, 0.5
  assert COS[2, 0] <= math.cos(math.pi - m)  # the θ + m > π case is covered
  got = np.asarray(margin_logits(jnp.asarray(COS), jnp.asarray(LABELS),
                                 kind="arcface", s=s, m=m, easy_margin=easy_margin))
  np.testing.assert_allclose(got, numpy_arcface(COS, LABELS, s, m, easy_margin),
                             atol=2e-4)
  changed = ~np.isclose(got, s * COS)
  expected = np.zeros_like(changed)
  expected[np.arange(4), LABELS] = True
  if easy_margin:  # no margin where cos θ <= 0
    expected[2, 0] = False
  np.testing.assert_array_equal(changed, expected)


def test_cosface_and_plain_logits():
  s, m = 30.0, 0.35
  got = np.asarray(margin_logits(jnp.asarray(COS), jnp.asarray(LABELS),
                                 kind="cosface", s=s, m=m))
  want = s * COS.astype(np.float64)
  want[np.arange(4), LABELS] -= s * m
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
  plain = margin_logits(jnp.asarray(COS), jnp.asarray(LABELS), kind="none", s=s)
  np.testing.assert_allclose(np.asarray(plain), s * COS, rtol=1e-6)
  with pytest.raises(UserError, match="arcface"):
    margin_logits(jnp.asarray(COS), jnp.asarray(LABELS), kind="sphereface")


def test_margin_loss_gradient_matches_finite_differences():
  s, m = 8.0, 0.4
  rng = np.random.default_rng(0)
  cos = rng.uniform(-0.8, 0.8, (3, 5)).astype(np.float32)
  labels = np.array([1, 4, 0])

  @jax.jit
  def loss(c):
    return jnp.sum(margin_cross_entropy(s * c, labels, kind="arcface", s=s, m=m))
  grad = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(cos)))
  eps = 1e-3
  numeric = np.zeros_like(cos)
  for idx in np.ndindex(cos.shape):
    up, down = cos.copy(), cos.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric[idx] = (float(loss(jnp.asarray(up))) - float(loss(jnp.asarray(down)))) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, rtol=2e-2, atol=2e-3)
  # Only the label column carries the margin: the others are plain s·softmax.
  p = np.asarray(jax.nn.softmax(margin_logits(jnp.asarray(cos), labels, kind="arcface",
                                              s=s, m=m)))
  off_label = np.ones_like(cos, bool)
  off_label[np.arange(3), labels] = False
  np.testing.assert_allclose(grad[off_label], s * p[off_label], rtol=1e-4)


def test_face_cnn_eval_logits_are_scaled_cosine():
  model = get_model("face_cnn", num_classes=6, mean=(0.5,) * 3, std=(0.5,) * 3,
                    widths=(4,), embedding_dim=5, scale=12.0)
  images = jax.random.uniform(jax.random.key(0), (3, 4, 4, 3))
  variables = jax.jit(model.init)(jax.random.key(1), images)
  logits, embedding = jax.jit(model.apply)(variables, images)
  weights = np.asarray(variables["params"]["head"]["weights"], np.float64)
  e = np.asarray(embedding, np.float64)
  cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (
      weights / np.linalg.norm(weights, axis=0, keepdims=True))
  assert logits.shape == (3, 6) and embedding.shape == (3, 5)
  np.testing.assert_allclose(np.asarray(logits), 12.0 * cos, atol=1e-4)


def test_synthetic_faces_deterministic_and_identities_distinct():
  a, labels = synthetic_faces.generate(seed=3, num_identities=8,
                                       images_per_identity=10, size=16)
  b, _ = synthetic_faces.generate(seed=3, num_identities=8,
                                  images_per_identity=10, size=16)
  c, _ = synthetic_faces.generate(seed=4, num_identities=8,
                                  images_per_identity=10, size=16)
  assert a.shape == (80, 16, 16, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  params = [synthetic_faces.identity_params(3, k) for k in range(8)]
  assert len({tuple(sorted(p.items())) for p in params}) == 8
  # Identities are separable from pixels alone: nearest class mean of the
  # centred, normalised face region (the background is random per image) on
  # held-out images (pose and lighting vary) beats chance (1/8) by far.
  x = a[:, 4:12, 4:12].reshape(80, -1).astype(np.float64) / 255
  x -= x.mean(1, keepdims=True)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  train = np.arange(80) % 10 < 7
  means = np.stack([x[train & (labels == k)].mean(0) for k in range(8)])
  dist = ((x[~train][:, None] - means[None]) ** 2).sum(-1)
  assert np.mean(dist.argmin(1) == labels[~train]) >= 0.4


def test_synthetic_faces_prepared_by_image_folder_builder(tmp_path):
  from jaxunlearn.data import load_dataset
  root = synthetic_faces.write_image_folder(
      str(tmp_path / "manual"), seed=1, num_identities=3, images_per_identity=4,
      test_per_identity=1, size=16)
  spec, splits = load_dataset("image_folder:image_size=16", str(tmp_path / "tfds"),
                              root)
  images, labels = synthetic_faces.generate(1, 3, 4, 16)
  assert spec.num_classes == 3 and spec.image_shape == (16, 16, 3)
  is_test = np.arange(12) % 4 == 3
  for name, rows in (("train", ~is_test), ("test", is_test)):
    np.testing.assert_array_equal(splits[name].images, images[rows])  # PNG: lossless
    np.testing.assert_array_equal(splits[name].labels, labels[rows])


def _toy_splits(num_identities=5, train_per=4, test_per=2):
  labels_train = np.repeat(np.arange(num_identities), train_per).astype(np.int32)
  labels_test = np.repeat(np.arange(num_identities), test_per).astype(np.int32)
  train = Split(np.zeros((len(labels_train), 8, 8, 3), np.uint8), labels_train,
                np.arange(len(labels_train), dtype=np.int64))
  test = Split(np.zeros((len(labels_test), 8, 8, 3), np.uint8), labels_test,
               1000 + np.arange(len(labels_test), dtype=np.int64))
  return train, test


def test_forget_identity_out_of_range_is_a_user_error():
  train, test = _toy_splits()
  with pytest.raises(UserError, match="identities 0..4"):
    faces.identity_forget_split(train, test, (1, 5), 5)
  split = faces.identity_forget_split(train, test, (1, 3), 5)
  assert set(split.forget.labels) == {1, 3} and len(split.forget) == 8
  assert set(split.test_forget.labels) == {1, 3}
  assert not set(split.retain.labels) & {1, 3}


def test_select_identities_takes_the_protocols_subset():
  train, test = _toy_splits(num_identities=5, train_per=4, test_per=2)
  keep = np.flatnonzero(~((train.labels == 1) & (np.arange(len(train)) % 4 > 1)))
  train = train.take(keep)  # identity 1 now has only 2 training images
  sub_train, sub_test, k = faces.select_identities(train, test, 3, 3, 2)
  assert k == 3
  np.testing.assert_array_equal(sub_train.labels, np.repeat([0, 1, 2], 3))
  assert set(sub_train.ids) <= set(train.ids[np.isin(train.labels, [0, 2, 3])])
  assert len(sub_test) == 6
  with pytest.raises(UserError, match="num_identities"):
    faces.select_identities(train, test, 5, 3, 2)


def test_roc_auc_matches_pair_counting():
  rng = np.random.default_rng(0)
  pos = rng.integers(0, 5, 30).astype(float)  # ties on purpose
  neg = rng.integers(0, 4, 40).astype(float)
  brute = np.mean((pos[:, None] > neg[None]) + 0.5 * (pos[:, None] == neg[None]))
  assert faces.roc_auc(pos, neg) == pytest.approx(brute)
  emb = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 0.05]], float)
  labels = np.array([0, 0, 1, 1, 2])
  # Group {0}: genuine (0,1); impostors (0,2) (0,3) (0,4) (1,2) (1,3) (1,4).
  same, diff = faces.pair_similarities(emb, labels, labels == 0)
  assert len(same) == 1 and len(diff) == 6
  v = faces.verification(emb, labels, labels == 0, max_images=10)
  assert v["intra_cosine"] > 0.99
  assert v["auc"] == pytest.approx(4 / 6)  # (0,4) and (1,4) beat the genuine pair
  v = faces.verification(emb, labels, labels == 1, max_images=10)
  assert v["auc"] == 1.0


def test_margin_step_two_devices_equals_one_device():
  assert len(jax.devices()) >= 2, "tests/conftest.py forces 2 CPU devices"
  model = FaceCNN(num_classes=5, mean=(0.5,) * 3, std=(0.5,) * 3, widths=(4,),
                  embedding_dim=6, scale=8.0)
  images = jax.random.uniform(jax.random.key(0), (8, 4, 4, 3))
  batch = {"image": images, "label": jnp.arange(8) % 5,
           "mask": jnp.ones(8).at[7].set(0.0)}  # one padded example
  variables = jax.jit(model.init)(jax.random.key(1), images[:1])
  tx = sgd(0.1, 0.9)
  step = faces.make_margin_step(model, tx, faces.Margin("arcface", 8.0, 0.3))
  results = []
  for num_devices, wrap in ((1, parallel.jit_step), (2, parallel.shard_map_step)):
    mesh = parallel.make_mesh(num_devices)
    state = parallel.replicate(TrainState.create(variables, tx), mesh)
    new_state, metrics = wrap(step, mesh)(state, parallel.shard_batch(
        jax.device_get(batch), mesh), jax.random.key(2))
    results.append((jax.device_get(new_state), float(metrics["loss"])))
  (one, loss_one), (two, loss_two) = results
  assert loss_two == pytest.approx(loss_one, rel=1e-5)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_face_task_rejects_unsupported_method(tmp_path):
  from jaxunlearn import run as run_lib
  cfg = ml_collections.ConfigDict(dict(task="face", method="l2ul"))
  with pytest.raises(UserError, match="config.face"):
    run_lib.run(cfg, str(tmp_path))
  cfg.face = faces.default_config()
  with pytest.raises(UserError, match="delete or finetune"):
    run_lib.run(cfg, str(tmp_path))


def test_face_run_end_to_end_tiny(tmp_path):
  """The whole job on 4 tiny synthetic identities (retraining skipped to stay
  fast: it is the same function as the original's training)."""
  from jaxunlearn import run as run_lib
  from jaxunlearn.config import get_config
  cfg = get_config()
  cfg.task, cfg.method, cfg.dataset = "face", "delete", "synthetic_faces"
  cfg.data_dir = str(tmp_path / "data")
  cfg.model = ml_collections.ConfigDict(dict(name="face_cnn", widths=(4,),
                                             embedding_dim=8))
  cfg.face = faces.default_config()
  cfg.face.synthetic.update(num_identities=4, images_per_identity=6,
                            test_per_identity=2, size=8)
  cfg.forget.classes = (1,)
  cfg.train.update(epochs=1, batch_size=8, augment=False)
  cfg.delete.update(epochs=1, batch_size=8)
  cfg.eval.batch_size = 8
  cfg.eval.evaluators = ("accuracy", "face_verification", "rte")
  cfg.num_devices, cfg.progress, cfg.with_retrained = 1, False, False
  report = run_lib.run(cfg, str(tmp_path / "run"), log=lambda *_: None)
  assert report["forget"]["size"] == 4 and report["dataset"] == "synthetic_faces"
  assert report["models"]["retrained"] is None
  for role in ("original", "unlearned"):
    metrics = report["models"][role]
    for key in ("forget_acc", "test_forget_acc", "test_retain_acc",
                "forget_verification_auc", "retain_verification_auc",
                "forget_label_cosine", "phase_seconds"):
      assert np.isfinite(metrics[key]), (role, key)
  # Checkpointed (orbax) and timed, so a second run reuses both phases; the
  # original's evaluation is kept too (no retrained model in this run).
  records = sorted("-".join(p.name.split("-")[:2 if p.name.startswith("eval-") else 1])
                   for p in (tmp_path / "run" / "checkpoints").glob("*.json"))
  assert records == ["eval-original", "original", "unlearn"]
  assert (tmp_path / "run" / "report.json").exists()
