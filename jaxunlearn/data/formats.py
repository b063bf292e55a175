"""Readers for the seeds' datasets in their published formats (no TensorFlow).

Every reader takes the manual dir (where the user put the archives) and the
builder's options, and returns ``{split: iterator of (id, image, label)}``
with ``image`` a uint8 HxWxC array of the builder's image shape. Ids are
stable: the position of the example in a sorted, documented order (train
first, then the next split offset by the previous splits' sizes), so a forget
id file stays valid across machines and re-preparations.

Expected layouts (relative to the manual dir):

- cifar10 / cifar100: ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``
  (fine labels, 100 classes).
- mnist / fashion_mnist: ``train-images-idx3-ubyte.gz``,
  ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz``.
- svhn: ``train_32x32.mat``, ``test_32x32.mat`` (cropped digits; label 10 is 0).
- tiny_imagenet: ``tiny-imagenet-200.zip`` (``wnids.txt``,
  ``train/<wnid>/images/*.JPEG``, ``val/images/*`` +
  ``val/val_annotations.txt``); the val split is our ``test``.
- mufac: ``custom_korean_family_dataset_resolution_128.zip`` holding
  ``custom_train_dataset.csv``, ``custom_val_dataset.csv``,
  ``custom_test_dataset.csv`` and the image folders ``train_images/``,
  ``val_images/``, ``test_images/`` (anywhere inside the zip). Each CSV has a
  header with at least ``image_path`` and ``age_class``; ``age_class`` is a
  letter a..h (or an integer 0..7); ``image_path`` is the file name inside the
  split's folder. ASSUMED from the MUFAC release (Choi & Na, 2023).
- rafdb: ``basic/EmoLabel/list_patition_label.txt`` (``train_00001.jpg 5``,
  labels 1..7) and ``basic/Image/aligned/train_00001_aligned.jpg``.
- vggface2: ``train/<identity>/*.jpg`` (and optionally ``test/<identity>/``,
  merged); identities with at least ``min_images`` images are kept, the
  labels are their sorted order, and every 5th image (sorted by path) of an
  identity is test.
- celeba: ``img_align_celeba/*.jpg`` (or ``img_align_celeba.zip``) +
  ``identity_CelebA.txt``; identities with at least ``min_images`` images,
  every 5th image of an identity is test.
- utkface: ``UTKFace/<age>_<gender>_<race>_<date>.jpg*``; the label is the race
  (0..4), every 5th file (sorted by name) is test.
- image_folder: ``train/<class>/*`` and optionally ``test/<class>/*``; without
  ``test/`` every 5th image of a class is test. Classes are the sorted folder
  names of ``train/`` (one folder per class or identity).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import tarfile
import zipfile
from typing import Callable, Sequence

import numpy as np

Example = tuple[int, np.ndarray, int]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEST_EVERY = 5


def to_shape(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """Centre-crops to the target aspect ratio, resizes (bilinear), sets channels."""
  from PIL import Image
  h, w, c = shape
  image = np.asarray(image, np.uint8)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[:2] != (h, w):
    ih, iw = image.shape[:2]
    # Crop the larger side so the resize keeps the aspect ratio (faces stay faces).
    if ih * w > iw * h:
      ch = iw * h // w
      top = (ih - ch) // 2
      image = image[top:top + ch]
    elif ih * w < iw * h:
      cw = ih * w // h
      left = (iw - cw) // 2
      image = image[:, left:left + cw]
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    image = np.asarray(pil.resize((w, h), Image.BILINEAR))
    if image.ndim == 2:
      image = image[..., None]
  if image.shape[-1] != c:
    if c == 1:
      image = np.rint(image[..., :3].astype(np.float32) @ np.array(
          [0.299, 0.587, 0.114], np.float32))[..., None].astype(np.uint8)
    else:
      image = np.repeat(image[..., :1], c, axis=-1)
  return image


def decode_file(data: bytes) -> np.ndarray:
  from PIL import Image
  with Image.open(io.BytesIO(data)) as pil:
    return np.asarray(pil.convert("RGB"))


class Parts(dict):
  """{split: examples} plus ``num_classes`` (known before any image is decoded)."""
  num_classes: int = 0


def _enumerate(parts: dict[str, list], shape) -> Parts:
  """Numbers the examples of each split consecutively, splits in dict order."""
  out, offset = Parts(), 0
  labels = [int(lb) for items in parts.values() for _, lb in items]
  out.num_classes = max(labels) + 1 if labels else 0
  for name, items in parts.items():
    out[name] = _numbered(items, offset, shape)
    offset += len(items)
  return out


def _numbered(items, offset, shape):
  for i, (load, label) in enumerate(items):
    yield offset + i, to_shape(load(), shape), int(label)


def _arrays(parts: dict[str, tuple[np.ndarray, np.ndarray]], shape):
  return _enumerate({s: [(lambda im=im: im, lb) for im, lb in zip(*v)]
                     for s, v in parts.items()}, shape)


# ---------------------------------------------------------------- CIFAR-10/100

def read_cifar_tarball(path: str, fine: bool = False):
  """{'train': (uint8 [N,32,32,3], labels), 'test': ...} from a python tarball."""
  key = b"fine_labels" if fine else b"labels"
  parts: dict[str, list] = {"train": [], "test": []}
  with tarfile.open(path, "r:gz") as tar:
    for name in sorted(m.name for m in tar.getmembers() if m.isfile()):
      base = os.path.basename(name)
      split = ("train" if base.startswith("data_batch") or base == "train"
               else "test" if base in ("test_batch", "test") else None)
      if split is None:
        continue
      batch = pickle.load(tar.extractfile(name), encoding="bytes")
      images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
      parts[split].append((images.transpose(0, 2, 3, 1),
                           np.asarray(batch[key], np.int64)))
  return {s: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v]))
          for s, v in parts.items()}


def cifar10(manual_dir, shape, **_):
  return _arrays(read_cifar_tarball(
      os.path.join(manual_dir, "cifar-10-python.tar.gz")), shape)


def cifar100(manual_dir, shape, **_):
  return _arrays(read_cifar_tarball(
      os.path.join(manual_dir, "cifar-100-python.tar.gz"), fine=True), shape)


# ----------------------------------------------------------------------- idx

def read_idx(path: str) -> np.ndarray:
  """An idx file (LeCun's MNIST format), gzipped or not."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  if data[:2] != b"\0\0" or data[2] != 0x08:
    raise ValueError(f"{path} is not an unsigned-byte idx file")
  dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_pair(manual_dir, shape, **_):
  f = [os.path.join(manual_dir, n) for n in IDX_FILES]
  return _arrays({"train": (read_idx(f[0]), read_idx(f[1])),
                  "test": (read_idx(f[2]), read_idx(f[3]))}, shape)


# ---------------------------------------------------------------------- SVHN

def svhn(manual_dir, shape, **_):
  from scipy.io import loadmat
  parts = {}
  for split in ("train", "test"):
    mat = loadmat(os.path.join(manual_dir, f"{split}_32x32.mat"))
    images = np.asarray(mat["X"], np.uint8).transpose(3, 0, 1, 2)
    labels = np.asarray(mat["y"], np.int64).reshape(-1) % 10  # '10' is digit 0
    parts[split] = (images, labels)
  return _arrays(parts, shape)


# -------------------------------------------------------------- Tiny-ImageNet

def _zip_reader(zf: zipfile.ZipFile, name: str) -> Callable[[], np.ndarray]:
  return lambda: decode_file(zf.read(name))


def tiny_imagenet(manual_dir, shape, **_):
  zf = zipfile.ZipFile(os.path.join(manual_dir, "tiny-imagenet-200.zip"))
  names = zf.namelist()
  root = next(n for n in names if n.endswith("wnids.txt"))[:-len("wnids.txt")]
  wnids = zf.read(root + "wnids.txt").decode().split()
  label_of = {w: i for i, w in enumerate(wnids)}
  train = sorted(n for n in names if n.startswith(root + "train/")
                 and "/images/" in n and n.lower().endswith(IMAGE_SUFFIXES))
  train_items = [(_zip_reader(zf, n), label_of[n[len(root + "train/"):].split("/")[0]])
                 for n in train]
  test_items = []
  for line in sorted(zf.read(root + "val/val_annotations.txt").decode().splitlines()):
    if line.strip():
      fname, wnid = line.split("\t")[:2]
      test_items.append((_zip_reader(zf, root + "val/images/" + fname),
                         label_of[wnid]))
  return _enumerate({"train": train_items, "test": test_items}, shape)


# ---------------------------------------------------------------------- MUFAC

MUFAC_ZIP = "custom_korean_family_dataset_resolution_128.zip"
MUFAC_SPLITS = (("train", "custom_train_dataset.csv", "train_images"),
                ("validation", "custom_val_dataset.csv", "val_images"),
                ("test", "custom_test_dataset.csv", "test_images"))


def _age_class(value: str) -> int:
  value = value.strip()
  label = ord(value.lower()) - ord("a") if value.isalpha() else int(value)
  if not 0 <= label < 8:
    raise ValueError(f"MUFAC age_class {value!r} is not in a..h / 0..7")
  return label


def mufac(manual_dir, shape, **_):
  zf = zipfile.ZipFile(os.path.join(manual_dir, MUFAC_ZIP))
  names = zf.namelist()
  by_suffix = lambda suffix: next(n for n in names if n.endswith(suffix))
  parts = {}
  for split, csv_name, folder in MUFAC_SPLITS:
    text = zf.read(by_suffix(csv_name)).decode("utf-8-sig")
    rows = sorted(csv.DictReader(io.StringIO(text)), key=lambda r: r["image_path"])
    parts[split] = [(_zip_reader(zf, by_suffix(f"{folder}/{os.path.basename(r['image_path'])}")),
                     _age_class(r["age_class"])) for r in rows]
  return _enumerate(parts, shape)


# --------------------------------------------------------------------- RAF-DB

def _file_reader(path: str) -> Callable[[], np.ndarray]:
  def load():
    with open(path, "rb") as f:
      return decode_file(f.read())
  return load


def rafdb(manual_dir, shape, **_):
  base = manual_dir if os.path.isdir(os.path.join(manual_dir, "EmoLabel")) else \
      os.path.join(manual_dir, "basic")
  parts: dict[str, list] = {"train": [], "test": []}
  with open(os.path.join(base, "EmoLabel", "list_patition_label.txt")) as f:
    rows = sorted(line.split() for line in f if line.strip())
  for fname, label in rows:
    split = "train" if fname.startswith("train") else "test"
    stem, ext = os.path.splitext(fname)
    path = os.path.join(base, "Image", "aligned", f"{stem}_aligned{ext}")
    parts[split].append((_file_reader(path), int(label) - 1))  # 1..7 -> 0..6
  return _enumerate(parts, shape)


# ---------------------------------------------- identity / class folder layouts

def _images_in(folder: str) -> list[str]:
  return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                if n.lower().endswith(IMAGE_SUFFIXES))


