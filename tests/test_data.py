"""Builders round-trip fixtures in the real formats; offline errors are fast;
the library's builders leave tfds's dataset names alone."""
import gzip
import io
import os
import pickle
import subprocess
import sys
import tarfile
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxunlearn.data import load_dataset
from jaxunlearn.errors import UserError

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fixtures_are_not_the_official_archives(monkeypatch):
  # These tests check the formats on small archives under the official names;
  # digest verification is tested in test_archive_safety.py.
  from jaxunlearn.data import archives
  monkeypatch.setattr(archives, "PUBLISHED", {})


def _images(n, h, w, c):
  return RNG.integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _png(image):
  buf = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, "PNG")
  return buf.getvalue()


def _check(split, images, labels, first_id):
  order = np.argsort(split.ids)
  np.testing.assert_array_equal(split.ids[order], first_id + np.arange(len(labels)))
  np.testing.assert_array_equal(split.images[order], images)
  np.testing.assert_array_equal(split.labels[order], labels)


def _tar(path, members):
  with tarfile.open(path, "w:gz") as tar:
    for name, obj in members.items():
      data = pickle.dumps(obj)
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("name,fine", [("cifar10", False), ("cifar100", True)])
def test_cifar_tarballs(tmp_path, name, fine):
  tr, te = _images(7, 32, 32, 3), _images(3, 32, 32, 3)
  ltr, lte = RNG.integers(0, 10, 7), RNG.integers(0, 10, 3)
  key = b"fine_labels" if fine else b"labels"
  flat = lambda x: x.transpose(0, 3, 1, 2).reshape(len(x), -1)
  root = "cifar-100-python/" if fine else "cifar-10-batches-py/"
  members = ({root + "train": {b"data": flat(tr), key: list(ltr)},
              root + "test": {b"data": flat(te), key: list(lte)}} if fine else
             {root + "data_batch_1": {b"data": flat(tr[:4]), key: list(ltr[:4])},
              root + "data_batch_2": {b"data": flat(tr[4:]), key: list(ltr[4:])},
              root + "test_batch": {b"data": flat(te), key: list(lte)}})
  manual = tmp_path / "manual"
  manual.mkdir()
  archive = "cifar-100-python.tar.gz" if fine else "cifar-10-python.tar.gz"
  _tar(manual / archive, members)
  spec, splits = load_dataset(name, str(tmp_path / "data"), str(manual))
  _check(splits["train"], tr, ltr, 0)
  _check(splits["test"], te, lte, 7)  # test ids follow train (50,000 for CIFAR-10)


def _idx(path, array):
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.tobytes())


