"""The shared epoch loop: a NaN loss stops the run with a one-line fix."""
import jax
import ml_collections
import pytest

from jaxunlearn import parallel
from jaxunlearn.errors import Diverged, UserError
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model


def test_nan_loss_is_a_user_error_that_says_it_diverged(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  recipe = ml_collections.ConfigDict(dict(epochs=3, batch_size=64, lr=1e12,
                                          momentum=0.9, weight_decay=0.0))
  with pytest.raises(Diverged, match="lower the learning rate"):  # a UserError
    train_model(model, recipe, splits["train"].take(range(256)), spec.image_shape,
                jax.random.key(0), parallel.make_mesh(1), progress=False)


def test_empty_split_is_a_user_error(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  recipe = ml_collections.ConfigDict(dict(epochs=1, batch_size=64, lr=0.1,
                                          momentum=0.9, weight_decay=0.0))
  with pytest.raises(UserError, match="empty"):
    train_model(model, recipe, splits["train"].take([]), spec.image_shape,
                jax.random.key(0), parallel.make_mesh(1), progress=False)


def test_checkpoints_carry_the_loops_wall_time_summed_over_resumes(digits, tmp_path):
  """Each save's meta holds the seconds the loop has run, earlier processes
  included: a run resumed from a step saved at 1000 s ends above 1000 s by
  no more than its own wall time, and ``run.timed_phase`` reports that sum
  for the resumed phase (not only the last process's time)."""
  import os
  import time

  import orbax.checkpoint as ocp

  from jaxunlearn import checkpoint as ckpt_lib
  from jaxunlearn import run as run_lib
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  recipe = ml_collections.ConfigDict(dict(epochs=2, batch_size=64, lr=0.05,
                                          momentum=0.9, weight_decay=0.0,
                                          checkpoint_every=1))
  directory = str(tmp_path / "retrained-x")
  train = lambda d: (train_model(model, recipe, splits["train"].take(range(256)),
                                 spec.image_shape, jax.random.key(0),
                                 parallel.make_mesh(1), checkpoint_dir=d,
                                 progress=False)[0], {})
  start = time.perf_counter()
  train(directory)
  first = time.perf_counter() - start
  meta = ckpt_lib.latest_meta(directory)
  assert meta["epoch"] == 1 and 0.0 < meta["seconds"] <= first
  # As if epoch 2 had never been saved and epoch 1 had taken 1000 s.
  mngr = ckpt_lib.manager(directory)
  state = mngr.restore(0, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]
  mngr.delete(1)
  mngr.delete(0)
  ckpt_lib.save(mngr, 0, state, {"epoch": 0, "seconds": 1000.0})
  mngr.close()
  start = time.perf_counter()
  _, seconds = run_lib.timed_phase(directory, train)
  second = time.perf_counter() - start
  resumed = ckpt_lib.latest_meta(directory)
  assert resumed["epoch"] == 1 and 1000.0 < resumed["seconds"] <= 1000.0 + second
  assert 1000.0 < seconds <= 1000.0 + second
  assert sorted(int(s) for s in os.listdir(directory) if s.isdigit()) == [0, 1]
