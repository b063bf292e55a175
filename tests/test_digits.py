"""The embedded dataset: the tfds builder round-trips scikit-learn's digits exactly."""
import numpy as np

from jaxunlearn.data import load_dataset
from jaxunlearn.data.digits import digits_arrays, split_of


def test_builder_round_trips_images_labels_ids(digits, data_dir):
  spec, splits = digits
  images, labels, ids = digits_arrays()
  test = split_of(ids)
  for name, select in (("train", ~test), ("test", test)):
    split = splits[name]
    np.testing.assert_array_equal(split.ids, ids[select])
    np.testing.assert_array_equal(split.labels, labels[select])
    np.testing.assert_array_equal(split.images, images[select])
  assert len(splits["train"]) == 1437 and len(splits["test"]) == 360
  assert spec.num_classes == 10 and splits["train"].images.shape[1:] == (8, 8, 1)


def test_images_are_the_sklearn_pixels():
  from sklearn.datasets import load_digits
  images, _, _ = digits_arrays()
  raw = load_digits().images
  np.testing.assert_array_equal(images[..., 0], np.rint(raw * 255 / 16))


def test_prepared_once_then_reused(data_dir, monkeypatch):
  """A second load reads the prepared files: generating examples again fails."""
  from jaxunlearn.data import digits as digits_module
  def boom(*a, **k):
    raise AssertionError("the dataset was prepared a second time")
  monkeypatch.setattr(digits_module.Digits, "_generate_examples", boom)
  _, splits = load_dataset("digits", data_dir)
  assert len(splits["train"]) == 1437