def _every_fifth(groups: dict[str, list], labels: dict[str, int]):
  """Per group (class / identity, sorted): every 5th item is test, rest train."""
  parts: dict[str, list] = {"train": [], "test": []}
  for name in sorted(groups):
    for i, item in enumerate(sorted(groups[name])):
      split = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
      parts[split].append((item, labels[name]))
  return parts


def _class_folders(root: str) -> dict[str, list[str]]:
  return {d: _images_in(os.path.join(root, d)) for d in sorted(os.listdir(root))
          if os.path.isdir(os.path.join(root, d))}


def _files_to_items(parts):
  return {s: [(_file_reader(p), lb) for p, lb in v] for s, v in parts.items()}


def image_folder(manual_dir, shape, **_):
  train = _class_folders(os.path.join(manual_dir, "train"))
  labels = {name: i for i, name in enumerate(sorted(train))}
  test_root = os.path.join(manual_dir, "test")
  if os.path.isdir(test_root):
    test = _class_folders(test_root)
    parts = {"train": [(p, labels[c]) for c in sorted(train) for p in train[c]],
             "test": [(p, labels[c]) for c in sorted(test) for p in test[c]]}
  else:
    parts = _every_fifth(train, labels)
  return _enumerate(_files_to_items(parts), shape)


def _keep_min(groups: dict[str, list], min_images: int):
  kept = {k: v for k, v in groups.items() if len(v) >= min_images}
  return kept, {name: i for i, name in enumerate(sorted(kept))}


