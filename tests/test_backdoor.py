"""BadNets trigger placement and poisoning."""
import jax
import numpy as np
import pytest

from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.tasks.backdoor import Trigger, apply_trigger, poison, triggered_test_set


@pytest.mark.parametrize("position,rows,cols", [
    ("bottom_right", slice(6, 8), slice(6, 8)), ("top_left", slice(0, 2), slice(0, 2)),
    ("top_right", slice(0, 2), slice(6, 8)), ("bottom_left", slice(6, 8), slice(0, 2))])
def test_trigger_is_stamped_exactly_where_asked(position, rows, cols):
  images = np.random.default_rng(0).integers(0, 200, (5, 8, 8, 1)).astype(np.uint8)
  out = apply_trigger(images, Trigger(2, position, 255))
  expected = images.copy()
  expected[:, rows, cols, :] = 255
  np.testing.assert_array_equal(out, expected)
  assert not np.shares_memory(out, images)


def test_poison_relabels_a_seeded_fraction_of_non_target_images():
  rng = np.random.default_rng(1)
  train = Split(rng.integers(0, 200, (100, 8, 8, 1)).astype(np.uint8),
                rng.integers(0, 10, 100).astype(np.int32), np.arange(100))
  trig = Trigger(3, "top_left", 250)
  poisoned, ids = poison(train, 0.2, 4, trig, jax.random.key(0), 10)
  again, ids_again = poison(train, 0.2, 4, trig, jax.random.key(0), 10)
  np.testing.assert_array_equal(ids, ids_again)
  assert len(ids) == 20 and np.all(train.labels[ids] != 4)
  assert np.all(poisoned.labels[ids] == 4)
  assert np.all(poisoned.images[ids][:, :3, :3] == 250)
  clean = np.setdiff1d(np.arange(100), ids)
  np.testing.assert_array_equal(poisoned.images[clean], train.images[clean])
  np.testing.assert_array_equal(poisoned.labels[clean], train.labels[clean])
  test = triggered_test_set(train, 4, trig)
  assert np.all(test.labels != 4) and np.all(test.images[:, :3, :3] == 250)


def test_bad_backdoor_settings_are_user_errors():
  train = Split(np.zeros((10, 8, 8, 1), np.uint8), np.arange(10) % 2, np.arange(10))
  with pytest.raises(UserError, match="out of range"):
    poison(train, 0.1, 12, Trigger(), jax.random.key(0), 10)
  with pytest.raises(UserError, match="does not fit"):
    apply_trigger(train.images, Trigger(size=9))
  with pytest.raises(UserError, match="fraction"):
    poison(train, 0.0, 1, Trigger(), jax.random.key(0), 2)
