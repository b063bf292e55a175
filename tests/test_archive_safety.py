"""A dataset archive never runs code: malicious pickles are refused, official
archives are verified against published digests, malformed archives fail in
one line and leave the data dir as it was (jaxunlearn/data/archives.py)."""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxunlearn.data import archives, load_dataset
from jaxunlearn.errors import UserError

RNG = np.random.default_rng(0)
CIFAR = {"cifar10": ("cifar-10-python.tar.gz", "cifar-10-batches-py/data_batch_1",
                     b"labels"),
         "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python/train",
                      b"fine_labels")}


class Payload:
  """Creates ``marker`` when unpickled: what an attacker's batch would do."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _tree(path):
  """Every path under ``path`` (and whether it exists): the data dir's state."""
  if not os.path.exists(path):
    return None
  return sorted(os.path.relpath(os.path.join(d, n), path)
                for d, dirs, files in os.walk(path) for n in dirs + files)


def _one_line(error) -> str:
  message = str(error.value)
  assert "\n" not in message and message
  return message


# ------------------------------------------------------------ small fixtures

def _cifar_batch(n, key, num_classes=10):
  images = RNG.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  labels = [int(x) for x in RNG.integers(0, num_classes, n)]
  flat = images.transpose(0, 3, 1, 2).reshape(n, -1)
  return {b"batch_label": b"fixture", b"data": flat, key: labels}


def _tar_gz(members: dict[str, bytes], mtime=0) -> bytes:
  raw = io.BytesIO()
  with tarfile.open(fileobj=raw, mode="w") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size, info.mtime = len(data), 0
      tar.addfile(info, io.BytesIO(data))
  return gzip.compress(raw.getvalue(), mtime=mtime)


def _cifar_archive(dataset, train_batch=None, protocol=2) -> bytes:
  _, member, key = CIFAR[dataset]
  root = member.split("/")[0]
  test_name = "test_batch" if dataset == "cifar10" else "test"
  train = train_batch if train_batch is not None else _cifar_batch(4, key)
  return _tar_gz({member: pickle.dumps(train, protocol=protocol),
                  f"{root}/{test_name}": pickle.dumps(_cifar_batch(2, key), protocol=protocol)})


def _idx_bytes(array) -> bytes:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape)
  return header + array.tobytes()


def _idx_files(change_pixel=False) -> dict[str, bytes]:
  rng = np.random.default_rng(1)
  images = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (3, 2)]
  labels = [rng.integers(0, 10, n).astype(np.uint8) for n in (3, 2)]
  if change_pixel:
    images[0][0, 0, 0] ^= 1
  arrays = (images[0], labels[0], images[1], labels[1])
  names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
  return {n: gzip.compress(_idx_bytes(a), mtime=0) for n, a in zip(names, arrays)}


def _mat(n) -> bytes:
  from scipy.io import savemat
  buf = io.BytesIO()
  savemat(buf, {"X": RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                "y": RNG.integers(1, 11, (n, 1)).astype(np.uint8)})
  return buf.getvalue()


def _png(image) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "PNG")
  return buf.getvalue()