def test_mnist_idx(tmp_path):
  tr, te = _images(6, 28, 28, 1), _images(2, 28, 28, 1)
  ltr, lte = RNG.integers(0, 10, 6).astype(np.uint8), RNG.integers(0, 10, 2).astype(np.uint8)
  for fname, arr in zip(("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
                        (tr[..., 0], ltr, te[..., 0], lte)):
    _idx(tmp_path / fname, arr)
  spec, splits = load_dataset("fashion_mnist", str(tmp_path / "data"), str(tmp_path))
  _check(splits["train"], tr, ltr, 0)
  _check(splits["test"], te, lte, 6)


def test_svhn_mat(tmp_path):
  from scipy.io import savemat
  parts = {}
  for split, n in (("train", 5), ("test", 3)):
    images, labels = _images(n, 32, 32, 3), RNG.integers(1, 11, n)
    savemat(tmp_path / f"{split}_32x32.mat",
            {"X": images.transpose(1, 2, 3, 0), "y": labels[:, None]})
    parts[split] = (images, labels % 10)
  _, splits = load_dataset("svhn", str(tmp_path / "data"), str(tmp_path))
  _check(splits["train"], *parts["train"], 0)
  _check(splits["test"], *parts["test"], 5)


def test_tiny_imagenet_zip(tmp_path):
  wnids = ["n01", "n02"]
  tr, te = _images(4, 64, 64, 3), _images(2, 64, 64, 3)
  with zipfile.ZipFile(tmp_path / "tiny-imagenet-200.zip", "w") as zf:
    zf.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids))
    for i in range(4):  # sorted path order: n01_0, n01_1, n02_2, n02_3
      w = wnids[i // 2]
      zf.writestr(f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG", _png(tr[i]))
    zf.writestr("tiny-imagenet-200/val/val_annotations.txt",
                "val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n")
    for i in range(2):
      zf.writestr(f"tiny-imagenet-200/val/images/val_{i}.JPEG", _png(te[i]))
  spec, splits = load_dataset("tiny_imagenet", str(tmp_path / "data"), str(tmp_path))
  _check(splits["train"], tr, [0, 0, 1, 1], 0)
  _check(splits["test"], te, [1, 0], 4)


def test_mufac_zip(tmp_path):
  root = "custom_korean_family_dataset_resolution_128/"
  expected = {}
  with zipfile.ZipFile(tmp_path / "custom_korean_family_dataset_resolution_128.zip",
                       "w") as zf:
    for split, csv_name, folder in (("train", "custom_train_dataset.csv", "train_images"),
                                    ("validation", "custom_val_dataset.csv", "val_images"),
                                    ("test", "custom_test_dataset.csv", "test_images")):
      images, ages = _images(3, 128, 128, 3), RNG.integers(0, 8, 3)
      rows = ["family_id,image_path,age_class"]
      for i in range(3):
        zf.writestr(f"{root}{folder}/{split}{i}.png", _png(images[i]))
        rows.append(f"F{i},{split}{i}.png,{'abcdefgh'[ages[i]]}")
      zf.writestr(root + csv_name, "\n".join(rows))
      expected[split] = (images, ages)
  _, splits = load_dataset("mufac", str(tmp_path / "data"), str(tmp_path),
                           splits=("train", "validation", "test"))
  for offset, split in enumerate(("train", "validation", "test")):
    _check(splits[split], *expected[split], 3 * offset)


def test_rafdb_layout(tmp_path):
  base = tmp_path / "basic"
  (base / "EmoLabel").mkdir(parents=True)
  (base / "Image" / "aligned").mkdir(parents=True)
  images = _images(4, 100, 100, 3)
  names = ["test_0001.jpg", "test_0002.jpg", "train_00001.jpg", "train_00002.jpg"]
  labels = [7, 1, 3, 5]
  for name, image in zip(names, images):
    Image.fromarray(image).save(base / "Image" / "aligned" /
                                name.replace(".jpg", "_aligned.jpg"), "PNG")
  (base / "EmoLabel" / "list_patition_label.txt").write_text(
      "".join(f"{n} {l}\n" for n, l in zip(names, labels)))
  _, splits = load_dataset("rafdb", str(tmp_path / "data"), str(tmp_path))
  _check(splits["train"], images[2:], [2, 4], 0)
  _check(splits["test"], images[:2], [6, 0], 2)


def _folders(root, counts, shape):
  """root/<name>/<i>.png; returns {name: images in sorted file order}."""
  out = {}
  for name, n in counts.items():
    (root / name).mkdir(parents=True)
    out[name] = _images(n, *shape)
    for i, image in enumerate(out[name]):
      Image.fromarray(image).save(root / name / f"{i:03d}.png")
  return out


def test_vggface2_min_images(tmp_path):
  made = _folders(tmp_path / "train", {"n001": 6, "n002": 2, "n003": 5}, (16, 16, 3))
  spec, splits = load_dataset("vggface2:min_images=5,image_size=16",
                              str(tmp_path / "data"), str(tmp_path))
  assert spec.num_classes == 2 and spec.image_shape == (16, 16, 3)
  # Kept: n001 (label 0), n003 (label 1); every 5th image of each is test.
  train = np.concatenate([made["n001"][[0, 1, 2, 3, 5]], made["n003"][:4]])
  test = np.stack([made["n001"][4], made["n003"][4]])
  _check(splits["train"], train, [0] * 5 + [1] * 4, 0)
  _check(splits["test"], test, [0, 1], 9)


def test_image_folder_with_test(tmp_path):
  tr = _folders(tmp_path / "train", {"cat": 2, "dog": 3}, (32, 32, 3))
  te = _folders(tmp_path / "test", {"cat": 1, "dog": 1}, (32, 32, 3))
  spec, splits = load_dataset("image_folder", str(tmp_path / "data"), str(tmp_path))
  assert spec.num_classes == 2
  _check(splits["train"], np.concatenate([tr["cat"], tr["dog"]]), [0, 0, 1, 1, 1], 0)
  _check(splits["test"], np.concatenate([te["cat"], te["dog"]]), [0, 1], 5)


@pytest.mark.parametrize("zipped", [False, True])
def test_celeba_identities(tmp_path, zipped):
  # identity file lines in CelebA's format; "10" sorts before "7" as a string
  idents = {"10": 6, "7": 5, "3": 2}
  lines, made, k = [], {}, 0
  for ident, n in idents.items():
    made[ident] = []
    for _ in range(n):
      k += 1
      name = f"{k:06d}.jpg"
      lines.append(f"{name} {ident}\n")
      made[ident].append((name, _images(1, 16, 16, 3)[0]))
  (tmp_path / "identity_CelebA.txt").write_text("".join(lines))
  if zipped:
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as zf:
      for items in made.values():
        for name, image in items:
          zf.writestr(f"img_align_celeba/{name}", _png(image))
  else:
    (tmp_path / "img_align_celeba").mkdir()
    for items in made.values():
      for name, image in items:
        Image.fromarray(image).save(tmp_path / "img_align_celeba" / name, "PNG")
  spec, splits = load_dataset("celeba:min_images=5,image_size=16",
                              str(tmp_path / "data"), str(tmp_path))
  assert spec.num_classes == 2  # identity 3 has only 2 images
  img = {i: np.stack([im for _, im in made[i]]) for i in ("10", "7")}
  # labels: sorted identity strings ("10" -> 0, "7" -> 1); 5th image is test
  train = np.concatenate([img["10"][[0, 1, 2, 3, 5]], img["7"][:4]])
  _check(splits["train"], train, [0] * 5 + [1] * 4, 0)
  _check(splits["test"], np.stack([img["10"][4], img["7"][4]]), [0, 1], 9)


def test_utkface_race_labels(tmp_path):
  folder = tmp_path / "UTKFace"
  folder.mkdir()
  images = _images(7, 64, 64, 3)
  names = [f"{20 + i}_{i % 2}_{race}_2017011{i}.jpg.chip.jpg"
           for i, race in enumerate([0, 0, 0, 0, 0, 3, 3])]
  for name, image in zip(names, images):
    Image.fromarray(image).save(folder / name, "PNG")
  Image.fromarray(images[0]).save(folder / "39_1_20170116174525125.jpg.chip.jpg",
                                  "PNG")  # a file without the race field
  spec, splits = load_dataset("utkface", str(tmp_path / "data"), str(tmp_path))
  assert spec.num_classes == 5 and spec.image_shape == (64, 64, 3)
  _check(splits["train"], images[[0, 1, 2, 3, 5, 6]], [0, 0, 0, 0, 3, 3], 0)
  _check(splits["test"], images[[4]], [0], 6)


def test_offline_error_is_fast_and_names_the_file(tmp_path):
  for name, file in (("cifar10", "cifar-10-python.tar.gz"),
                     ("tiny_imagenet", "tiny-imagenet-200.zip"),
                     ("celeba", "identity_CelebA.txt")):
    start = time.perf_counter()
    with pytest.raises(UserError, match=file):
      load_dataset(name, str(tmp_path / "empty"))
    assert time.perf_counter() - start < 5.0


def test_stock_tfds_tfrecord_is_read_when_tensorflow_is_installed(tmp_path, monkeypatch):
  """A dataset stock tfds prepared (tfrecord) is read as is, test after
  train ids; needs TensorFlow, which the test extra does not install."""
  pytest.importorskip("tensorflow")
  import dataclasses

  import tensorflow_datasets as tfds

  from jaxunlearn import data as data_lib

  images = _images(12, 28, 28, 1)

  class StockMnistFixture(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("3.0.1")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(num_classes=10)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(range(8)),
              "test": self._generate_examples(range(8, 12))}

    def _generate_examples(self, rows):
      for i in rows:
        yield i, {"image": images[i], "label": i % 10}

  data_dir = str(tmp_path)
  StockMnistFixture(data_dir=data_dir).download_and_prepare()  # tfrecord
  stock = dataclasses.replace(data_lib.DATASETS.get("mnist"),
                              tfds_name="stock_mnist_fixture")
  monkeypatch.setitem(data_lib.DATASETS._items, "mnist", stock)
  assert data_lib.stock_tfds_dir(stock, data_dir)
  _, splits = load_dataset("mnist", data_dir)  # no archive: the stock copy
  for name, rows, offset in (("train", range(8), 0), ("test", range(8, 12), 10_000_000)):
    split = splits[name]
    np.testing.assert_array_equal(split.ids, offset + np.arange(len(rows)))
    # tfds reads tfrecords in its own (deterministic) order: match by label
    order = np.argsort(split.labels, kind="stable")
    expected = sorted(rows, key=lambda i: i % 10)  # labels are distinct per split
    np.testing.assert_array_equal(split.labels[order], [i % 10 for i in expected])
    np.testing.assert_array_equal(split.images[order], images[expected])


def test_fashion_mnist_is_found_where_the_debian_package_puts_it(tmp_path, monkeypatch):
  """With no manual dir, a system folder holding the four idx files (as
  dataset-fashion-mnist installs them) is used; without one, the offline
  error names the install command."""
  import dataclasses
  from jaxunlearn import data as data_lib
  system = tmp_path / "usr-share"
  system.mkdir()
  tr, te = _images(5, 28, 28, 1), _images(3, 28, 28, 1)
  ltr, lte = np.arange(5, dtype=np.uint8), np.arange(3, dtype=np.uint8)
  for fname, arr in zip(("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
                        (tr[..., 0], ltr, te[..., 0], lte)):
    _idx(system / fname, arr)
  spec = data_lib.DATASETS.get("fashion_mnist")
  assert spec.system_dirs == ("/usr/share/datasets/fashion-mnist",)
  monkeypatch.setitem(data_lib.DATASETS._items, "fashion_mnist", dataclasses.replace(
      spec, system_dirs=(str(tmp_path / "absent"), str(system))))
  monkeypatch.setattr(data_lib, "_reachable", lambda url: False)
  _, splits = load_dataset("fashion_mnist", str(tmp_path / "data"))
  _check(splits["train"], tr, ltr, 0)
  _check(splits["test"], te, lte, 5)
  monkeypatch.setitem(data_lib.DATASETS._items, "fashion_mnist", dataclasses.replace(
      spec, system_dirs=(str(tmp_path / "absent"),)))
  with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
    load_dataset("fashion_mnist", str(tmp_path / "data2"))


def test_the_library_registers_no_tfds_name(tmp_path):
  """With every builder of the library imported, tfds's names are tfds's:
  ``tfds.builder("cifar10")`` is its stock builder, not ours."""
  import tensorflow_datasets as tfds

  from jaxunlearn.data import builders, digits, voc
  ours = [c for m in (builders, digits, voc) for c in vars(m).values()
          if isinstance(c, type) and issubclass(c, tfds.core.DatasetBuilder)
          and c.__module__ == m.__name__]
  assert {"cifar10", "mnist", "digits", "voc2012_segmentation"} <= {c.name for c in ours}
  for cls in ours:
    try:
      assert tfds.builder_cls(cls.name) is not cls
    except tfds.core.registered.DatasetNotFoundError:
      pass
  stock = tfds.builder("cifar10", data_dir=str(tmp_path))
  assert type(stock).__module__.startswith("tensorflow_datasets.")
