"""CIFAR-10 from the official python tarball, as array_record (no TensorFlow).

Put ``cifar-10-python.tar.gz`` in the manual dir (or let the library download
it when the machine is online). Example ids: train 0..49999 in file order
(data_batch_1..5), test 50000..59999.
"""
from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from jaxunlearn.data.digits import encode_png

ARCHIVE = "cifar-10-python.tar.gz"


def read_cifar10_archive(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'train': (images uint8 [N,32,32,3], labels), 'test': (...)} from the tarball."""
  parts: dict[str, list] = {"train": [], "test": []}
  with tarfile.open(path, "r:gz") as tar:
    members = sorted(m.name for m in tar.getmembers() if m.isfile())
    for name in members:
      base = os.path.basename(name)
      split = ("train" if base.startswith("data_batch")
               else "test" if base == "test_batch" else None)
      if split is None:
        continue
      batch = pickle.load(tar.extractfile(name), encoding="bytes")
      images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
      parts[split].append((images.transpose(0, 2, 3, 1),
                           np.asarray(batch[b"labels"], np.int64)))
  return {s: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v]))
          for s, v in parts.items()}


class Cifar10(tfds.core.GeneratorBasedBuilder):
  """CIFAR-10, 32x32x3, 10 classes."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Place {ARCHIVE} in the manual dir."

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(32, 32, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=10),
            "id": tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html")

  def _split_generators(self, dl_manager):
    arrays = read_cifar10_archive(os.path.join(dl_manager.manual_dir, ARCHIVE))
    return {"train": self._generate_examples(*arrays["train"], offset=0),
            "test": self._generate_examples(*arrays["test"], offset=50_000)}

  def _generate_examples(self, images, labels, offset):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield offset + i, {"image": encode_png(image), "label": int(label),
                         "id": offset + i}
