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

Nothing read here can run code or decode without bound: the CIFAR batches go
through ``archives.load_pickle`` (a restricted unpickler), sizes and image
dimensions are checked before decompression (``archives``), and a malformed
file fails in one ``UserError`` line naming it.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import tarfile
import zipfile
from typing import Callable, Sequence

import numpy as np

from jaxunlearn.data import archives
from jaxunlearn.errors import UserError

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


def decode_file(data: bytes, where: str = "an image") -> np.ndarray:
  return archives.decode_image(data, where)


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

CIFAR_PIXELS = 32 * 32 * 3
MAX_CIFAR_MEMBERS = 64  # tar entries; the official archives have 9 and 5


def _cifar_split(name: str):
  base = os.path.basename(name)
  return ("train" if base.startswith("data_batch") or base == "train"
          else "test" if base in ("test_batch", "test") else None)


def cifar_batch_arrays(batch, key: bytes, num_classes: int, where: str):
  """(uint8 [N,32,32,3], int64 [N]) from an unpickled batch, shapes checked."""
  if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
    keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise UserError(f"{where} is not a CIFAR batch: expected a dict with "
                    f"{b'data'!r} and {key!r}, got {keys}")
  data = batch[b"data"]
  if not (isinstance(data, np.ndarray) and data.dtype == np.uint8
          and data.ndim == 2 and data.shape[1] == CIFAR_PIXELS):
    shape = getattr(data, "shape", None)
    raise UserError(f"{where}: 'data' is {type(data).__name__} "
                    f"{getattr(data, 'dtype', '')} {shape}, expected uint8 "
                    f"(N, {CIFAR_PIXELS}) (N 32x32x3 images)")
  labels = np.asarray(batch[key])
  if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
    raise UserError(f"{where}: {key.decode()} is {labels.dtype} {labels.shape}, "
                    f"expected {len(data)} integer labels")
  if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
    raise UserError(f"{where}: labels span {labels.min()}..{labels.max()}, "
                    f"expected 0..{num_classes - 1}")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, labels.astype(np.int64)


def read_cifar_tarball(path: str, fine: bool = False):
  """{'train': (uint8 [N,32,32,3], labels), 'test': ...} from a python tarball.

  Batches in member-name order (data_batch_1..5, test_batch; CIFAR-100:
  train, test), unpickled by ``archives.load_pickle``: a batch that asks
  for anything but NumPy arrays and plain containers is refused.
  """
  key, num_classes = (b"fine_labels", 100) if fine else (b"labels", 10)
  parts: dict[str, list] = {"train": [], "test": []}
  with archives.reading(path), tarfile.open(path, "r:gz") as tar:
    members = []
    for count, member in enumerate(tar):
      if count >= MAX_CIFAR_MEMBERS:
        raise UserError(f"{path} has more than {MAX_CIFAR_MEMBERS} members; "
                        "the official CIFAR archives have 9 and 5")
      if member.isfile() and _cifar_split(member.name):
        members.append(member)
    for member in sorted(members, key=lambda m: m.name):
      where = f"{path}:{member.name}"
      archives.check_member_size(member.size, where, archives.MAX_PICKLE_BYTES)
      batch = archives.load_pickle(tar.extractfile(member), where)
      parts[_cifar_split(member.name)].append(
          cifar_batch_arrays(batch, key, num_classes, where))
  missing = [s for s, v in parts.items() if not v]
  if missing:
    raise UserError(f"{path} has no {' or '.join(missing)} batch (expected "
                    "data_batch_* and test_batch, or train and test)")
  return {s: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v]))
          for s, v in parts.items()}


def cifar10(manual_dir, shape, **_):
  return _arrays(read_cifar_tarball(
      os.path.join(manual_dir, "cifar-10-python.tar.gz")), shape)


def cifar100(manual_dir, shape, **_):
  return _arrays(read_cifar_tarball(
      os.path.join(manual_dir, "cifar-100-python.tar.gz"), fine=True), shape)


# ----------------------------------------------------------------------- idx

MAX_IDX_BYTES = 1 << 30  # (MNIST's train images are 47 MB)


