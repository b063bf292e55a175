"""Datasets by name: tfds builders (array_record, no TensorFlow) + in-memory splits.

``load_dataset(name, data_dir)`` prepares the dataset once with the
library's own tfds builder (reused afterwards) and returns its splits as
``Split`` arrays. A dataset that is neither prepared nor available offline
fails in seconds with a message saying which file to put where.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Callable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np

from jaxunlearn.data.pipeline import Split
from jaxunlearn.errors import UserError
from jaxunlearn.registry import Registry


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What the library knows about a dataset."""
  name: str
  builder: Callable  # a tfds GeneratorBasedBuilder subclass (imported lazily)
  num_classes: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int = 0  # default training augmentation
  flip: bool = False
  urls: tuple[str, ...] = ()  # downloaded into manual_dir when online
  manual_files: tuple[str, ...] = ()  # what a user puts in manual_dir
  embedded: bool = False  # ships with an installed package: never downloads


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def default_data_dir() -> str:
  return os.environ.get("JAXUNLEARN_DATA_DIR") or os.path.join(
      os.path.expanduser("~"), "tensorflow_datasets")


def _quiet_tfds():
  import tensorflow_datasets as tfds
  tfds.disable_progress_bar()
  logging.getLogger("absl").setLevel(logging.ERROR)
  return tfds


def _reachable(url: str, timeout: float = 3.0) -> bool:
  parsed = urlparse(url)
  port = parsed.port or (443 if parsed.scheme == "https" else 80)
  try:
    with socket.create_connection((parsed.hostname, port), timeout=timeout):
      return True
  except OSError:
    return False


def prepare(spec: DatasetSpec, data_dir: str,
            manual_dir: Optional[str] = None):
  """Returns a prepared tfds builder, preparing it first if needed."""
  tfds = _quiet_tfds()
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  builder = spec.builder(data_dir=data_dir, file_format="array_record")
  if builder.is_prepared():
    return builder
  manual_dir = os.path.expanduser(
      manual_dir or os.path.join(data_dir, "downloads", "manual", spec.name))
  if not spec.embedded:
    missing = [f for f in spec.manual_files
               if not os.path.exists(os.path.join(manual_dir, f))]
    if missing:
      online = spec.urls and all(_reachable(u) for u in spec.urls)
      if not online:
        raise UserError(
            f"dataset {spec.name!r} is not prepared in {data_dir} and cannot be "
            f"downloaded (offline); put {', '.join(missing)} in {manual_dir} "
            f"(from {', '.join(spec.urls) or 'the dataset authors'}) and run again")
      _download(spec, manual_dir)
  config = tfds.download.DownloadConfig(manual_dir=manual_dir,
                                        try_download_gcs=False)
  builder.download_and_prepare(download_config=config)
  return builder


def _download(spec: DatasetSpec, manual_dir: str) -> None:
  import urllib.request
  os.makedirs(manual_dir, exist_ok=True)
  for url, name in zip(spec.urls, spec.manual_files):
    target = os.path.join(manual_dir, name)
    tmp = target + ".part"
    with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as f:
      while chunk := response.read(1 << 20):
        f.write(chunk)
    os.replace(tmp, target)  # never leave a half-written archive behind


def read_split(builder, split: str) -> Split:
  """Reads a whole prepared split into memory (random access, no TensorFlow)."""
  source = builder.as_data_source()[split]
  examples = source.__getitems__(list(range(len(source))))
  images = np.stack([e["image"] for e in examples]).astype(np.uint8)
  labels = np.asarray([e["label"] for e in examples], dtype=np.int32)
  ids = np.asarray([e["id"] for e in examples], dtype=np.int64)
  order = np.argsort(ids, kind="stable")  # tfds shuffles on write; ids are stable
  return Split(images[order], labels[order], ids[order])


def load_dataset(name: str, data_dir: Optional[str] = None,
                 manual_dir: Optional[str] = None,
                 splits: Sequence[str] = ("train", "test")
                 ) -> tuple[DatasetSpec, dict[str, Split]]:
  spec = DATASETS.get(name)
  builder = prepare(spec, data_dir or default_data_dir(), manual_dir)
  return spec, {s: read_split(builder, s) for s in splits}


def _digits_builder(**kwargs):
  from jaxunlearn.data.digits import Digits
  return Digits(**kwargs)


def _cifar10_builder(**kwargs):
  from jaxunlearn.data.cifar import Cifar10
  return Cifar10(**kwargs)


DATASETS.add("digits", DatasetSpec(
    name="digits", builder=_digits_builder, num_classes=10,
    image_shape=(8, 8, 1), mean=(0.3052,), std=(0.3762,), crop_padding=1,
    embedded=True))
DATASETS.add("cifar10", DatasetSpec(
    name="cifar10", builder=_cifar10_builder, num_classes=10,
    image_shape=(32, 32, 3), mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True,
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    manual_files=("cifar-10-python.tar.gz",)))
