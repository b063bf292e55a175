"""Reading downloaded archives without trusting them.

Dataset archives come from the web, often from mirrors, so nothing in them
may run code or exhaust memory, and a damaged one must fail in one line that
names the file:

- ``load_pickle``: CIFAR's python batches through an unpickler that admits
  only what those files hold (dicts, lists, bytes/str, numbers and NumPy
  array reconstruction of non-object dtypes); any other global is refused.
- ``verify``: the official archives are compared with their published
  digests (``PUBLISHED``) before preparation; a file the user trusts although
  it differs is accepted by naming its SHA-256 (``config.accept_archives``).
- ``read_bounded`` / ``check_member_size`` / ``decode_image``: a member's
  declared size and an image's dimensions are checked before anything is
  decompressed or decoded (PIL's decompression-bomb limit, always on).
- ``reading``: the errors a malformed archive raises (tar, zip, gzip, zlib,
  truncation, bad shapes) become one ``UserError`` naming the file.
- ``restore_on_failure``: a failed preparation leaves the data dir as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import warnings
import zipfile
import zlib
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from jaxunlearn.errors import UserError

ACCEPT_SWITCH = "--config.accept_archives"
MAX_PICKLE_BYTES = 512 << 20   # CIFAR-100's train batch is 155 MB
MAX_MEMBER_BYTES = 64 << 20    # one image or metadata file of an archive
# PIL's default Image.MAX_IMAGE_PIXELS, enforced even if a caller disabled it.
MAX_IMAGE_PIXELS = 89_478_485
_CHUNK = 1 << 20  # bytes read (or inflated) at a time
# The formats dataset images come in. PIL would also open EPS, which it
# renders by running Ghostscript on the file: never for data.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")


def one_line(error: BaseException) -> str:
  """An exception as a single line (its type when it has no message)."""
  text = " ".join(str(error).split())
  return text or type(error).__name__


# ------------------------------------------------------------ malformed data

# What reading a damaged archive raises: tar/zip/gzip/zlib errors, truncation
# (EOFError), I/O errors, and the value/shape errors of parsing its content.
ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile,
                  zlib.error, EOFError, OSError, ValueError, KeyError,
                  IndexError, StopIteration, struct.error, pickle.UnpicklingError)


@contextlib.contextmanager
def reading(where: str) -> Iterator[None]:
  """Turns a malformed archive's exception into one line naming ``where``."""
  try:
    yield
  except UserError:
    raise
  except ARCHIVE_ERRORS as error:
    raise UserError(f"cannot read {where}: {one_line(error)}; the file is "
                    f"damaged or not in the expected format (download it "
                    f"again)") from None


def check_member_size(size: int, where: str, limit: Optional[int] = None) -> None:
  """Refuses a member whose declared (uncompressed) size exceeds ``limit``."""
  limit = limit or MAX_MEMBER_BYTES
  if size > limit:
    raise UserError(f"{where} declares {size} bytes, more than the {limit} "
                    f"bytes any file of this dataset has: refusing to read it")


def read_bounded(path: str, limit: Optional[int] = None) -> bytes:
  """A file's bytes, after checking its size against ``limit``."""
  with reading(path):
    check_member_size(os.path.getsize(path), path, limit)
    with open(path, "rb") as f:
      return f.read()


def read_zip_member(zf: zipfile.ZipFile, name: str, where: str,
                    limit: Optional[int] = None) -> bytes:
  """A zip member's bytes; the declared size bounds what is decompressed.

  Read in chunks: ``ZipFile.read`` inflates a whole member in one call and
  only then cuts it to the declared size, so a lying header would not bound
  memory; chunked reads inflate at most a chunk at a time.
  """
  with reading(where):
    check_member_size(zf.getinfo(name).file_size, where, limit)
    chunks = []
    with zf.open(name) as f:
      while chunk := f.read(_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def read_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str,
                    limit: Optional[int] = None) -> bytes:
  with reading(where):
    check_member_size(member.size, where, limit)
    return tar.extractfile(member).read()


def open_image(data: bytes, where: str):
  """A PIL image whose format and dimensions were checked before decoding."""
  from PIL import Image
  bomb = (f"{where} declares more pixels than PIL's decompression-bomb limit "
          f"of {MAX_IMAGE_PIXELS}: refusing to decode it")
  with reading(where), warnings.catch_warnings():
    # Our own check below replaces PIL's warning with an error.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
      pil = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # the header only
    except Image.DecompressionBombError:
      raise UserError(bomb) from None
    except (Image.UnidentifiedImageError, SyntaxError) as error:
      raise UserError(f"{where} is not a readable image ({one_line(error)})") from None
    width, height = pil.size
    if width * height > MAX_IMAGE_PIXELS:
      pil.close()
      raise UserError(bomb)
    try:
      pil.load()
    except SyntaxError as error:  # what PIL raises for some broken files
      raise UserError(f"{where} is not a readable image ({one_line(error)})") from None
    return pil