def read_idx(path: str) -> np.ndarray:
  """An idx file (LeCun's MNIST format), gzipped or not.

  The header's dimensions are checked before the array is read, and the
  file must hold exactly that many bytes.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with archives.reading(path), opener(path, "rb") as f:
    magic = f.read(4)
    if len(magic) < 4 or magic[:3] != b"\0\0\x08" or not 1 <= magic[3] <= 4:
      raise UserError(f"{path} is not an unsigned-byte idx file "
                      f"(header {magic.hex() or 'empty'})")
    ndim = magic[3]
    header = f.read(4 * ndim)
    if len(header) < 4 * ndim:
      raise UserError(f"{path} is truncated: its header ends early")
    dims = [int.from_bytes(header[4 * i:4 * i + 4], "big") for i in range(ndim)]
    size = int(np.prod(dims, dtype=np.int64))
    archives.check_member_size(size, path, MAX_IDX_BYTES)
    data = f.read(size)
    if len(data) < size:
      raise UserError(f"{path} is truncated: {len(data)} of the {size} bytes "
                      f"its header declares ({dims})")
    if f.read(1):
      raise UserError(f"{path} has bytes after the {dims} array its header declares")
  return np.frombuffer(data, np.uint8).reshape(dims)


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_split(images_path: str, labels_path: str, num_classes: int = 10):
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
    raise UserError(f"{images_path} {list(images.shape)} and {labels_path} "
                    f"{list(labels.shape)} do not pair: expected [N,H,W] images "
                    "and [N] labels")
  if labels.size and labels.max() >= num_classes:
    raise UserError(f"{labels_path}: label {labels.max()} is not in "
                    f"0..{num_classes - 1}")
  return images, labels


def idx_pair(manual_dir, shape, **_):
  f = [os.path.join(manual_dir, n) for n in IDX_FILES]
  return _arrays({"train": _idx_split(f[0], f[1]),
                  "test": _idx_split(f[2], f[3])}, shape)


# ---------------------------------------------------------------------- SVHN

MAX_SVHN_IMAGES = 1 << 20  # the "extra" split has 531,131

# MATLAB classes of a numeric array (whosmat); cells, structs, objects and
# function handles are refused.
_MAT_NUMERIC = ("double", "single", "int8", "uint8", "int16", "uint16",
                "int32", "uint32", "int64", "uint64", "logical")


def read_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [N,32,32,3], labels 0..9) from a cropped-digits .mat file.

  The declared shapes and classes of ``X`` and ``y`` are checked (whosmat
  reads headers only) before anything is loaded.
  """
  from scipy.io import loadmat, whosmat
  with archives.reading(path):
    declared = {name: (tuple(shape), cls) for name, shape, cls in whosmat(path)}
    x_shape, x_cls = declared.get("X", ((), "missing"))
    y_shape, y_cls = declared.get("y", ((), "missing"))
    n = x_shape[3] if len(x_shape) == 4 else -1
    if (x_shape[:3] != (32, 32, 3) or x_cls != "uint8" or not 0 < n <= MAX_SVHN_IMAGES
        or y_cls not in _MAT_NUMERIC or int(np.prod(y_shape)) != n):
      raise UserError(f"{path} holds X {x_cls} {list(x_shape)} and y {y_cls} "
                      f"{list(y_shape)}; expected X uint8 [32,32,3,N] and N labels y")
    mat = loadmat(path, variable_names=("X", "y"))
  images = np.asarray(mat["X"], np.uint8).transpose(3, 0, 1, 2)
  labels = np.asarray(mat["y"]).reshape(-1)
  if labels.size and (labels.min() < 0 or labels.max() > 10
                      or np.any(labels != np.round(labels))):
    raise UserError(f"{path}: labels must be digits 1..10 (10 is 0)")
  return images, labels.astype(np.int64) % 10  # '10' is digit 0


def svhn(manual_dir, shape, **_):
  return _arrays({split: read_svhn_mat(os.path.join(manual_dir, f"{split}_32x32.mat"))
                  for split in ("train", "test")}, shape)


# -------------------------------------------------------------- Tiny-ImageNet

def _open_zip(path: str) -> zipfile.ZipFile:
  with archives.reading(path):
    return zipfile.ZipFile(path)


def _zip_text(zf: zipfile.ZipFile, name: str, path: str, encoding="utf-8") -> str:
  where = f"{path}:{name}"
  data = archives.read_zip_member(zf, name, where)
  with archives.reading(where):
    return data.decode(encoding)


