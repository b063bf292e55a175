"""Datasets by name: tfds builders (array_record, no TensorFlow) + in-memory splits.

``load_dataset(name, data_dir)`` prepares the dataset once with the
library's own tfds builder (reused afterwards) and returns its splits as
``Split`` arrays. A dataset that is neither prepared nor available offline
fails in seconds with a message saying which file to put where. Official
archives are checked against their published digests before preparation,
and a failed preparation leaves the data dir as it was (``archives``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
from typing import Callable, Optional, Sequence
from urllib.parse import urlparse

import numpy as np

from jaxunlearn.data import archives
from jaxunlearn.batches import Split
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
  tfds_name: str = ""  # stock tfds name: a tfrecord copy is read if TF is installed
  options: tuple = ()  # (key, default) builder options, set as name:key=value
  # Folders a system package installs the manual files into, searched when
  # they are not in the manual dir, and the command that installs them.
  system_dirs: tuple[str, ...] = ()
  install_hint: str = ""


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


def resolve(name: str) -> tuple[DatasetSpec, dict]:
  """``"vggface2:min_images=50,size=112"`` -> (spec, {"min_images": 50, ...})."""
  base, _, rest = name.partition(":")
  spec = DATASETS.get(base)
  options = dict(spec.options)
  for item in filter(None, rest.split(",")):
    key, _, value = item.partition("=")
    if key not in options:
      raise UserError(f"dataset {base!r} has no option {key!r}; options: "
                      f"{', '.join(options) or 'none'}")
    options[key] = type(options[key])(value)
  return spec, options


def stock_tfds_dir(spec: DatasetSpec, data_dir: str) -> Optional[str]:
  """The directory of a stock-tfds (tfrecord) copy of the dataset, if any."""
  root = os.path.join(data_dir, spec.tfds_name) if spec.tfds_name else ""
  if not root or not os.path.isdir(root):
    return None
  for dirpath, _, files in os.walk(root):
    if any(".tfrecord" in f for f in files):
      return dirpath
  return None


def read_stock_split(spec: DatasetSpec, data_dir: str, split: str) -> Split:
  """Reads a split that stock tfds prepared as tfrecord (needs TensorFlow)."""
  try:
    import tensorflow  # noqa: F401  (only the stock tfrecord path needs it)
  except ImportError:
    raise UserError(
        f"{stock_tfds_dir(spec, data_dir)} holds {spec.name!r} prepared by stock "
        f"tfds (tfrecord), which needs TensorFlow: pip install tensorflow-cpu, or "
        f"put {', '.join(spec.manual_files).replace('|', ' or ')} in {data_dir}/downloads/manual/"
        f"{spec.name} to prepare it without TensorFlow") from None
  tfds = _quiet_tfds()
  data = tfds.as_numpy(tfds.load(spec.tfds_name, split=split, data_dir=data_dir,
                                 download=False, batch_size=-1))
  images = np.asarray(data["image"], np.uint8)
  labels = np.asarray(data["label"], np.int32)
  # Stock tfds has no example ids: number the examples in the order tfds reads
  # them (deterministic for an unshuffled read), test after train.
  offset = 0 if split == "train" else 10_000_000
  return Split(images, labels, offset + np.arange(len(labels), dtype=np.int64))


def prepare(spec: DatasetSpec, data_dir: str,
            manual_dir: Optional[str] = None, options: Optional[dict] = None,
            accept_archives: "str | Sequence[str]" = ()):
  """Returns a prepared tfds builder, preparing it first if needed.

  Before preparing, the dataset's official archives in the manual dir are
  compared with their published digests (``archives.PUBLISHED``); a file
  that differs is prepared only if its SHA-256 is in ``accept_archives``.
  """
  tfds = _quiet_tfds()
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  builder = spec.builder(data_dir=data_dir, file_format="array_record",
                         **(options or {}))
  if builder.is_prepared():
    return builder
  if not manual_dir:
    manual_dir = _system_copy(spec) or os.path.join(data_dir, "downloads",
                                                    "manual", spec.name)
  manual_dir = os.path.expanduser(manual_dir)
  if not spec.embedded:
    # "a|b": either file will do (e.g. a folder or its zip)
    missing = [f.replace("|", " (or ") + ")" * ("|" in f) for f in spec.manual_files
               if not any(os.path.exists(os.path.join(manual_dir, a))
                          for a in f.split("|"))]
    if missing:
      online = spec.urls and all(_reachable(u) for u in spec.urls)
      if not online:
        install = f"`{spec.install_hint}`, or " if spec.install_hint else ""
        raise UserError(
            f"dataset {spec.name!r} is not prepared in {data_dir} and cannot be "
            f"downloaded (offline); {install}put {', '.join(missing)} in {manual_dir} "
            f"(from {', '.join(spec.urls) or 'the dataset authors'}) and run again")
      _download(spec, manual_dir)
  archives.verify(spec.name, manual_dir, accept_archives)
  config = tfds.download.DownloadConfig(manual_dir=manual_dir,
                                        try_download_gcs=False)
  # tfds writes the versioned dir and downloads/extracted; undo both if the
  # archive turns out malformed half-way.
  with archives.restore_on_failure(data_dir, (
      builder.data_dir, os.path.join(data_dir, "downloads", "extracted"))):
    builder.download_and_prepare(download_config=config)
  return builder


def _system_copy(spec: DatasetSpec) -> Optional[str]:
  """The first of ``spec.system_dirs`` that holds every manual file."""
  for folder in spec.system_dirs:
    if all(any(os.path.exists(os.path.join(folder, a)) for a in f.split("|"))
           for f in spec.manual_files):
      return folder
  return None


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
                 splits: Sequence[str] = ("train", "test"),
                 lazy_above_mb: float = -1,
                 accept_archives: "str | Sequence[str]" = (),
                 ) -> tuple[DatasetSpec, dict[str, Split]]:
  """Prepares (once) and returns the splits.

  A split whose decoded images take more than ``lazy_above_mb`` MiB stays on
  disk: its ``images`` are a ``LazyImages`` decoded per batch (0: every
  split lazy; negative: every split in memory). Both give the same examples
  in the same order. ``name`` may carry builder options:
  ``"vggface2:min_images=100"``. The returned spec's ``num_classes`` is the
  prepared dataset's (identities kept). ``accept_archives``: SHA-256s of
  non-official archives to prepare anyway (``config.accept_archives``).
  """
  spec, options = resolve(name)
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  if spec.tfds_name and not _own_copy_exists(spec, data_dir, options) \
      and stock_tfds_dir(spec, data_dir):
    return spec, {s: read_stock_split(spec, data_dir, s) for s in splits}
  builder = prepare(spec, data_dir, manual_dir, options, accept_archives)
  spec = dataclasses.replace(
      spec, num_classes=builder.info.features["label"].num_classes,
      image_shape=tuple(builder.info.features["image"].shape))
  return spec, {s: _read(builder, s, lazy_above_mb) for s in splits}


def _read(builder, split: str, lazy_above_mb: float) -> Split:
  from jaxunlearn.data.lazy import read_split_lazy
  shape = builder.info.features["image"].shape
  decoded_mb = builder.info.splits[split].num_examples * np.prod(shape) / 2**20
  if lazy_above_mb >= 0 and decoded_mb > lazy_above_mb:
    return read_split_lazy(builder, split)
  return read_split(builder, split)


def _own_copy_exists(spec, data_dir, options) -> bool:
  return spec.builder(data_dir=data_dir, file_format="array_record",
                      **options).is_prepared()


def _builder(class_name: str, image_shape=None):
  """A lazy factory for a class of ``builders`` (tfds imported on first use)."""
  def make(image_size: int = 0, min_images: int = 0, **kwargs):
    from jaxunlearn.data import builders
    cls = getattr(builders, class_name)
    if image_size or min_images:
      h, w, c = image_shape or cls.IMAGE_SHAPE
      if image_size:
        h = w = image_size
      kwargs["config"] = builders.folder_config((h, w, c), max(min_images, 1))
    return cls(**kwargs)
  return make


def _digits_builder(**kwargs):
  from jaxunlearn.data.digits import Digits
  return Digits(**kwargs)


DATASETS.add("digits", DatasetSpec(
    name="digits", builder=_digits_builder, num_classes=10,
    image_shape=(8, 8, 1), mean=(0.3052,), std=(0.3762,), crop_padding=1,
    embedded=True))
DATASETS.add("cifar10", DatasetSpec(
    name="cifar10", builder=_builder("Cifar10"), num_classes=10,
    image_shape=(32, 32, 3), mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True,
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    manual_files=("cifar-10-python.tar.gz",)))


_CIFAR100 = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_IDX = tuple(f for f in (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))
_FACE = dict(flip=True, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

DATASETS.add("cifar100", DatasetSpec(
    name="cifar100", builder=_builder("Cifar100"), num_classes=100,
    image_shape=(32, 32, 3), mean=_CIFAR100[0], std=_CIFAR100[1], crop_padding=4,
    flip=True, urls=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    manual_files=("cifar-100-python.tar.gz",), tfds_name="cifar100"))
DATASETS.add("mnist", DatasetSpec(
    name="mnist", builder=_builder("Mnist"), num_classes=10, image_shape=(28, 28, 1),
    mean=(0.1307,), std=(0.3081,), crop_padding=2,
    urls=tuple("https://storage.googleapis.com/cvdf-datasets/mnist/" + f
               for f in _IDX), manual_files=_IDX, tfds_name="mnist"))
DATASETS.add("fashion_mnist", DatasetSpec(
    name="fashion_mnist", builder=_builder("FashionMnist"), num_classes=10,
    image_shape=(28, 28, 1), mean=(0.2860,), std=(0.3530,), crop_padding=2,
    flip=True, urls=tuple(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" + f
        for f in _IDX), manual_files=_IDX, tfds_name="fashion_mnist",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    install_hint="apt-get install dataset-fashion-mnist"))
DATASETS.add("svhn", DatasetSpec(
    name="svhn", builder=_builder("Svhn"), num_classes=10, image_shape=(32, 32, 3),
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), crop_padding=4,
    urls=("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
          "http://ufldl.stanford.edu/housenumbers/test_32x32.mat"),
    manual_files=("train_32x32.mat", "test_32x32.mat"), tfds_name="svhn_cropped"))
DATASETS.add("tiny_imagenet", DatasetSpec(
    name="tiny_imagenet", builder=_builder("TinyImagenet"), num_classes=200,
    image_shape=(64, 64, 3), mean=(0.4802, 0.4481, 0.3975),
    std=(0.2770, 0.2691, 0.2821), crop_padding=8, flip=True,
    urls=("http://cs231n.stanford.edu/tiny-imagenet-200.zip",),
    manual_files=("tiny-imagenet-200.zip",)))
DATASETS.add("mufac", DatasetSpec(
    name="mufac", builder=_builder("Mufac"), num_classes=8,
    image_shape=(128, 128, 3), **_FACE, crop_padding=8,
    manual_files=("custom_korean_family_dataset_resolution_128.zip",),
    options=(("image_size", 0),)))
DATASETS.add("rafdb", DatasetSpec(
    name="rafdb", builder=_builder("Rafdb"), num_classes=7, image_shape=(100, 100, 3),
    mean=_IMAGENET[0], std=_IMAGENET[1], flip=True, crop_padding=8,
    manual_files=("basic/EmoLabel/list_patition_label.txt", "basic/Image/aligned"),
    options=(("image_size", 0),)))
DATASETS.add("vggface2", DatasetSpec(
    name="vggface2", builder=_builder("Vggface2"), num_classes=0,
    image_shape=(112, 112, 3), **_FACE, manual_files=("train",),
    options=(("min_images", 1), ("image_size", 0))))
DATASETS.add("celeba", DatasetSpec(
    name="celeba", builder=_builder("CelebaIdentities"), num_classes=0,
    image_shape=(64, 64, 3), **_FACE,
    manual_files=("identity_CelebA.txt", "img_align_celeba|img_align_celeba.zip"),
    options=(("min_images", 1), ("image_size", 0))))
DATASETS.add("utkface", DatasetSpec(
    name="utkface", builder=_builder("Utkface"), num_classes=5,
    image_shape=(64, 64, 3), **_FACE, manual_files=("UTKFace",),
    options=(("image_size", 0),)))
DATASETS.add("image_folder", DatasetSpec(
    name="image_folder", builder=_builder("ImageFolderDataset"), num_classes=0,
    image_shape=(32, 32, 3), mean=_IMAGENET[0], std=_IMAGENET[1], flip=True,
    crop_padding=4, manual_files=("train",), options=(("image_size", 0),)))
