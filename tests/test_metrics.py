"""The evaluation suite (jaxunlearn/metrics/suite.py): each formula against
an independent computation, and every evaluator through ``EvalContext``."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax

from jaxunlearn import parallel
from jaxunlearn.batches import Split
from jaxunlearn.batches import ForgetSplit
from jaxunlearn.metrics.evaluators import EvalContext, evaluate
from jaxunlearn.metrics import mia, suite
from jaxunlearn.metrics.predict import make_predict_fn
from jaxunlearn.models import get_model

P3 = np.array([[0.7, 0.2, 0.1],
               [0.1, 0.3, 0.6],
               [0.25, 0.5, 0.25],
               [0.05, 0.05, 0.9]])
Y3 = np.array([0, 2, 0, 1])


def test_m_entropy_matches_hand_loop_and_differs_from_peers():
  expected = []
  for p, y in zip(P3, Y3):
    value = -(1 - p[y]) * math.log(p[y])
    for i in range(3):
      if i != y:
        value -= p[i] * math.log(1 - p[i])
    expected.append(value)
  ours = suite.m_entropy(P3, Y3)
  assert ours.shape == (4, 1)
  np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-12)
  peers = suite.m_entropy_peers(P3, Y3)
  assert np.all(np.abs(peers[:, 0] - np.array(expected)) > 1e-3)
  # A confidently correct sample has small Mentr, a confidently wrong one large.
  confident = suite.m_entropy(np.array([[0.98, 0.01, 0.01]] * 2), np.array([0, 1]))
  assert confident[0, 0] < 0.1 < 2.0 < confident[1, 0]


def test_entropy_and_other_features():
  np.testing.assert_allclose(suite.entropy(P3)[:, 0],
                             [-np.sum(p * np.log(p)) for p in P3], rtol=1e-12)
  assert suite.entropy(np.array([[1.0, 0.0, 0.0]]))[0, 0] == 0.0
  np.testing.assert_array_equal(suite.correctness(P3, Y3)[:, 0], [1, 1, 0, 0])
  np.testing.assert_allclose(mia.confidence(np.log(P3), Y3)[:, 0],
                             [0.7, 0.6, 0.25, 0.05], rtol=1e-12)
  assert suite.mia_feature("prob", P3, Y3).shape == (4, 3)
  with pytest.raises(ValueError):
    suite.mia_feature("loss", P3, Y3)


def test_js_divergence_zero_and_matches_scipy():
  rng = np.random.default_rng(0)
  p = softmax(rng.normal(size=(6, 5)), -1)
  q = softmax(rng.normal(size=(6, 5)) * 3, -1)
  np.testing.assert_array_equal(suite.js_divergence(p, p), np.zeros(6))
  ref = np.array([jensenshannon(a, b) ** 2 for a, b in zip(p, q)])  # base e
  np.testing.assert_allclose(suite.js_divergence(p, q), ref, rtol=1e-9)
  assert np.all(suite.js_divergence(p, q) > 0)
  one_hot = np.eye(2)
  np.testing.assert_allclose(suite.js_divergence(one_hot[:1], one_hot[1:]),
                             [math.log(2)], rtol=1e-12)
  assert suite.zrf(p, p) == 1.0
  assert suite.zrf(p, q) == pytest.approx(1 - ref.mean())
  assert suite.activation_distance(p, p) == 0.0
  assert suite.activation_distance(p, q) == pytest.approx(
      np.mean(np.linalg.norm(p - q, axis=1)))


def test_topk_matches_argsort():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(200, 10))
  labels = rng.integers(0, 10, 200)
  for k in (1, 3, 5, 10):
    top = np.argsort(-logits, axis=1)[:, :k]
    ref = np.mean([labels[i] in top[i] for i in range(200)])
    assert suite.topk_accuracy(logits, labels, k) == pytest.approx(ref)
  assert suite.topk_accuracy(logits, labels, 10) == 1.0
  assert suite.topk_accuracy(logits[:0], labels[:0], 5) is None


def test_entropy_mia_separates_low_from_high_entropy():
  rng = np.random.default_rng(2)
  members = rng.uniform(0.0, 0.5, 100)
  nonmembers = rng.uniform(1.0, 1.5, 60)
  assert suite.entropy_mia(members, nonmembers, rng.uniform(0.0, 0.4, 30)) == 1.0
  assert suite.entropy_mia(members, nonmembers, rng.uniform(1.1, 1.5, 30)) == 0.0


def test_rte():
  phases = {"pretrain": 10.0, "retrain": 8.0, "unlearn": 2.0}
  assert suite.rte(phases, "unlearned") == (2.0, 0.25)
  assert suite.rte(phases, "retrained") == (8.0, 1.0)
  assert suite.rte({"unlearn": 2.0, "retrain": None}, "unlearned") == (2.0, None)
  assert suite.rte({}, "unlearned") == (None, None)


def _split(rng, n, offset):
  labels = rng.integers(0, 4, n).astype(np.int32)
  images = rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8)
  images[:, :2, :2, 0] = labels[:, None, None] * 60  # a learnable-ish cue
  return Split(images, labels, np.arange(offset, offset + n, dtype=np.int64))


@pytest.fixture(scope="module")
def tiny():
  rng = np.random.default_rng(0)
  data = ForgetSplit(forget=_split(rng, 24, 0), retain=_split(rng, 80, 100),
                     test_forget=_split(rng, 0, 300), test_retain=_split(rng, 40, 400),
                     forget_classes=None)
  model = get_model("small_cnn", num_classes=4, mean=(0.5,), std=(0.3,),
                    widths=(8, 8, 8))
  init = jax.jit(lambda k: model.init(k, jnp.zeros((1, 8, 8, 1))))  # one compile
  models = {role: dict(init(jax.random.key(i)))
            for i, role in enumerate(("original", "unlearned", "retrained"))}
  mesh = parallel.make_mesh(2)
  return data, model, models, mesh, make_predict_fn(model, mesh)


def _ctx(tiny, seed=0, config=None, **kw):
  """A fresh context (empty cache) sharing one compiled predict function."""
  data, model, models, mesh, predict_fn = tiny
  return EvalContext(model=model, models=dict(models, **kw), data=data,
                     mesh=mesh, num_classes=4, batch_size=32, seed=seed,
                     eval_config=config, predict_fn=predict_fn,
                     phase_seconds={"pretrain": 3.0, "retrain": 4.0, "unlearn": 1.0})


def test_evaluate_roles_reuses_known_roles_and_their_curves(tiny):
  from jaxunlearn.metrics.evaluators import add_gaps, evaluate_roles, role_record
  known = {"original": {"metrics": {"phase_seconds": -1.0},
                        "curves": {"rcd": {"forget_acc": [0.5, 1.0]}}}}
  ctx = _ctx(tiny)
  results = evaluate_roles(ctx, ("rte",), known)
  assert results["original"] == {"phase_seconds": -1.0}
  assert results["unlearned"] == {"phase_seconds": 1.0, "phase_vs_retrain": 0.25}
  assert ctx.curves["rcd"] == {"original": {"forget_acc": [0.5, 1.0]}}
  add_gaps(results, ("phase_seconds",))
  assert results["unlearned"]["avg_gap"] == 3.0
  assert known["original"]["metrics"] == {"phase_seconds": -1.0}  # not mutated
  assert role_record(ctx, results, "original") == known["original"]


NAMES = ("topk_accuracy", "mia_features", "entropy_mia", "zrf", "rte")


def test_evaluators_through_eval_context_are_seeded(tiny):
  first = evaluate(_ctx(tiny, seed=0), NAMES)
  again = evaluate(_ctx(tiny, seed=0), NAMES)
  assert set(first["unlearned"]) == {
      "forget_top4_acc", "retain_top4_acc", "test_top4_acc", "entropy_mia",
      "zrf", "js_to_retrained", "activation_distance", "phase_seconds", "phase_vs_retrain",
      "avg_gap", "mia"}
  assert set(first["unlearned"]["mia"]) == set(suite.MIA_FEATURES)
  for metrics in (*first.values(), *again.values()):
    metrics.pop("avg_gap")  # nan: no accuracy/MIA evaluator here
  assert first == again
  un = first["unlearned"]
  # topk capped at num_classes = 4: every label is in the top 4.
  assert un["forget_top4_acc"] == un["retain_top4_acc"] == un["test_top4_acc"] == 1.0
  for f in suite.MIA_FEATURES:
    assert 0.0 <= un["mia"][f] <= 1.0
  assert 0.0 <= un["entropy_mia"] <= 1.0
  assert 1 - math.log(2) <= un["zrf"] <= 1.0
  assert un["js_to_retrained"] > 0 and un["activation_distance"] > 0
  assert first["retrained"]["js_to_retrained"] == 0.0
  assert first["retrained"]["activation_distance"] == 0.0
  assert (un["phase_seconds"], un["phase_vs_retrain"]) == (1.0, 0.25)
  assert first["original"]["phase_seconds"] == 3.0


def test_topk_evaluator_reads_k_from_config(tiny):
  ctx = _ctx(tiny, config=ml_collections.ConfigDict({"topk_accuracy": {"k": 2}}))
  out = evaluate(ctx, ("topk_accuracy",))["unlearned"]
  for split in ("forget", "retain", "test"):
    o = ctx.outputs("unlearned", split)
    top = np.argsort(-o.logits, axis=1)[:, :2]
    ref = np.mean([y in t for y, t in zip(o.labels, top)])
    assert out[f"{split}_top2_acc"] == pytest.approx(ref)


def test_zrf_of_the_random_model_is_one(tiny):
  ctx = _ctx(tiny, seed=3)
  random_vars = suite.random_init_variables(ctx)
  ctx = _ctx(tiny, seed=3, random=random_vars)
  out = evaluate(ctx, ("zrf",))
  assert out["random"]["zrf"] == 1.0
  assert out["unlearned"]["zrf"] < 1.0
  other = _ctx(tiny, seed=4, random=random_vars)
  assert evaluate(other, ("zrf",))["random"]["zrf"] < 1.0  # other seed, other init


def test_mia_features_use_the_svc_of_mia_py(tiny):
  """mia.confidence equals the existing mia_efficacy (same SVC,
  same shadow sample, same member-fraction convention)."""
  out = evaluate(_ctx(tiny), ("mia_efficacy", "mia_features"))
  for role in ("original", "unlearned"):
    assert out[role]["mia"]["confidence"] == pytest.approx(
        out[role]["mia_efficacy"], abs=1e-12)
