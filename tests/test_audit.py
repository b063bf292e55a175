"""The per-example U-LiRA audit: its statistic, assignment, scores and ROC
numbers against independent computations, and one small run end to end."""
import json
import os
import types

import jax
import numpy as np
import pytest

from jaxunlearn import config as base_config
from jaxunlearn import run as run_lib
from jaxunlearn.errors import UserError
from jaxunlearn.metrics import audit, mia


def test_logit_confidence_is_log_odds_of_the_label():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 7)) * 4
  labels = rng.integers(0, 7, 50)
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  py = p[np.arange(50), labels]
  np.testing.assert_allclose(mia.logit_confidence(logits, labels),
                             np.log(py) - np.log1p(-py), rtol=1e-9, atol=1e-9)
  # stays finite where p_y rounds to 1 in float64
  big = np.array([[800.0, 0.0, 0.0]])
  assert np.isclose(mia.logit_confidence(big, np.array([0])), 800 - np.log(2))


def test_balanced_assignment_puts_each_example_in_half_the_shadows():
  keep = audit.balanced_assignment(jax.random.key(3), 6, 40)
  assert keep.shape == (6, 40) and (keep.sum(0) == 3).all()
  assert 0 < keep[0].sum() < 40  # not the same half for every example
  again = audit.balanced_assignment(jax.random.key(3), 6, 40)
  np.testing.assert_array_equal(keep, again)
  with pytest.raises(UserError, match="even"):
    audit.balanced_assignment(jax.random.key(3), 3, 40)


def test_roc_auc_and_tpr_against_brute_force():
  rng = np.random.default_rng(1)
  scores = np.round(rng.normal(size=300), 1)  # with ties
  labels = rng.integers(0, 2, 300)
  pos, neg = scores[labels == 1], scores[labels == 0]
  brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
  assert np.isclose(audit.roc_auc(scores, labels), brute)
  assert audit.roc_auc(np.array([3.0, 2, 1, 0]), np.array([1, 1, 0, 0])) == 1.0
  assert audit.roc_auc(np.array([0.0, 1, 2, 3]), np.array([1, 1, 0, 0])) == 0.0
  # 100 negatives: 1% FPR allows one negative above the threshold
  neg = np.arange(100.0)
  pos = np.array([98.5, 97.5, 50.0, 200.0])
  s = np.concatenate([pos, neg])
  y = np.concatenate([np.ones(4, int), np.zeros(100, int)])
  assert audit.tpr_at_fpr(s, y, 0.01) == 0.5   # threshold 98: 98.5 and 200
  assert audit.tpr_at_fpr(s, y, 0.0) == 0.25   # only 200 beats every negative


@pytest.mark.parametrize("kind", ["ulira", "lira_offline"])
def test_lira_scores_separate_members_only_when_they_differ(kind):
  rng = np.random.default_rng(2)
  k, n = 16, 400
  shadow_in = audit.balanced_assignment(jax.random.key(0), k, n)
  base = rng.normal(0, 2, n)  # per-example difficulty
  shadow_phi = base + rng.normal(0, 1, (k, n)) + 2.5 * shadow_in
  members = np.arange(n) < n // 2
  leaky = base + rng.normal(0, 1, n) + 2.5 * members     # members look "in"
  clean = base + rng.normal(0, 1, n)                      # everyone looks "out"
  auc = lambda t: audit.roc_auc(audit.lira_scores(t, shadow_phi, shadow_in, kind),
                                members.astype(int))
  assert auc(leaky) > 0.9
  assert abs(auc(clean) - 0.5) < 0.08
  # per-example means matter: without them (one global mean) the leak hides
  # behind the spread of example difficulty
  global_auc = audit.roc_auc(leaky, members.astype(int))
  assert auc(leaky) > global_auc + 0.1


def test_ulira_misreads_a_never_unlearned_model_and_trained_shadows_do_not():
  # Shadows that were trained on an example and then unlearned it score it
  # below the ones that never saw it; a model that was never unlearned (the
  # original) scores its members *above* both. U-LiRA's ratio then points
  # the wrong way, LiRA against the same shadows before unlearning does not.
  rng = np.random.default_rng(5)
  k, n = 8, 400
  shadow_in = audit.balanced_assignment(jax.random.key(1), k, n)
  base = rng.normal(0, 2, n)
  noise = lambda *shape: rng.normal(0, 1, shape)
  trained = base + noise(k, n) + 3.0 * shadow_in
  unlearned = base + noise(k, n) - 3.0 * shadow_in
  members = np.arange(n) < n // 2
  original = base + noise(n) + 3.0 * members
  auc = lambda phi: audit.roc_auc(audit.lira_scores(original, phi, shadow_in),
                                  members.astype(int))
  assert auc(unlearned) < 0.5
  assert auc(trained) > 0.9