def decode_image(data: bytes, where: str, mode: str = "RGB") -> np.ndarray:
  """Encoded image bytes -> uint8 array (``mode`` None keeps palette indices)."""
  with reading(where), open_image(data, where) as pil:
    return np.asarray(pil.convert(mode) if mode else pil, np.uint8)


# -------------------------------------------------- a restricted unpickler

class _Refused(pickle.UnpicklingError):
  """An allowed global called with what a dataset batch never holds."""

def _reconstruct(subtype, shape, dtype_code):
  from numpy._core.multiarray import _reconstruct as reconstruct
  if subtype is not np.ndarray:
    raise _Refused(f"array reconstruction of {subtype!r}")
  return reconstruct(subtype, shape, dtype_code)


def _dtype(*args):
  dtype = np.dtype(*args)
  if dtype.hasobject:  # an object array would unpickle arbitrary elements
    raise _Refused("an object-dtype array (it could hold any object)")
  return dtype


def _scalar(dtype, *args):
  from numpy._core.multiarray import scalar
  if not isinstance(dtype, np.dtype) or dtype.hasobject:
    raise _Refused(f"a numpy scalar of dtype {dtype}")
  return scalar(dtype, *args)


def _frombuffer(buffer, dtype, shape, order):
  if not isinstance(dtype, np.dtype) or dtype.hasobject:
    raise _Refused(f"an array of dtype {dtype}")
  return np.frombuffer(buffer, dtype).reshape(shape, order=order)


def _latin1(text, encoding="utf-8"):
  # Python 3's protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
  if encoding not in ("latin1", "latin-1"):
    raise _Refused(f"_codecs.encode with {encoding!r}")
  return text.encode("latin1")


# (module, name) -> what it unpickles to. numpy's pre-2.0 paths (numpy.core)
# are what the published CIFAR files name; numpy._core is today's spelling.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}
for _core in ("numpy.core", "numpy._core"):
  _ALLOWED_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
  _ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
  _ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _DataUnpickler(pickle.Unpickler):
  """Resolves only ``_ALLOWED_GLOBALS``; every other global is refused."""

  def __init__(self, file, where: str):
    super().__init__(file, encoding="bytes")
    self.where = where

  def find_class(self, module: str, name: str):
    if (module, name) in _ALLOWED_GLOBALS:
      return _ALLOWED_GLOBALS[(module, name)]
    raise UserError(
        f"{self.where} asks to load {module}.{name}, which a dataset batch never "
        "holds: refusing to unpickle it (the archive is not the official one)")

  def persistent_load(self, pid):
    raise UserError(f"{self.where} holds a persistent reference, which a "
                    "dataset batch never holds: refusing to unpickle it")


def load_pickle(file, where: str):
  """Unpickles a CIFAR-style batch from ``file`` without running its code.

  Python 2 pickles (the published files) are read with ``encoding="bytes"``,
  as the CIFAR page's ``unpickle`` helper does.
  """
  with reading(where):
    try:
      return _DataUnpickler(file, where).load()
    except _Refused as error:
      raise UserError(f"{where} asks for {error}, which a dataset batch never "
                      "holds: refusing to unpickle it (the archive is not the "
                      "official one)") from None
    except (TypeError, AttributeError, MemoryError) as error:
      raise UserError(f"cannot read {where}: {one_line(error)}; it is not a "
                      "dataset batch") from None


# ------------------------------------------------------- published digests

@dataclasses.dataclass(frozen=True)
class Digest:
  """A published digest of a file (``of="file"``) or of its gunzipped bytes."""
  algorithm: str  # "sha256" | "md5"
  hexdigest: str
  of: str = "file"  # "file" | "gunzipped"


def _idx(gz_sha256: str, gunzipped_sha256: str) -> tuple[Digest, Digest]:
  return (Digest("sha256", gz_sha256), Digest("sha256", gunzipped_sha256, "gunzipped"))


