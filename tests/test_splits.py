"""Forget/retain splits: disjoint, complete, reproducible; bad specs are UserErrors."""
import jax
import ml_collections
import numpy as np
import pytest

from jaxunlearn.data.splits import make_forget_split
from jaxunlearn.errors import UserError


def spec(**kw):
  base = dict(kind="class", classes=(3,), fraction=0.1, count=0, ids_file="")
  base.update(kw)
  return ml_collections.ConfigDict(base)


def check_partition(split, train, test):
  f, r = set(split.forget.ids), set(split.retain.ids)
  assert not f & r and f | r == set(train.ids)
  tf, tr = set(split.test_forget.ids), set(split.test_retain.ids)
  assert not tf & tr and tf | tr == set(test.ids)


@pytest.mark.parametrize("forget", [spec(), spec(classes=(0, 9)),
                                    spec(kind="random", fraction=0.1),
                                    spec(kind="random", count=16)])
def test_disjoint_complete_reproducible(digits, forget):
  _, s = digits
  a = make_forget_split(forget, s["train"], s["test"], 10, jax.random.key(0))
  b = make_forget_split(forget, s["train"], s["test"], 10, jax.random.key(0))
  check_partition(a, s["train"], s["test"])
  np.testing.assert_array_equal(a.forget.ids, b.forget.ids)
  if forget.kind == "class":
    assert set(a.forget.labels) == set(forget.classes)
    assert not set(a.retain.labels) & set(forget.classes)
    assert set(a.test_forget.labels) == set(forget.classes)
  else:
    expected = forget.count or round(forget.fraction * len(s["train"]))
    assert len(a.forget) == expected and len(a.test_forget) == 0
    c = make_forget_split(forget, s["train"], s["test"], 10, jax.random.key(1))
    assert set(c.forget.ids) != set(a.forget.ids)  # the seed matters


def test_ids_file_reproduces_a_split(digits, tmp_path):
  from jaxunlearn.data.splits import save_forget_ids
  _, s = digits
  a = make_forget_split(spec(kind="random", count=20), s["train"], s["test"], 10,
                        jax.random.key(3))
  path = str(tmp_path / "forget_ids.json")
  save_forget_ids(path, a, {"kind": "random"})
  b = make_forget_split(spec(kind="ids", ids_file=path), s["train"], s["test"], 10,
                        jax.random.key(99))
  np.testing.assert_array_equal(a.forget.ids, b.forget.ids)


@pytest.mark.parametrize("forget,message", [
    (spec(classes=(10,)), "out of range"),
    (spec(classes=(-1,)), "out of range"),
    (spec(classes=()), "empty"),
    (spec(kind="random", fraction=0.0001), "empty"),
    (spec(kind="bogus"), "unknown forget.kind"),
])
def test_bad_specs(digits, forget, message):
  _, s = digits
  with pytest.raises(UserError, match=message):
    make_forget_split(forget, s["train"], s["test"], 10, jax.random.key(0))


def test_validation_holds_out_training_images_and_never_reads_test(digits, data_dir):
  """config.validation = N: the run's "test" split is N training images, the
  rest train, the dataset's test split is not among either; the draw is the
  seed's and the trained models' fingerprints change with N only when set."""
  from jaxunlearn import config as config_lib
  from jaxunlearn import run as run_lib
  from jaxunlearn.tasks import classification
  _, s = digits
  cfg = config_lib.get_config()
  cfg.data_dir = data_dir
  assert classification.validation_fingerprint(cfg) == ()
  cfg.validation = 200
  _, held = classification.load_splits(cfg)
  assert len(held["test"]) == 200
  assert len(held["train"]) == len(s["train"]) - 200
  assert set(held["train"].ids) | set(held["test"].ids) == set(s["train"].ids)
  assert not set(held["train"].ids) & set(held["test"].ids)
  same = classification.load_splits(cfg)[1]
  np.testing.assert_array_equal(same["test"].ids, held["test"].ids)
  cfg.seed = 1
  other = classification.load_splits(cfg)[1]
  assert set(other["test"].ids) != set(held["test"].ids)
  assert classification.validation_fingerprint(cfg) == (("validation", 200),)
  cfg.validation = len(s["train"])
  with pytest.raises(UserError, match="validation="):
    classification.load_splits(cfg)
  cfg.validation, cfg.task = 10, "segmentation"
  with pytest.raises(UserError, match="set validation=0"):
    run_lib.validate(cfg)