def _toy_data():
  """Tiny retain and forget splits (4-pixel images), and 6 unseen images."""
  from jaxunlearn.batches import Split
  rng = np.random.default_rng(0)
  def split(n, start):
    return Split(rng.integers(0, 255, (n, 2, 2, 1)).astype(np.uint8),
                 np.arange(n) % 3, np.arange(start, start + n))
  data = types.SimpleNamespace(retain=split(10, 100), forget=split(6, 0))
  data._replace = lambda **kw: types.SimpleNamespace(**{**vars(data), **kw})
  return data, split(6, 50)


def test_shadow_statistics_keep_each_shadow_before_and_after_unlearning():
  data, unseen = _toy_data()
  splits = {"forget": data.forget, "test_retain": unseen}
  trained_on, unlearned_on = [], []

  def train_fn(split_, key, directory, epochs):
    trained_on.append(set(split_.ids.tolist()))
    return {"w": np.asarray(jax.random.normal(key, (4, 3)))}

  def unlearn_fn(variables, data_, key, directory):
    unlearned_on.append(set(data_.forget.ids.tolist()))
    return {"w": variables["w"] * -2.0}

  def predict(variables, split_):
    return split_.images.reshape(len(split_), -1).astype(np.float64) @ variables["w"] / 100

  ctx = types.SimpleNamespace(
      split=splits.get, class_forgetting=False, seed=0, data=data,
      train_fn=train_fn, unlearn_fn=unlearn_fn, shadow_dir=None, shadow_keep=None,
      predict=predict)
  cfg = audit.default_config()
  cfg.num_shadows = 4
  stats = audit._shadow_statistics(ctx, cfg)
  _, _, pool, _ = audit.audit_pool(ctx)
  for k in range(4):
    half = set(pool.ids[stats["shadow_in"][k]].tolist())
    assert trained_on[k] == set(data.retain.ids.tolist()) | half
    assert unlearned_on[k] == half
    # the same shadow's weights, taken before and after its unlearning
    key = jax.random.split(jax.random.fold_in(jax.random.fold_in(
        jax.random.key(0), 0xA0D17), k))[0]
    w = np.asarray(jax.random.normal(key, (4, 3)))
    for phi, weights in ((stats["trained_phi"][k], w),
                         (stats["shadow_phi"][k], -2.0 * w)):
      np.testing.assert_allclose(
          phi, mia.logit_confidence(predict({"w": weights}, pool), pool.labels))
  cfg.kind = "lira_offline"  # no unlearning: one set of statistics
  offline = audit._shadow_statistics(ctx, cfg)
  np.testing.assert_array_equal(offline["shadow_phi"], offline["trained_phi"])
  assert len(unlearned_on) == 4


def _toy_audit(keep, shadow_dir, fail_at=None):
  """A context whose shadows are random linear maps (the statistics test's),
  checkpointed under ``shadow_dir``, counting the shadows it trains;
  ``fail_at``: training that shadow raises (a machine that dies there)."""
  data, unseen = _toy_data()
  trained = []

  def train_fn(split_, key, directory, epochs):
    if len(trained) == fail_at:
      raise KeyboardInterrupt
    trained.append(directory)
    return {"w": np.asarray(jax.random.normal(key, (4, 3)))}

  ctx = types.SimpleNamespace(
      split={"forget": data.forget, "test_retain": unseen}.get,
      class_forgetting=False, seed=0, data=data, train_fn=train_fn,
      unlearn_fn=lambda v, d, key, directory: {"w": v["w"] * -2.0},
      shadow_dir=shadow_dir, shadow_keep=keep,
      predict=lambda v, s: s.images.reshape(len(s), -1) @ v["w"] / 100)
  return ctx, trained


def test_kept_shadow_statistics_resume_an_audit_on_another_machine(tmp_path):
  cfg = audit.default_config()
  cfg.num_shadows = 4
  machine = lambda n: str(tmp_path / f"machine{n}" / "audit-abc")
  whole = audit._shadow_statistics(_toy_audit(None, machine(0))[0], cfg)
  keep = str(tmp_path / "report.shadows")
  ctx, trained = _toy_audit(keep, machine(1), fail_at=2)
  with pytest.raises(KeyboardInterrupt):  # dies while training shadow 2
    audit._shadow_statistics(ctx, cfg)
  assert sorted(os.listdir(keep)) == ["shadow0.npz", "shadow1.npz"]
  # Another machine: no checkpoints, the kept files only.
  ctx, trained = _toy_audit(keep, machine(2))
  resumed = audit._shadow_statistics(ctx, cfg)
  assert trained == [os.path.join(machine(2), "shadow2-train"),
                     os.path.join(machine(2), "shadow3-train")]
  assert resumed["restored"] == [0, 1]
  for name in ("trained_phi", "shadow_phi", "shadow_in", "labels"):
    np.testing.assert_array_equal(resumed[name], whole[name])
  with np.load(os.path.join(keep, "shadow3.npz")) as kept:
    assert float(kept["seconds"]) >= 0.0
  ctx, trained = _toy_audit(keep, machine(3))
  audit._shadow_statistics(ctx, cfg)
  assert trained == []  # everything restored
  # Statistics of another audit (another run config, or shadow count) are
  # refused, never mixed in.
  with pytest.raises(UserError, match="delete it"):
    audit._shadow_statistics(
        _toy_audit(keep, str(tmp_path / "machine4" / "audit-xyz"))[0], cfg)
  cfg.num_shadows = 2
  with pytest.raises(UserError, match="shadow0.npz"):
    audit._shadow_statistics(_toy_audit(keep, machine(5))[0], cfg)