# dataset -> {file in the manual dir: digests, any of which verifies it}.
# - CIFAR python archives: tfds pins only the binary archives; these are the
#   SHA-256 that keras.datasets.cifar10/cifar100 pin for the python ones
#   (their MD5s match the CIFAR page's c58f3010..., eb9058c3...).
# - MNIST / Fashion-MNIST: the .gz digests are tfds' (url_checksums/*.txt).
#   Mirrors recompress (Debian's dataset-fashion-mnist does), so the SHA-256
#   of the decompressed idx bytes verifies too. Fashion-MNIST's were computed
#   from the Debian package's files, which only recompresses the official
#   ones; MNIST's are the values independent projects pin (no local copy to
#   check): a wrong value could only refuse a genuine file, never admit
#   another, since the file must still hash to it.
# - SVHN and VOC 2012: tfds' url_checksums. Tiny-ImageNet: nobody publishes
#   a SHA-256; the MD5 is the one torchvision-based loaders check.
PUBLISHED: dict[str, dict[str, tuple[Digest, ...]]] = {
    "cifar10": {"cifar-10-python.tar.gz": (Digest(
        "sha256", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),)},
    "cifar100": {"cifar-100-python.tar.gz": (Digest(
        "sha256", "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),)},
    "mnist": {
        "train-images-idx3-ubyte.gz": _idx(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        "train-labels-idx1-ubyte.gz": _idx(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "t10k-images-idx3-ubyte.gz": _idx(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        "t10k-labels-idx1-ubyte.gz": _idx(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": _idx(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte.gz": _idx(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte.gz": _idx(
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte.gz": _idx(
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    "svhn": {
        "train_32x32.mat": (Digest(
            "sha256", "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),),
        "test_32x32.mat": (Digest(
            "sha256", "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),),
    },
    "tiny_imagenet": {"tiny-imagenet-200.zip": (Digest(
        "md5", "90528d7ca1a48142e341f4ef8d21d0de"),)},
    "voc2012": {"VOCtrainval_11-May-2012.tar": (Digest(
        "sha256", "e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb"),)},
}
# A gunzipped digest is only worth computing up to the largest official file.
_MAX_GUNZIPPED = 64 << 20


def _file_digests(path: str, algorithms=("sha256",)) -> dict[str, str]:
  hashes = {name: hashlib.new(name) for name in algorithms}
  with reading(path), open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      for h in hashes.values():
        h.update(chunk)
  return {name: h.hexdigest() for name, h in hashes.items()}


def sha256_file(path: str) -> str:
  """What ``sha256sum`` prints: the digest ``accept_archives`` takes."""
  return _file_digests(path)["sha256"]


def _gunzipped_sha256(path: str) -> Optional[str]:
  """SHA-256 of the decompressed bytes; None if not gzip or too large."""
  digest, total = hashlib.sha256(), 0
  try:
    with gzip.open(path, "rb") as f:
      while chunk := f.read(_CHUNK):
        total += len(chunk)
        if total > _MAX_GUNZIPPED:
          return None
        digest.update(chunk)
  except (OSError, EOFError, zlib.error):
    return None
  return digest.hexdigest()


def accepted_digests(accept: "str | Sequence[str] | None") -> frozenset[str]:
  """``"a, b"`` or ``["a", "b"]`` -> the set of lower-case hex digests."""
  if not accept:
    return frozenset()
  items = accept.split(",") if isinstance(accept, str) else accept
  return frozenset(item.strip().lower() for item in items if item.strip())


def verify_file(path: str, digests: Sequence[Digest], accept: frozenset[str]) -> None:
  """Passes if ``path`` matches a published digest or its SHA-256 is accepted."""
  actual = _file_digests(path, {"sha256"} | {d.algorithm for d in digests})
  if actual["sha256"] in accept:
    return
  for digest in digests:
    if digest.of == "file" and actual[digest.algorithm] == digest.hexdigest:
      return
  gunzipped = [d for d in digests if d.of == "gunzipped"]
  if gunzipped and _gunzipped_sha256(path) == gunzipped[0].hexdigest:
    return
  expected = digests[0]
  name = "SHA-256" if expected.algorithm == "sha256" else expected.algorithm.upper()
  raise UserError(
      f"{path} has {name} {actual[expected.algorithm]} but the official file's "
      f"is {expected.hexdigest}: it is not the published archive; to prepare "
      f"it anyway, if you trust it, pass {ACCEPT_SWITCH}={actual['sha256']}")


def verify(dataset: str, manual_dir: str, accept=None) -> None:
  """Checks the dataset's known archives present in ``manual_dir``."""
  accept = accepted_digests(accept)
  for name, digests in PUBLISHED.get(dataset, {}).items():
    path = os.path.join(manual_dir, name)
    if os.path.isfile(path):
      verify_file(path, digests, accept)


# ------------------------------------------------------------- clean failure

def _created_roots(paths: Iterable[str], stop: str) -> list[str]:
  """The topmost not-yet-existing directory on the way to each path."""
  roots = []
  for path in paths:
    path, top = os.path.abspath(path), None
    while path != stop and not os.path.exists(path):
      top, path = path, os.path.dirname(path)
    if top is not None and top.startswith(stop + os.sep):
      roots.append(top)
  return roots


@contextlib.contextmanager
def restore_on_failure(data_dir: str, targets: Sequence[str]) -> Iterator[None]:
  """If the block fails, removes what it created at ``targets`` / ``data_dir``.

  ``targets`` are the directories a preparation writes (the builder's
  versioned dir, tfds' downloads dir). Only directories that did not exist
  before are removed, so a failure leaves the data dir as it was.
  """
  data_dir = os.path.abspath(data_dir)
  new_data_dir = not os.path.exists(data_dir)
  roots = [] if new_data_dir else _created_roots(targets, data_dir)
  try:
    yield
  except BaseException:
    if new_data_dir:
      shutil.rmtree(data_dir, ignore_errors=True)
    for root in roots:
      shutil.rmtree(root, ignore_errors=True)
    raise
