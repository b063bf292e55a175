"""The embedded default dataset: scikit-learn's handwritten digits as tfds.

1,797 real 8x8 grayscale images of the digits 0-9 (the UCI "optdigits" test
set), shipped inside scikit-learn, so it needs no download. The library's own
TF-free builder writes them as array_record files; each example has a stable
integer ``id`` (its row in ``sklearn.datasets.load_digits``).

Pixel values in scikit-learn are integers 0..16; they are stored as uint8
``round(v * 255 / 16)``. The split is deterministic: every fifth example
(``id % 5 == 0``) is test, the rest train (1,437 train / 360 test).
"""
from __future__ import annotations

import io

import numpy as np
import tensorflow_datasets as tfds

TEST_EVERY = 5


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Returns (images uint8 [N,8,8,1], labels int64 [N], ids int64 [N])."""
  from sklearn.datasets import load_digits  # local: heavy import
  bunch = load_digits()
  images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = bunch.target.astype(np.int64)
  ids = np.arange(len(labels), dtype=np.int64)
  return images, labels, ids


def split_of(ids: np.ndarray) -> np.ndarray:
  """True where an example belongs to the test split."""
  return ids % TEST_EVERY == 0


def encode_png(image: np.ndarray) -> bytes:
  """PNG-encodes an HxWx1 or HxWx3 uint8 image with PIL (no TensorFlow)."""
  from PIL import Image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  buffer = io.BytesIO()
  pil.save(buffer, format="PNG")
  return buffer.getvalue()


class Digits(tfds.core.GeneratorBasedBuilder,
             skip_registration=True):
  """scikit-learn digits, 8x8x1, 10 classes, as array_record."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 1), encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=10),
            "id": tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything ships with scikit-learn.
    return {"train": self._generate_examples(test=False),
            "test": self._generate_examples(test=True)}

  def _generate_examples(self, test: bool):
    images, labels, ids = digits_arrays()
    for image, label, example_id in zip(images, labels, ids):
      if bool(split_of(example_id)) != test:
        continue
      yield int(example_id), {"image": encode_png(image), "label": int(label),
                              "id": int(example_id)}