def _zip_member(names: list[str], suffix: str, path: str) -> str:
  found = next((n for n in names if n.endswith(suffix)), None)
  if found is None:
    raise UserError(f"{path} has no {suffix}: not the expected archive")
  return found


def _zip_reader(zf: zipfile.ZipFile, name: str, path: str = "") -> Callable[[], np.ndarray]:
  where = f"{path or zf.filename}:{name}"
  return lambda: decode_file(archives.read_zip_member(zf, name, where), where)


def tiny_imagenet(manual_dir, shape, **_):
  path = os.path.join(manual_dir, "tiny-imagenet-200.zip")
  zf = _open_zip(path)
  names = zf.namelist()
  root = _zip_member(names, "wnids.txt", path)[:-len("wnids.txt")]
  wnids = _zip_text(zf, root + "wnids.txt", path).split()
  label_of = {w: i for i, w in enumerate(wnids)}

  def label(wnid: str, where: str) -> int:
    if wnid not in label_of:
      raise UserError(f"{path}: {where} names class {wnid!r}, which wnids.txt "
                      "does not list")
    return label_of[wnid]
  train = sorted(n for n in names if n.startswith(root + "train/")
                 and "/images/" in n and n.lower().endswith(IMAGE_SUFFIXES))
  train_items = [(_zip_reader(zf, n, path),
                  label(n[len(root + "train/"):].split("/")[0], n)) for n in train]
  test_items = []
  annotations = root + "val/val_annotations.txt"
  for line in sorted(_zip_text(zf, annotations, path).splitlines()):
    if line.strip():
      fields = line.split("\t")
      if len(fields) < 2:
        raise UserError(f"{path}:{annotations}: line {line[:80]!r} has no "
                        "tab-separated class")
      test_items.append((_zip_reader(zf, root + "val/images/" + fields[0], path),
                         label(fields[1], annotations)))
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
  path = os.path.join(manual_dir, MUFAC_ZIP)
  zf = _open_zip(path)
  names = zf.namelist()
  by_suffix = lambda suffix: _zip_member(names, suffix, path)
  parts = {}
  for split, csv_name, folder in MUFAC_SPLITS:
    member = by_suffix(csv_name)
    with archives.reading(f"{path}:{member}"):
      text = _zip_text(zf, member, path, "utf-8-sig")
      rows = sorted(csv.DictReader(io.StringIO(text)), key=lambda r: r["image_path"])
      parts[split] = [
          (_zip_reader(zf, by_suffix(f"{folder}/{os.path.basename(r['image_path'])}"), path),
           _age_class(r["age_class"])) for r in rows]
  return _enumerate(parts, shape)


# --------------------------------------------------------------------- RAF-DB

def _file_reader(path: str) -> Callable[[], np.ndarray]:
  return lambda: decode_file(archives.read_bounded(path), path)


def rafdb(manual_dir, shape, **_):
  base = manual_dir if os.path.isdir(os.path.join(manual_dir, "EmoLabel")) else \
      os.path.join(manual_dir, "basic")
  parts: dict[str, list] = {"train": [], "test": []}
  list_file = os.path.join(base, "EmoLabel", "list_patition_label.txt")
  with archives.reading(list_file):
    text = archives.read_bounded(list_file).decode()
    rows = sorted(line.split()[:2] for line in text.splitlines() if line.strip())
    labels = [int(label) for _, label in rows]
  for (fname, _), label in zip(rows, labels):
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
  list_file = os.path.join(manual_dir, "identity_CelebA.txt")
  with archives.reading(list_file):
    for line in archives.read_bounded(list_file).decode().splitlines():
      if line.strip():
        fname, ident = line.split()
        groups.setdefault(ident, []).append(fname)
  kept, labels = _keep_min(groups, min_images)
  parts = _every_fifth(kept, {k: v for k, v in labels.items()})
  folder = os.path.join(manual_dir, "img_align_celeba")
  if os.path.isdir(folder):
    reader = lambda n: _file_reader(os.path.join(folder, n))
  else:
    zf = _open_zip(folder + ".zip")
    reader = lambda n: _zip_reader(zf, f"img_align_celeba/{n}", folder + ".zip")
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
