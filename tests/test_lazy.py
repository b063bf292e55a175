"""Splits larger than memory: a lazily decoded split gives the same examples,
batches and trained weights as the in-memory one; each process decodes only
its rows; the read-ahead thread keeps order, surfaces errors and stops."""
import os
import threading

import jax
import numpy as np
import pytest

from jaxunlearn import config as base_config
from jaxunlearn import loop, parallel
from jaxunlearn import batches
from jaxunlearn.data import load_dataset
from jaxunlearn.data.lazy import LazyImages, is_lazy
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model


@pytest.fixture(scope="module")
def both(data_dir):
  _, in_memory = load_dataset("digits", data_dir)
  spec, lazy = load_dataset("digits", data_dir, lazy_above_mb=0)
  return spec, in_memory, lazy


def test_lazy_split_equals_in_memory(both, data_dir):
  spec, mem, lazy = both
  for name in ("train", "test"):
    assert is_lazy(lazy[name].images) and not is_lazy(mem[name].images)
    assert lazy[name].images.shape == mem[name].images.shape
    np.testing.assert_array_equal(lazy[name].labels, mem[name].labels)
    np.testing.assert_array_equal(lazy[name].ids, mem[name].ids)
    np.testing.assert_array_equal(np.asarray(lazy[name].images), mem[name].images)
  # the threshold: digits' train split decodes to 1437*64 B = 0.09 MiB
  _, kept = load_dataset("digits", data_dir, lazy_above_mb=0.05)
  assert is_lazy(kept["train"].images) and not is_lazy(kept["test"].images)
  assert os.path.exists(os.path.join(data_dir, "digits", "1.0.0",
                                     "jaxunlearn-index-train.npz"))


def test_views_stay_lazy_and_batches_match(both):
  _, mem, lazy = both
  index = np.array([17, 3, 1000, 3])
  part = lazy["train"].take(index)
  assert is_lazy(part.images)
  np.testing.assert_array_equal(np.asarray(part.images), mem["train"].images[index])
  np.testing.assert_array_equal(part.images[1], mem["train"].images[3])
  np.testing.assert_array_equal(part.images[1:3], mem["train"].images[[3, 1000]])
  joined = batches.concat([lazy["test"].take([4, 5]), lazy["test"].take([0])])
  assert is_lazy(joined.images)
  expected = batches.concat([mem["test"].take([4, 5]), mem["test"].take([0])])
  np.testing.assert_array_equal(np.asarray(joined.images), expected.images)
  np.testing.assert_array_equal(joined.ids, expected.ids)
  mixed = batches.concat([lazy["test"].take([4]), mem["test"].take([0])])
  assert not is_lazy(mixed.images)  # different sources: decoded once
  np.testing.assert_array_equal(mixed.images, expected.images[[0, 2]])
  for batch_index in (np.arange(10), np.array([359, 2, 7])):  # padded to 16
    want = batches.make_batch(mem["test"], batch_index, 16)
    got = batches.make_batch(lazy["test"], batch_index, 16)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


class CountingSource:
  """A random-access source that records which positions were read."""

  def __init__(self, source):
    self.source, self.read = source, []

  def __len__(self):
    return len(self.source)

  def __getitems__(self, positions):
    self.read += list(positions)
    return self.source.__getitems__(positions)


def test_each_process_decodes_only_its_rows(both, monkeypatch):
  _, mem, lazy = both
  images = lazy["test"].images
  counting = CountingSource(images.source)
  split = batches.Split(LazyImages(counting, images.positions, images.image_shape),
                         lazy["test"].labels, lazy["test"].ids)
  index = np.arange(20, 28)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  parts = []
  for p in (0, 1):
    monkeypatch.setattr(jax, "process_index", lambda p=p: p)
    counting.read = []
    batch = batches.make_batch(split, index, 8)
    assert sorted(counting.read) == sorted(images.positions[index[4 * p:4 * p + 4]])
    parts.append(batch["image"][4 * p:4 * p + 4])
    assert not batch["image"][4 * (1 - p):4 * (1 - p) + 4].any()  # never read
  full = batches.make_batch(mem["test"], index, 8)["image"]
  np.testing.assert_array_equal(np.concatenate(parts), full)


def test_training_on_a_lazy_split_gives_the_same_weights(both):
  spec, mem, lazy = both
  cfg = base_config.get_config().train
  cfg.epochs, cfg.batch_size = 1, 64
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  mesh = parallel.make_mesh()
  key = jax.random.key(3)
  augment = loop.Augment(spec.crop_padding, spec.flip)
  subset = np.arange(0, 1437, 3)  # 479 examples: a padded last batch
  runs = [train_model(model, cfg, split["train"].take(subset), spec.image_shape,
                      key, mesh, augment=augment, progress=False)[0]
          for split in (mem, lazy)]
  jax.tree.map(np.testing.assert_array_equal, runs[0], runs[1])


def test_prefetch_keeps_order_raises_and_stops():
  assert list(batches.prefetch(iter(range(50)), size=3)) == list(range(50))

  def failing():
    yield 1
    raise ValueError("bad record 7")
  with pytest.raises(ValueError, match="bad record 7"):
    list(batches.prefetch(failing()))

  produced = []

  def endless():
    for i in range(10**6):
      produced.append(i)
      yield i
  before = threading.active_count()
  stream = batches.prefetch(endless(), size=2)
  for i, _ in enumerate(stream):
    if i == 5:
      break
  stream.close()
  assert threading.active_count() == before
  assert len(produced) <= 5 + 1 + 2 + 1  # read ahead at most `size` (+ in hand)