def _tiny_imagenet(images=None) -> bytes:
  images = images or {}
  buf = io.BytesIO()
  png = lambda: _png(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
  with zipfile.ZipFile(buf, "w") as zf:
    zf.writestr("tiny-imagenet-200/wnids.txt", "n01\nn02")
    for i, w in enumerate(("n01", "n02")):
      name = f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG"
      zf.writestr(name, images.get(name, png()))
    zf.writestr("tiny-imagenet-200/val/val_annotations.txt", "val_0.JPEG\tn02\t0\n")
    zf.writestr("tiny-imagenet-200/val/images/val_0.JPEG", png())
  return buf.getvalue()


def _voc_tar() -> bytes:
  raw = io.BytesIO()
  files = {"ImageSets/Segmentation/train.txt": b"a\n",
           "ImageSets/Segmentation/val.txt": b"b\n"}
  for name in "ab":
    files[f"JPEGImages/{name}.jpg"] = _png(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    mask = Image.fromarray(np.zeros((8, 8), np.uint8), mode="P")
    buf = io.BytesIO()
    mask.save(buf, "PNG")
    files[f"SegmentationClass/{name}.png"] = buf.getvalue()
  with tarfile.open(fileobj=raw, mode="w") as tar:
    for name, data in files.items():
      info = tarfile.TarInfo(f"VOCdevkit/VOC2012/{name}")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return raw.getvalue()


def _load(dataset, data_dir, manual, accept=()):
  if dataset == "voc2012":
    from jaxunlearn.data import voc
    return voc.load(str(data_dir), str(manual), image_size=8, accept_archives=accept)
  return load_dataset(dataset, str(data_dir), str(manual), accept_archives=accept)


# ------------------------------------------- no code execution from a pickle

def _malicious_batches(marker, key):
  good = _cifar_batch(2, key)
  yield "a value", {**good, b"batch_label": Payload(marker)}
  yield "the whole batch", Payload(marker)
  yield "an object array", {**good, b"data": np.array([Payload(marker)], object)}


@pytest.mark.parametrize("dataset", sorted(CIFAR))
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_malicious_batch_is_refused_and_its_payload_never_runs(tmp_path, dataset,
                                                                 protocol):
  archive_name, member, key = CIFAR[dataset]
  marker = tmp_path / "pwned"
  for where, batch in _malicious_batches(marker, key):
    manual = tmp_path / "manual"
    manual.mkdir(exist_ok=True)
    data = _cifar_archive(dataset, batch, protocol)
    (manual / archive_name).write_bytes(data)
    data_dir = tmp_path / "data"
    # Accepted knowingly, so the reader itself must refuse the payload.
    with pytest.raises(UserError) as error:
      _load(dataset, data_dir, manual, accept=_sha256(data))
    message = _one_line(error)
    assert archive_name in message and member in message, (where, message)
    assert not marker.exists(), f"payload in {where} ran"
    assert _tree(data_dir) is None


def test_the_cli_refuses_the_issue_archive_in_one_line(tmp_path, capsys):
  """The reported attack: ``jaxunlearn run --config.dataset=cifar10
  --config.manual_dir=...`` with a ``data_batch_1`` carrying a payload."""
  from jaxunlearn import cli
  marker = tmp_path / "pwned"
  manual = tmp_path / "manual"
  manual.mkdir()
  batch = {**_cifar_batch(2, b"labels"), b"batch_label": Payload(marker)}
  (manual / "cifar-10-python.tar.gz").write_bytes(_cifar_archive("cifar10", batch))
  code = cli.main(["run", "--workdir", str(tmp_path / "w"),
                   "--config.dataset=cifar10", f"--config.manual_dir={manual}",
                   f"--config.data_dir={tmp_path / 'data'}", "--config.progress=False"])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert "cifar-10-python.tar.gz" in err and not marker.exists()
  # Accepted by its digest (the switch reaches run's data loading), the
  # archive is read, and the unpickler refuses the payload.
  code = cli.main(["run", "--workdir", str(tmp_path / "w"),
                   "--config.dataset=cifar10", f"--config.manual_dir={manual}",
                   f"--config.data_dir={tmp_path / 'data'}", "--config.progress=False",
                   "--config.accept_archives="
                   + _sha256((manual / "cifar-10-python.tar.gz").read_bytes())])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert "data_batch_1" in err and "checksum" not in err.lower()
  assert not marker.exists()


def _python2_style(pickled: bytes) -> bytes:
  # The published batches name numpy's pre-2.0 module (numpy.core); protocol
  # 2's GLOBAL opcode spells it as text, so the name can be rewritten.
  return pickled.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_the_restricted_unpickler_reads_what_plain_pickle_reads(protocol):
  batch = _cifar_batch(3, b"labels")
  batch[b"coarse"] = np.arange(3, dtype=np.int64)
  batch[b"scalar"] = np.int64(7)
  pickled = pickle.dumps(batch, protocol=protocol)
  variants = [pickled] + ([_python2_style(pickled)] if protocol in (0, 2) else [])
  for data in variants:
    ours = archives.load_pickle(io.BytesIO(data), "fixture")
    theirs = pickle.loads(data, encoding="bytes")
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
      np.testing.assert_array_equal(np.asarray(ours[k]), np.asarray(theirs[k]))
      assert np.asarray(ours[k]).dtype == np.asarray(theirs[k]).dtype


# --------------------------------------------------------- published digests

def _fixture_files(dataset) -> dict[str, bytes]:
  if dataset in CIFAR:
    return {CIFAR[dataset][0]: _cifar_archive(dataset)}
  if dataset in ("mnist", "fashion_mnist"):
    return _idx_files()
  if dataset == "svhn":
    return {"train_32x32.mat": _mat(3), "test_32x32.mat": _mat(2)}
  if dataset == "tiny_imagenet":
    return {"tiny-imagenet-200.zip": _tiny_imagenet()}
  return {"VOCtrainval_11-May-2012.tar": _voc_tar()}


def _one_byte_changed(name: str, data: bytes) -> bytes:
  """The file with one byte changed, still a well-formed archive."""
  data = bytearray(data)
  if name.endswith(".gz"):
    data[4] ^= 1          # gzip header: modification time
  elif name.endswith(".zip"):
    data[10] ^= 1         # first local header: modification time
  elif name.endswith(".mat"):
    data[0] ^= 1          # the descriptive text of the header
  else:
    data[-1] ^= 1         # a tar's zero padding after its end marker
  return bytes(data)


def _publish(monkeypatch, dataset, files):
  """The fixture's own digests as the 'published' ones, as the real table has."""
  table = {}
  for name, data in files.items():
    if dataset == "tiny_imagenet":
      table[name] = (archives.Digest("md5", hashlib.md5(data).hexdigest()),)
    elif name.endswith("ubyte.gz"):
      table[name] = (archives.Digest("sha256", _sha256(data)),
                     archives.Digest("sha256", _sha256(gzip.decompress(data)),
                                     "gunzipped"))
    else:
      table[name] = (archives.Digest("sha256", _sha256(data)),)
  monkeypatch.setitem(archives.PUBLISHED, dataset, table)
  return table


VERIFIED = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn",
            "tiny_imagenet", "voc2012")


@pytest.mark.parametrize("dataset", VERIFIED)
def test_a_one_byte_change_fails_the_checksum_and_the_switch_accepts_it(
    tmp_path, monkeypatch, dataset):
  files = _fixture_files(dataset)
  _publish(monkeypatch, dataset, files)
  # The gz header byte leaves an idx file's data intact; change a pixel there.
  if dataset in ("mnist", "fashion_mnist"):
    changed, name = _idx_files(change_pixel=True), "train-images-idx3-ubyte.gz"
  else:
    changed = {n: _one_byte_changed(n, d) for n, d in files.items()}
    name = sorted(changed)[0]
  manual = tmp_path / "manual"
  manual.mkdir()
  for n, d in files.items():
    (manual / n).write_bytes(changed[n] if n == name else d)
  with pytest.raises(UserError) as error:
    _load(dataset, tmp_path / "data", manual)
  message = _one_line(error)
  new = changed[name]
  if dataset == "tiny_imagenet":
    actual, expected = hashlib.md5(new).hexdigest(), hashlib.md5(files[name]).hexdigest()
  else:
    actual, expected = _sha256(new), _sha256(files[name])
  assert str(manual / name) in message
  assert actual in message and expected in message
  assert f"--config.accept_archives={_sha256(new)}" in message
  assert _tree(tmp_path / "data") is None
  _load(dataset, tmp_path / "data", manual, accept=f"0badc0de, {_sha256(new)}")


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_a_recompressed_idx_file_with_the_published_data_verifies(
    tmp_path, monkeypatch, dataset):
  files = _idx_files()
  _publish(monkeypatch, dataset, files)
  for name, data in files.items():
    recompressed = gzip.compress(gzip.decompress(data), compresslevel=1, mtime=123)
    assert recompressed != data
    (tmp_path / name).write_bytes(recompressed)
  archives.verify(dataset, str(tmp_path))


def test_the_published_table_covers_the_known_archives():
  from jaxunlearn.data import DATASETS
  lengths = {"sha256": 64, "md5": 32}
  for dataset, files in archives.PUBLISHED.items():
    names = (DATASETS.get(dataset).manual_files if dataset != "voc2012"
             else ("VOCtrainval_11-May-2012.tar",))
    assert set(files) == set(names), dataset
    for digests in files.values():
      for d in digests:
        assert len(d.hexdigest) == lengths[d.algorithm]
        int(d.hexdigest, 16)


# ------------------------------------------------------ malformed archives

def _truncated(data: bytes) -> bytes:
  return data[:len(data) // 2]


def _bad_cifar_shape(dataset):
  key = CIFAR[dataset][2]
  batch = _cifar_batch(4, key, 10)
  batch[b"data"] = batch[b"data"][:, :3000]
  return {CIFAR[dataset][0]: _cifar_archive(dataset, batch)}


def _bad_idx_shape():
  files = _idx_files()
  files["train-labels-idx1-ubyte.gz"] = gzip.compress(
      _idx_bytes(np.zeros(5, np.uint8)))  # 5 labels for 3 images
  return files


def _bad_idx_declared_size():
  files = _idx_files()
  data = bytearray(gzip.decompress(files["t10k-images-idx3-ubyte.gz"]))
  data[4:8] = (10_000).to_bytes(4, "big")  # declares more images than it has
  files["t10k-images-idx3-ubyte.gz"] = gzip.compress(bytes(data))
  return files


def _bad_svhn_shape():
  from scipy.io import savemat
  buf = io.BytesIO()
  savemat(buf, {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
  return {"train_32x32.mat": buf.getvalue(), "test_32x32.mat": _mat(2)}


MALFORMED = {
    "cifar10 truncated": ("cifar10", lambda: {
        "cifar-10-python.tar.gz": _truncated(_cifar_archive("cifar10"))}),
    "cifar100 truncated": ("cifar100", lambda: {
        "cifar-100-python.tar.gz": _truncated(_cifar_archive("cifar100"))}),
    "cifar10 wrong shape": ("cifar10", lambda: _bad_cifar_shape("cifar10")),
    "cifar100 wrong shape": ("cifar100", lambda: _bad_cifar_shape("cifar100")),
    "idx truncated": ("fashion_mnist", lambda: dict(_idx_files(), **{
        "train-images-idx3-ubyte.gz": _truncated(
            _idx_files()["train-images-idx3-ubyte.gz"])})),
    "idx wrong shape": ("mnist", _bad_idx_shape),
    "idx declared size": ("mnist", _bad_idx_declared_size),
    "svhn truncated": ("svhn", lambda: {"train_32x32.mat": _truncated(_mat(3)),
                                        "test_32x32.mat": _mat(2)}),
    "svhn wrong shape": ("svhn", _bad_svhn_shape),
    "tiny_imagenet truncated": ("tiny_imagenet", lambda: {
        "tiny-imagenet-200.zip": _truncated(_tiny_imagenet())}),
    "voc truncated": ("voc2012", lambda: {
        "VOCtrainval_11-May-2012.tar": _truncated(_voc_tar())}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_archive_fails_in_one_line_and_leaves_the_data_dir(
    tmp_path, monkeypatch, case):
  dataset, make = MALFORMED[case]
  files = make()
  manual = tmp_path / "manual"
  manual.mkdir()
  for name, data in files.items():
    (manual / name).write_bytes(data)
  data_dir = tmp_path / "data"
  (data_dir / "other").mkdir(parents=True)   # something already there
  (data_dir / "other" / "keep.txt").write_text("kept")
  before = _tree(data_dir)
  accept = ",".join(_sha256(d) for d in files.values())
  with pytest.raises(UserError) as error:
    _load(dataset, data_dir, manual, accept=accept)
  message = _one_line(error)
  assert any(str(manual / name) in message for name in files), message
  assert _tree(data_dir) == before


def test_a_broken_image_midway_leaves_a_new_data_dir_absent(tmp_path, monkeypatch):
  """Preparation fails after tfds has started writing: nothing is left."""
  monkeypatch.setitem(archives.PUBLISHED, "tiny_imagenet", {})
  bad = "tiny-imagenet-200/train/n02/images/n02_1.JPEG"
  (tmp_path / "tiny-imagenet-200.zip").write_bytes(_tiny_imagenet({bad: b"not an image"}))
  with pytest.raises(UserError) as error:
    load_dataset("tiny_imagenet", str(tmp_path / "data"), str(tmp_path))
  assert bad in _one_line(error)
  assert _tree(tmp_path / "data") is None


def _png_header(width: int, height: int) -> bytes:
  """A PNG that declares width x height pixels and holds almost none."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body)))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
          + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 20_000])  # over PIL's limit, over twice it
def test_an_image_bomb_is_refused_before_decoding(tmp_path, monkeypatch, side):
  monkeypatch.setitem(archives.PUBLISHED, "tiny_imagenet", {})
  bomb = "tiny-imagenet-200/train/n01/images/n01_0.JPEG"
  (tmp_path / "tiny-imagenet-200.zip").write_bytes(
      _tiny_imagenet({bomb: _png_header(side, side)}))
  with pytest.raises(UserError) as error:
    load_dataset("tiny_imagenet", str(tmp_path / "data"), str(tmp_path))
  message = _one_line(error)
  assert bomb in message and "decompression-bomb" in message


def test_a_member_larger_than_the_limit_is_not_decompressed(tmp_path, monkeypatch):
  monkeypatch.setitem(archives.PUBLISHED, "tiny_imagenet", {})
  monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 64)
  (tmp_path / "tiny-imagenet-200.zip").write_bytes(_tiny_imagenet())
  with pytest.raises(UserError, match="declares .* bytes"):
    load_dataset("tiny_imagenet", str(tmp_path / "data"), str(tmp_path))


def _zip_with_lying_size(payload: bytes, declared: int) -> bytes:
  """A zip whose headers declare ``declared`` bytes for a larger member."""
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
    zf.writestr("tiny-imagenet-200/wnids.txt", payload)
  data = bytearray(buf.getvalue())
  local = data.index(b"PK\x03\x04")
  central = data.index(b"PK\x01\x02")
  data[local + 22:local + 26] = struct.pack("<I", declared)
  data[central + 24:central + 28] = struct.pack("<I", declared)
  return bytes(data)


def test_a_zip_member_that_lies_about_its_size_inflates_in_bounded_memory(tmp_path):
  import tracemalloc
  path = tmp_path / "tiny-imagenet-200.zip"
  path.write_bytes(_zip_with_lying_size(b"\0" * (48 << 20), declared=100))
  with zipfile.ZipFile(path) as zf:
    tracemalloc.start()
    try:
      with pytest.raises(UserError) as error:
        archives.read_zip_member(zf, "tiny-imagenet-200/wnids.txt", str(path))
      peak = tracemalloc.get_traced_memory()[1]
    finally:
      tracemalloc.stop()
  assert str(path) in _one_line(error)  # the CRC of 100 bytes does not match
  assert peak < (8 << 20), peak         # ZipFile.read would inflate all 48 MiB


def test_only_image_formats_are_opened_never_postscript():
  # PIL renders EPS with Ghostscript (a PostScript interpreter): an "image"
  # in an archive must never reach it.
  eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
         b"newpath 0 0 moveto 8 8 lineto stroke\nshowpage\n%%EOF\n")
  with Image.open(io.BytesIO(eps)) as pil:
    assert pil.format == "EPS"  # what an unrestricted open would do
  with pytest.raises(UserError) as error:
    archives.decode_image(eps, "archive.zip:train/n01/x.JPEG")
  assert "archive.zip:train/n01/x.JPEG is not a readable image" in _one_line(error)
  png = _png(np.full((4, 4, 3), 7, np.uint8))
  np.testing.assert_array_equal(archives.decode_image(png, "ok"),
                                np.full((4, 4, 3), 7, np.uint8))


def test_a_cifar_archive_with_endless_members_is_refused(tmp_path):
  from jaxunlearn.data import formats
  members = {f"junk/{i}": b"" for i in range(formats.MAX_CIFAR_MEMBERS + 1)}
  path = tmp_path / "cifar-10-python.tar.gz"
  path.write_bytes(_tar_gz(members))
  with pytest.raises(UserError, match="more than 64 members"):
    formats.read_cifar_tarball(str(path))
