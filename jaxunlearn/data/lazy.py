"""Splits larger than memory: images decoded from disk only when a batch asks.

A ``Split`` normally holds its images as one uint8 array. For data that does
not fit (Tiny-ImageNet at 128 px, VGGFace2, CelebA), ``read_split_lazy``
returns a ``Split`` whose ``images`` is a ``LazyImages``: the labels and ids
are in memory (a few bytes per example), the images stay PNG-encoded in the
prepared array_record files and are read and decoded (a thread pool; PIL
releases the GIL) per batch. Everything that consumes a ``Split`` — the
epoch loop, the forget/retain partition, evaluation, every method — works
unchanged, because ``LazyImages`` answers ``shape``/``len``/indexing like
the array it stands for, and ``Split.take`` and ``concat`` keep it lazy.

Only the rows this process feeds to its devices are decoded
(``gather(..., rows=)``, used by ``batches.make_batch`` when
``jax.process_count() > 1``).
"""
from __future__ import annotations

import concurrent.futures as futures
import io
import os
from typing import Optional, Sequence

import numpy as np

_POOL: Optional[futures.ThreadPoolExecutor] = None


def _pool() -> futures.ThreadPoolExecutor:
  global _POOL  # one decode pool per process, created on first use
  if _POOL is None:
    _POOL = futures.ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2)),
                                       thread_name_prefix="jaxunlearn-decode")
  return _POOL


def decode_png(data: bytes) -> np.ndarray:
  """PNG bytes as uint8 [H, W, C] (C = 1 for grey images)."""
  from PIL import Image
  with Image.open(io.BytesIO(data)) as pil:
    image = np.asarray(pil)
  return image[..., None] if image.ndim == 2 else image


def _decode(value) -> np.ndarray:
  if isinstance(value, (bytes, np.bytes_)):
    return decode_png(bytes(value))
  return np.asarray(value, np.uint8)


class LazyImages:
  """uint8 images ``[N, H, W, C]`` of ``source`` rows ``positions``.

  ``source``: random access to ``{"image": PNG bytes, ...}`` records (a tfds
  ``ArrayRecordDataSource`` opened with ``SkipDecoding``; see ``open_split``).
  Indexing with an int, slice or index array returns decoded NumPy images;
  ``subset``/``concat`` return lazy views; ``np.asarray`` decodes everything.
  """

  dtype = np.dtype(np.uint8)

  def __init__(self, source, positions: np.ndarray,
               image_shape: Sequence[int]):
    self.source = source
    self.positions = np.asarray(positions, np.int64)
    self.image_shape = tuple(int(d) for d in image_shape)

  @property
  def shape(self) -> tuple[int, ...]:
    return (len(self.positions),) + self.image_shape

  @property
  def ndim(self) -> int:
    return 1 + len(self.image_shape)

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape))

  def __len__(self) -> int:
    return len(self.positions)

  def subset(self, index) -> "LazyImages":
    return LazyImages(self.source, self.positions[np.asarray(index, np.int64)],
                      self.image_shape)

  def concat(self, other: "LazyImages") -> "LazyImages":
    if other.source is not self.source or other.image_shape != self.image_shape:
      raise ValueError("only views of the same source concatenate lazily")
    return LazyImages(self.source, np.concatenate([self.positions, other.positions]),
                      self.image_shape)

  def _read(self, positions: np.ndarray) -> list[np.ndarray]:
    if len(positions) == 0:
      return []
    records = self.source.__getitems__([int(p) for p in positions])
    images = list(_pool().map(lambda r: _decode(r["image"]), records))
    for image in images[:1]:
      if image.shape != self.image_shape:
        raise ValueError(f"a stored image has shape {image.shape}, the split "
                         f"declares {self.image_shape}; re-prepare the dataset")
    return images

  def gather(self, index, rows: Optional[slice] = None) -> np.ndarray:
    """Images at ``index``; with ``rows`` only those rows are read and
    decoded, the others are zeros (rows another process feeds)."""
    index = np.asarray(index, np.int64).reshape(-1)
    out = np.zeros((len(index),) + self.image_shape, np.uint8)
    wanted = np.arange(len(index))[rows if rows is not None else slice(None)]
    if len(wanted):
      out[wanted] = np.stack(self._read(self.positions[index[wanted]]))
    return out

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return self.gather([index])[0]
    if isinstance(index, slice):
      index = np.arange(len(self))[index]
    return self.gather(index)

  def __array__(self, dtype=None, copy=None):
    images = self.gather(np.arange(len(self)))
    return images if dtype is None else images.astype(dtype)

  def __repr__(self) -> str:
    return f"LazyImages(shape={self.shape}, dtype=uint8)"


def is_lazy(images) -> bool:
  return isinstance(images, LazyImages)


def split_index(builder, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(labels, ids) of every record of a prepared split, in storage order.

  One pass over the records the first time (images not decoded), cached as
  ``<builder.data_dir>/jaxunlearn-index-<split>.npz`` (written atomically).
  """
  path = os.path.join(builder.data_dir, f"jaxunlearn-index-{split}.npz")
  if os.path.exists(path):
    with np.load(path) as cached:
      return cached["labels"], cached["ids"]
  source = open_split(builder, split)
  labels = np.empty(len(source), np.int32)
  ids = np.empty(len(source), np.int64)
  chunk = 4096
  for start in range(0, len(source), chunk):
    records = source.__getitems__(list(range(start, min(start + chunk, len(source)))))
    labels[start:start + len(records)] = [r["label"] for r in records]
    ids[start:start + len(records)] = [r["id"] for r in records]
  tmp = path + ".tmp.npz"
  np.savez(tmp, labels=labels, ids=ids)
  os.replace(tmp, path)
  return labels, ids


def open_split(builder, split: str):
  """Random access to a prepared split that keeps images as PNG bytes."""
  import tensorflow_datasets as tfds
  return builder.as_data_source(
      decoders={"image": tfds.decode.SkipDecoding()})[split]


def read_split_lazy(builder, split: str):
  """A ``Split`` of a prepared split with lazy images, ordered by id like
  ``read_split`` (so both give the same examples in the same order)."""
  from jaxunlearn.batches import Split
  labels, ids = split_index(builder, split)
  order = np.argsort(ids, kind="stable")
  images = LazyImages(open_split(builder, split), order,
                      builder.info.features["image"].shape)
  return Split(images, labels[order], ids[order])
