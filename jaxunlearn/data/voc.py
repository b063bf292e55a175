"""Pascal VOC 2012 semantic segmentation as a TF-free tfds builder.

The manual dir holds either ``VOCtrainval_11-May-2012.tar`` (read in place)
or its extracted tree ``VOCdevkit/VOC2012/`` with ``JPEGImages/<name>.jpg``,
``SegmentationClass/<name>.png`` (palette PNGs: the pixel values are class
indices 0..20, 255 = border / ignore) and
``ImageSets/Segmentation/{train,val}.txt``. Our ``test`` split is VOC's
``val`` (the test masks are not public). The tar is checked against its
published SHA-256 before preparation (``archives.verify``); the extracted
tree cannot be, and is read with the same size and image-dimension limits.

Every image is centre-cropped to a square and resized to ``image_size``
(bilinear); its mask gets the same crop and a nearest-neighbour resize, so
labels stay class indices and 255 stays 255. Stored as array_record:
``{"image": PNG, "mask": uint8 [S,S], "id": int64}``; ids are positions in
train.txt, then val.txt offset by the number of train images.
"""
from __future__ import annotations

import dataclasses
import os
import tarfile
from typing import Callable, Iterator, Optional

import numpy as np
import tensorflow_datasets as tfds

from jaxunlearn.data import archives
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError

NUM_CLASSES = 21  # background + 20 object classes
CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle",
               "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
               "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as usual for VOC
STD = (0.229, 0.224, 0.225)
TAR_NAME = "VOCtrainval_11-May-2012.tar"
ROOT = "VOCdevkit/VOC2012"
URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/" + TAR_NAME
SPLIT_FILES = (("train", "train.txt"), ("test", "val.txt"))


def square_crop_box(height: int, width: int) -> tuple[int, int, int, int]:
  """(left, top, right, bottom) of the centred square crop."""
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  return left, top, left + side, top + side


def resize_pair(image: np.ndarray, mask: np.ndarray,
                size: int) -> tuple[np.ndarray, np.ndarray]:
  """Centre square crop of both, image bilinear / mask nearest to size x size."""
  from PIL import Image
  box = square_crop_box(*mask.shape[:2])
  pil_image = Image.fromarray(image).crop(box).resize((size, size), Image.BILINEAR)
  pil_mask = Image.fromarray(mask).crop(box).resize((size, size), Image.NEAREST)
  return np.asarray(pil_image, np.uint8), np.asarray(pil_mask, np.uint8)


def decode_mask(data: bytes, where: str = "a VOC mask") -> np.ndarray:
  """A VOC palette PNG as its index values [H,W] uint8 (not the RGB colours)."""
  with archives.open_image(data, where) as pil:
    if pil.mode not in ("P", "L"):
      raise UserError(f"{where}: a VOC mask must be a palette PNG, got mode {pil.mode}")
    return np.asarray(pil, np.uint8)


def decode_image(data: bytes, where: str = "a VOC image") -> np.ndarray:
  return archives.decode_image(data, where)


def file_reader(manual_dir: str) -> Callable[[str], bytes]:
  """``read(relative path under VOC2012/) -> bytes`` from the tar or the tree.

  Every file's size is checked before it is read (``archives``); a missing
  or damaged one fails in one line naming it.
  """
  tree = os.path.join(manual_dir, ROOT)
  if os.path.isdir(tree):
    return lambda relative: archives.read_bounded(os.path.join(tree, relative))
  path = os.path.join(manual_dir, TAR_NAME)
  with archives.reading(path):
    tar = tarfile.open(path)  # kept open while reading
    members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}

  def read_tar(relative: str) -> bytes:
    name = f"{ROOT}/{relative}"
    if name not in members:
      raise UserError(f"{path} has no {name}: not the VOC 2012 trainval tar")
    return archives.read_tar_member(tar, members[name], f"{path}:{name}")
  return read_tar


def missing_message(manual_dir: str, data_dir: str) -> Optional[str]:
  """None if the manual dir has VOC; else the one-line fix."""
  if os.path.isdir(os.path.join(manual_dir, ROOT)) or os.path.isfile(
      os.path.join(manual_dir, TAR_NAME)):
    return None
  return (f"dataset 'voc2012' is not prepared in {data_dir} and cannot be "
          f"downloaded here; put {TAR_NAME} (or its extracted {ROOT}/) in "
          f"{manual_dir} (from {URL}) and run again")


