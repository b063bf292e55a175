"""The library's TF-free tfds builders for every dataset in ``formats``.

One generic ``GeneratorBasedBuilder`` writes ``{"image": PNG bytes (PIL),
"label": ClassLabel, "id": int64}`` as array_record; each dataset is a small
subclass naming its reader, image shape and class count. Options that change
the prepared data (``min_images`` per identity, the stored image size) live in
a ``FolderConfig`` builder config, so each variant gets its own directory
(``vggface2/min100_112``) and is never confused with another.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from jaxunlearn.data import formats
from jaxunlearn.data.digits import encode_png


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """Options of a builder: stored image shape, identities' minimum size."""
  image_shape: tuple = (32, 32, 3)
  min_images: int = 1
  num_classes: int = 0  # 0: counted from the data (image folders, identities)


def folder_config(image_shape, min_images: int = 1, num_classes: int = 0):
  h, w, c = image_shape
  return FolderConfig(name=f"min{min_images}_{h}x{w}x{c}",
                      version=tfds.core.Version("1.0.0"),
                      image_shape=tuple(image_shape), min_images=min_images,
                      num_classes=num_classes)


class ImageBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Generic: ``READER(manual_dir, shape, **options) -> {split: examples}``.

  Every builder here passes ``skip_registration=True`` (tfds does not inherit
  it): the library instantiates its builders itself, and registering them
  would replace tfds's own ``cifar10``, ``mnist``, ... for the whole process."""

  VERSION = tfds.core.Version("1.0.0")
  READER = None
  IMAGE_SHAPE = (32, 32, 3)
  NUM_CLASSES = 10
  SPLITS = ("train", "test")
  HOMEPAGE = ""
  MANUAL_DOWNLOAD_INSTRUCTIONS = "Put the files named in jaxunlearn.data.formats in the manual dir."

  def _shape(self):
    config = self.builder_config
    return tuple(config.image_shape) if config else self.IMAGE_SHAPE

  def _num_classes(self):
    config = self.builder_config
    if config and config.num_classes:
      return config.num_classes
    return self.NUM_CLASSES

  def _info(self) -> tfds.core.DatasetInfo:
    num_classes = self._num_classes()
    # Classes counted from the data: known only after reading; the ClassLabel
    # then holds names and tfds stores them with the dataset info.
    label = (tfds.features.ClassLabel(num_classes=num_classes) if num_classes
             else tfds.features.ClassLabel())
    return tfds.core.DatasetInfo(
        builder=self, description=type(self).__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=self._shape(), encoding_format="png"),
            "label": label,
            "id": tfds.features.Scalar(dtype=np.int64),
        }),
        supervised_keys=("image", "label"), homepage=self.HOMEPAGE)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    options = {"min_images": config.min_images} if config else {}
    parts = type(self).READER(str(dl_manager.manual_dir), self._shape(), **options)
    if not self._num_classes():
      # Classes counted from the data (identities kept, class folders).
      self.info.features["label"].names = [str(i) for i in range(parts.num_classes)]
    return {name: self._generate_examples(examples)
            for name, examples in parts.items()}

  def _generate_examples(self, examples):
    for example_id, image, label in examples:
      yield int(example_id), {"image": encode_png(image), "label": int(label),
                              "id": int(example_id)}


class Cifar10(ImageBuilder, skip_registration=True):
  """CIFAR-10, 32x32x3, 10 classes (train ids 0..49999, test 50000..59999)."""
  READER = staticmethod(formats.cifar10)
  HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class Cifar100(ImageBuilder, skip_registration=True):
  """CIFAR-100 (fine labels), 32x32x3, 100 classes."""
  READER = staticmethod(formats.cifar100)
  NUM_CLASSES = 100
  HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class Mnist(ImageBuilder, skip_registration=True):
  """MNIST from the idx files, 28x28x1, 10 classes."""
  READER = staticmethod(formats.idx_pair)
  IMAGE_SHAPE = (28, 28, 1)
  HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"


class FashionMnist(ImageBuilder, skip_registration=True):
  """Fashion-MNIST from the idx files, 28x28x1, 10 classes."""
  READER = staticmethod(formats.idx_pair)
  IMAGE_SHAPE = (28, 28, 1)
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"


class Svhn(ImageBuilder, skip_registration=True):
  """SVHN cropped digits (train/test .mat), 32x32x3, 10 classes."""
  READER = staticmethod(formats.svhn)
  HOMEPAGE = "http://ufldl.stanford.edu/housenumbers/"


class TinyImagenet(ImageBuilder, skip_registration=True):
  """Tiny-ImageNet-200 (val as test), 64x64x3, 200 classes."""
  READER = staticmethod(formats.tiny_imagenet)
  IMAGE_SHAPE = (64, 64, 3)
  NUM_CLASSES = 200
  HOMEPAGE = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


class Mufac(ImageBuilder, skip_registration=True):
  """MUFAC (Korean family faces), 8 age classes, train/validation/test."""
  READER = staticmethod(formats.mufac)
  IMAGE_SHAPE = (128, 128, 3)
  NUM_CLASSES = 8
  HOMEPAGE = "https://github.com/ndb796/MachineUnlearning"


class Rafdb(ImageBuilder, skip_registration=True):
  """RAF-DB basic expressions (aligned), 7 classes."""
  READER = staticmethod(formats.rafdb)
  IMAGE_SHAPE = (100, 100, 3)
  NUM_CLASSES = 7
  HOMEPAGE = "http://www.whdeng.cn/raf/model1.html"


class Utkface(ImageBuilder, skip_registration=True):
  """UTKFace, label = race (0..4) from the file name."""
  READER = staticmethod(formats.utkface)
  IMAGE_SHAPE = (64, 64, 3)
  NUM_CLASSES = 5
  HOMEPAGE = "https://susanqq.github.io/UTKFace/"


class Vggface2(ImageBuilder, skip_registration=True):
  """VGGFace2 identities with >= min_images images (builder config)."""
  READER = staticmethod(formats.vggface2)
  IMAGE_SHAPE = (112, 112, 3)
  NUM_CLASSES = 0
  HOMEPAGE = "https://github.com/ox-vgg/vgg_face2"


class CelebaIdentities(ImageBuilder, skip_registration=True):
  """CelebA identities (img_align_celeba + identity_CelebA.txt)."""
  READER = staticmethod(formats.celeba)
  IMAGE_SHAPE = (64, 64, 3)
  NUM_CLASSES = 0
  HOMEPAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


class ImageFolderDataset(ImageBuilder, skip_registration=True):
  """One folder per class or identity under ``train/`` (and ``test/``)."""
  READER = staticmethod(formats.image_folder)
  NUM_CLASSES = 0