def vggface2(manual_dir, shape, min_images: int = 1, **_):
  groups: dict[str, list] = {}
  for sub in ("train", "test"):
    root = os.path.join(manual_dir, sub)
    if os.path.isdir(root):
      for ident, files in _class_folders(root).items():
        groups.setdefault(ident, []).extend(files)
  kept, labels = _keep_min(groups, min_images)
  return _enumerate(_files_to_items(_every_fifth(kept, labels)), shape)


def celeba(manual_dir, shape, min_images: int = 1, **_):
  groups: dict[str, list] = {}
  with open(os.path.join(manual_dir, "identity_CelebA.txt")) as f:
    for line in f:
      if line.strip():
        fname, ident = line.split()
        groups.setdefault(ident, []).append(fname)
  kept, labels = _keep_min(groups, min_images)
  parts = _every_fifth(kept, {k: v for k, v in labels.items()})
  folder = os.path.join(manual_dir, "img_align_celeba")
  if os.path.isdir(folder):
    reader = lambda n: _file_reader(os.path.join(folder, n))
  else:
    zf = zipfile.ZipFile(folder + ".zip")
    reader = lambda n: _zip_reader(zf, f"img_align_celeba/{n}")
  return _enumerate({s: [(reader(n), lb) for n, lb in v]
                     for s, v in parts.items()}, shape)


def utkface(manual_dir, shape, **_):
  folder = os.path.join(manual_dir, "UTKFace")
  groups: dict[str, list] = {}
  for name in sorted(os.listdir(folder)):
    fields = name.split("_")
    if len(fields) >= 4 and fields[2].isdigit():  # a few files lack a field
      groups.setdefault(fields[2], []).append(os.path.join(folder, name))
  labels = {k: int(k) for k in groups}
  return _enumerate(_files_to_items(_every_fifth(groups, labels)), shape)