def read_examples(manual_dir: str, size: int
                  ) -> dict[str, Iterator[tuple[int, np.ndarray, np.ndarray]]]:
  """{"train"|"test": iterator of (id, image [S,S,3], mask [S,S])}."""
  read = file_reader(manual_dir)
  names = {}
  for split, list_file in SPLIT_FILES:
    relative = f"ImageSets/Segmentation/{list_file}"
    with archives.reading(f"{manual_dir}: {relative}"):
      text = read(relative).decode()
    names[split] = [line.split()[0] for line in text.splitlines() if line.strip()]

  def examples(split_names, offset):
    for i, name in enumerate(split_names):
      image = decode_image(read(f"JPEGImages/{name}.jpg"), f"VOC JPEGImages/{name}.jpg")
      mask = decode_mask(read(f"SegmentationClass/{name}.png"),
                         f"VOC SegmentationClass/{name}.png")
      if image.shape[:2] != mask.shape:
        raise UserError(f"VOC {name}: image {image.shape[:2]} and mask "
                        f"{mask.shape} differ in size")
      yield (offset + i, *resize_pair(image, mask, size))
  return {"train": examples(names["train"], 0),
          "test": examples(names["test"], len(names["train"]))}


@dataclasses.dataclass(eq=False)
class VocConfig(tfds.core.BuilderConfig):
  image_size: int = 64


def voc_config(image_size: int) -> VocConfig:
  return VocConfig(name=f"{image_size}px", version=tfds.core.Version("1.0.0"),
                   image_size=int(image_size))


class Voc2012Segmentation(tfds.core.GeneratorBasedBuilder,
                          skip_registration=True):
  """Pascal VOC 2012 segmentation (train / val as test), square-resized."""

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"Put {TAR_NAME} (or {ROOT}/) in the manual dir."
  BUILDER_CONFIGS = [voc_config(64)]

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.image_size
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
            "mask": tfds.features.Tensor(shape=(s, s), dtype=np.uint8),
            "id": tfds.features.Scalar(dtype=np.int64),
        }),
        homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/")

  def _split_generators(self, dl_manager):
    parts = read_examples(str(dl_manager.manual_dir), self.builder_config.image_size)
    return {name: self._generate_examples(examples)
            for name, examples in parts.items()}

  def _generate_examples(self, examples):
    from jaxunlearn.data.digits import encode_png
    for example_id, image, mask in examples:
      yield int(example_id), {"image": encode_png(image), "mask": mask,
                              "id": int(example_id)}


def _read_split(builder, split: str) -> Split:
  source = builder.as_data_source()[split]
  examples = source.__getitems__(list(range(len(source))))
  ids = np.asarray([e["id"] for e in examples], np.int64)
  order = np.argsort(ids, kind="stable")  # tfds shuffles on write
  images = np.stack([e["image"] for e in examples]).astype(np.uint8)[order]
  masks = np.stack([e["mask"] for e in examples]).astype(np.uint8)[order]
  return Split(images, masks, ids[order])


def load(data_dir: Optional[str] = None, manual_dir: Optional[str] = None,
         image_size: int = 64, accept_archives=()) -> dict[str, Split]:
  """Prepares once (array_record under data_dir) and reads {"train", "test"}.

  Labels are uint8 masks [N,S,S] with 255 = ignore. ``accept_archives``:
  SHA-256s of a non-official tar to prepare anyway.
  """
  from jaxunlearn.data import _quiet_tfds, default_data_dir
  tfds_lib = _quiet_tfds()
  data_dir = os.path.expanduser(data_dir or default_data_dir())
  builder = Voc2012Segmentation(data_dir=data_dir, file_format="array_record",
                                config=voc_config(image_size))
  if not builder.is_prepared():
    manual_dir = os.path.expanduser(
        manual_dir or os.path.join(data_dir, "downloads", "manual", "voc2012"))
    message = missing_message(manual_dir, data_dir)
    if message:
      raise UserError(message)
    if not os.path.isdir(os.path.join(manual_dir, ROOT)):
      archives.verify("voc2012", manual_dir, accept_archives)
    with archives.restore_on_failure(data_dir, (
        builder.data_dir, os.path.join(data_dir, "downloads", "extracted"))):
      builder.download_and_prepare(download_config=tfds_lib.download.DownloadConfig(
          manual_dir=manual_dir, try_download_gcs=False))
  return {split: _read_split(builder, split) for split, _ in SPLIT_FILES}