def test_audit_pool_caps_the_unseen_examples_with_a_seeded_sample():
  from jaxunlearn.batches import Split
  def split(n, start):
    return Split(np.zeros((n, 2, 2, 1), np.uint8), np.arange(n) % 3,
                 np.arange(start, start + n))
  splits = {"forget": split(8, 0), "test_retain": split(100, 1000)}
  ctx = lambda seed: types.SimpleNamespace(split=splits.get, class_forgetting=False,
                                           seed=seed)
  name, index, pool, labels = audit.audit_pool(ctx(0), max_unseen=8)
  assert name == "test_retain" and len(pool) == 16 and labels.sum() == 8
  assert np.all(np.diff(index) > 0) and index.max() < 100
  np.testing.assert_array_equal(pool.ids[8:], 1000 + index)
  np.testing.assert_array_equal(audit.audit_pool(ctx(0), 8)[1], index)  # seeded
  assert not np.array_equal(audit.audit_pool(ctx(1), 8)[1], index)
  _, everything, pool, _ = audit.audit_pool(ctx(0))  # 0: the whole split
  np.testing.assert_array_equal(everything, np.arange(100))
  assert len(pool) == 108


def test_audit_runs_in_the_main_job_and_reuses_its_shadows(data_dir, tmp_path):
  c = base_config.get_config()
  c.data_dir = data_dir
  c.progress = False
  c.train.epochs = 3
  c.delete.epochs = 2
  c.eval.evaluators = ("accuracy", "audit")
  c.eval.audit.num_shadows = 2
  c.eval.audit.max_unseen = 20  # of the 48 test images of class 3
  workdir, keep = str(tmp_path / "run"), str(tmp_path / "kept")
  rep = run_lib.run(c, workdir, log=lambda *_: None, shadow_keep=keep)
  assert sorted(os.listdir(keep)) == ["shadow0.npz", "shadow1.npz"]
  for role in ("original", "unlearned", "retrained"):
    a = rep["models"][role]["audit"]
    assert 0.0 <= a["auc"] <= 1.0 and 0.0 <= a["tpr_at_1fpr"] <= 1.0
    assert a["setup"] == ("ulira, 2 shadows, 135 forgotten vs 20 unseen "
                          "(test_forget)")
    for name in ("audit_trained", "audit_threshold"):
      t = rep["models"][role][name]
      assert 0.0 <= t["auc"] <= 1.0 and 0.0 <= t["tpr_at_1fpr"] <= 1.0
  [audit_dir] = [d for d in os.listdir(os.path.join(workdir, "checkpoints"))
                 if d.startswith("audit-")]
  assert {"shadow0-train", "shadow1-unlearn"} <= set(
      os.listdir(os.path.join(workdir, "checkpoints", audit_dir)))
  again = run_lib.run(c, workdir, log=lambda *_: None)  # shadows restored
  for role in ("original", "unlearned", "retrained"):
    for name in ("audit", "audit_trained", "audit_threshold"):
      assert again["models"][role][name] == rep["models"][role][name]
  with open(os.path.join(workdir, "report.json")) as f:
    assert json.load(f)["rte"] == rep["rte"] > 0
  # A new workdir (another machine): the shadows come from the kept files.
  elsewhere = run_lib.run(c, str(tmp_path / "other"), log=lambda *_: None,
                          shadow_keep=keep)
  assert not any(d.startswith("audit-") for d in os.listdir(
      os.path.join(tmp_path, "other", "checkpoints")))
  for role in ("original", "unlearned", "retrained"):
    for name in ("audit", "audit_trained", "audit_threshold"):
      assert elsewhere["models"][role][name] == rep["models"][role][name]


def test_a_finished_shadow_unlearning_is_restored_not_rerun(tmp_path):
  calls = []

  def unlearn_fn(variables, data, key, directory):
    calls.append(directory)
    return jax.tree.map(lambda x: x * 2 + jax.random.uniform(key, x.shape), variables)

  start = {"params": {"w": jax.numpy.arange(6.0).reshape(2, 3)},
           "batch_stats": {"mean": jax.numpy.ones(3)}}
  key = jax.random.key(0)
  directory = str(tmp_path / "shadow0-unlearn")
  first = audit.unlearned_once(unlearn_fn, start, None, key, directory)
  again = audit.unlearned_once(unlearn_fn, start, None, key, directory)
  assert calls == [directory]  # the second call restored the saved result
  jax.tree.map(np.testing.assert_array_equal, again, first)
  assert not np.array_equal(first["params"]["w"], start["params"]["w"])
  audit.unlearned_once(unlearn_fn, start, None, key, None)  # nowhere to keep it
  assert calls == [directory, None]
