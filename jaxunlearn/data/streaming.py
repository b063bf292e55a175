"""Streaming input pipeline for data that does not fit in memory.

Reads a prepared array_record split by random access (``as_data_source``),
never holding more than ``prefetch`` batches of decoded images:

1. Per epoch, a seeded permutation of the whole split (``fold_in(seed,
   epoch)``, the same on every process), cut into global batches.
2. Process ``p`` of ``P`` reads rows ``[p*B/P, (p+1)*B/P)`` of each global
   batch (``jax.process_index()/process_count()``, overridable for tests), so
   the processes read disjoint shards that together cover the epoch once.
3. A thread pool decodes PNG bytes (PIL releases the GIL) and augments on the
   host: random crop after zero padding, horizontal flip, resize; each
   example's randomness comes from ``(seed, epoch, id)``, so it does not
   depend on the number of processes or threads.
4. Batches are padded to a static size with ``mask`` 0 on the padding (as in
   ``pipeline.py``), placed on the mesh with ``parallel.shard_batch`` and
   prefetched ``prefetch`` batches ahead.
"""
from __future__ import annotations

import concurrent.futures as futures
import io
from typing import Iterator, Optional

import numpy as np


def process_rows(batch_size: int, index: int, count: int) -> slice:
  """The rows of a global batch that process ``index`` of ``count`` reads."""
  if batch_size % count:
    raise ValueError(f"batch size {batch_size} is not divisible by {count} processes")
  rows = batch_size // count
  return slice(index * rows, (index + 1) * rows)


def epoch_permutation(seed: int, epoch: int, n: int, shuffle: bool = True) -> np.ndarray:
  if not shuffle:
    return np.arange(n)
  return np.random.default_rng([seed, epoch]).permutation(n)


def decode_png(data: bytes) -> np.ndarray:
  from PIL import Image
  with Image.open(io.BytesIO(data)) as pil:
    image = np.asarray(pil)
  return image[..., None] if image.ndim == 2 else image


def augment_example(image: np.ndarray, rng: np.random.Generator,
                    crop_padding: int = 0, flip: bool = False,
                    size: Optional[tuple[int, int]] = None) -> np.ndarray:
  """Resize (bilinear) to ``size``, random crop after zero padding, random flip."""
  if size is not None and image.shape[:2] != tuple(size):
    from PIL import Image
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    image = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR))
    image = image[..., None] if image.ndim == 2 else image
  if crop_padding:
    h, w = image.shape[:2]
    p = crop_padding
    padded = np.pad(image, ((p, p), (p, p), (0, 0)))
    dy, dx = rng.integers(0, 2 * p + 1, size=2)
    image = padded[dy:dy + h, dx:dx + w]
  if flip and rng.random() < 0.5:
    image = image[:, ::-1]
  return image


class StreamingSplit:
  """Batches of a random-access source of ``{"image": PNG bytes, "label", "id"}``.

  ``source`` is anything with ``len`` and ``__getitem__`` returning such a
  dict, e.g. ``builder.as_data_source(decoders={"image": tfds.decode.SkipDecoding()})[split]``
  (see ``lazy.open_split``). Only the rows of this process are ever read.
  """

  def __init__(self, source, batch_size: int, *, seed: int = 0,
               shuffle: bool = True, crop_padding: int = 0, flip: bool = False,
               size: Optional[tuple[int, int]] = None, drop_remainder: bool = False,
               process_index: Optional[int] = None,
               process_count: Optional[int] = None, num_threads: int = 4,
               prefetch: int = 2):
    import jax
    self.source = source
    self.batch_size = batch_size
    self.seed, self.shuffle = seed, shuffle
    self.crop_padding, self.flip, self.size = crop_padding, flip, size
    self.drop_remainder = drop_remainder
    self.process_index = jax.process_index() if process_index is None else process_index
    self.process_count = jax.process_count() if process_count is None else process_count
    self.rows = process_rows(batch_size, self.process_index, self.process_count)
    self.num_threads, self.prefetch = num_threads, prefetch

  def __len__(self) -> int:
    n = len(self.source)
    return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

  def _load(self, position: int, epoch: int) -> tuple[np.ndarray, int, int]:
    example = self.source[int(position)]
    image = example["image"]
    if isinstance(image, (bytes, np.bytes_)):
      image = decode_png(bytes(image))
    example_id = int(example["id"])
    rng = np.random.default_rng([self.seed, epoch, example_id, 1])
    image = augment_example(np.asarray(image), rng, self.crop_padding,
                            self.flip, self.size)
    return image, int(example["label"]), example_id

  def local_batches(self, epoch: int, pool: futures.Executor) -> Iterator[dict]:
    """This process's rows of each global batch (host numpy, padded, masked)."""
    order = epoch_permutation(self.seed, epoch, len(self.source), self.shuffle)
    local = self.rows.stop - self.rows.start
    for b in range(len(self)):
      positions = order[b * self.batch_size:(b + 1) * self.batch_size][self.rows]
      loaded = list(pool.map(lambda p: self._load(p, epoch), positions))
      n = len(loaded)
      if n:
        images = np.stack([x[0] for x in loaded])
      else:
        probe = self._load(order[0], epoch)[0]
        images = np.zeros((0,) + probe.shape, np.uint8)
      pad = local - n
      batch = {
          "image": np.concatenate([images, np.zeros((pad,) + images.shape[1:],
                                                    np.uint8)]),
          "label": np.asarray([x[1] for x in loaded] + [0] * pad, np.int32),
          "id": np.asarray([x[2] for x in loaded] + [-1] * pad, np.int64),
          "mask": np.asarray([1.0] * n + [0.0] * pad, np.float32),
      }
      yield batch

  def epoch(self, epoch: int, mesh=None) -> Iterator[dict]:
    """Global batches (image float32 in [0,1], label, mask) on ``mesh``.

    With ``mesh=None`` yields this process's host batches (uint8 images, with
    ids), which is what the tests and the throughput benchmark consume.
    """
    from jaxunlearn.batches import prefetch

    def host_batches():
      with futures.ThreadPoolExecutor(self.num_threads) as pool:
        yield from self.local_batches(epoch, pool)
    for item in prefetch(host_batches(), max(self.prefetch, 1)):
      yield item if mesh is None else _to_mesh(item, mesh, self.process_count)


def _to_mesh(local: dict, mesh, process_count: int) -> dict:
  """Host rows of this process -> global sharded arrays (see parallel.shard_batch)."""
  import jax
  from jaxunlearn import parallel
  batch = {"image": local["image"].astype(np.float32) / 255.0,
           "label": local["label"], "mask": local["mask"]}
  if process_count == 1:
    return parallel.shard_batch(batch, mesh)
  sharding = parallel.batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v)
          for k, v in batch.items()}

