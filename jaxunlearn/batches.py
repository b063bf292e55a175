"""The containers every part of the library shares, and their batches.

``Split`` (images, labels, ids) and ``ForgetSplit`` (D_f, D_r, D_t,f, D_t,r)
are what the loop, training, methods and metrics consume; they live here,
outside ``jaxunlearn.data``, so that methods depend on containers and never on
dataset loading. Batching: seeded shuffles, padding, on-device augmentation.

Every batch has one static shape: the last partial batch is padded and its
``mask`` is 0 on the padding, so a jitted step compiles once and padded
examples change neither the loss nor the BatchNorm statistics.

A split's images may be a ``lazy.LazyImages`` (data larger than memory):
``take`` and ``concat`` keep it lazy and ``make_batch`` decodes only the
batch (only this process's rows of it). ``prefetch`` prepares the next
batches in a background thread while the devices run the current one.
"""
from __future__ import annotations

import functools
import queue
import threading
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np



def is_lazy(images) -> bool:
  """Whether ``images`` is read from disk per batch (``data.lazy.LazyImages``
  or any array stand-in with ``subset``/``gather``), not an array."""
  return hasattr(images, "gather") and hasattr(images, "subset")


class Split(NamedTuple):
  """A split: uint8 images [N,H,W,C] (an array, or ``LazyImages`` read from
  disk per batch), int32 labels, int64 ids."""
  images: np.ndarray
  labels: np.ndarray
  ids: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> "Split":
    index = np.asarray(index, dtype=np.int64)
    images = (self.images.subset(index) if is_lazy(self.images)
              else self.images[index])
    return Split(images, self.labels[index], self.ids[index])


class ForgetSplit(NamedTuple):
  forget: Split        # D_f
  retain: Split        # D_r
  test_forget: Split   # D_t,f (empty unless class forgetting)
  test_retain: Split   # D_t,r
  forget_classes: Optional[tuple[int, ...]]


def concat(parts: Sequence[Split]) -> Split:
  """The splits one after the other; lazy views of one source stay lazy."""
  parts = list(parts)
  if parts and all(is_lazy(p.images) for p in parts) and all(
      p.images.source is parts[0].images.source for p in parts):
    images = parts[0].images
    for p in parts[1:]:
      images = images.concat(p.images)
  else:
    images = np.concatenate([np.asarray(p.images) for p in parts])
  return Split(images, np.concatenate([p.labels for p in parts]),
               np.concatenate([p.ids for p in parts]))


def num_batches(num_examples: int, batch_size: int,
                drop_remainder: bool = False) -> int:
  if drop_remainder:
    return num_examples // batch_size
  return -(-num_examples // batch_size)


@functools.partial(jax.jit, static_argnums=2)
def _permutation(key, epoch, num_examples):
  return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


def epoch_order(key: jax.Array, epoch: int, num_examples: int,
                shuffle: bool = True) -> np.ndarray:
  """The example order of one epoch: a permutation from ``fold_in(key, epoch)``
  (computed where ``key`` is and fetched: a host sync; the epoch loop gets
  its orders with its once-per-epoch fetch instead)."""
  if not shuffle:
    return np.arange(num_examples)
  epoch = jax.device_put(np.int32(epoch), getattr(key, "sharding", None))
  return jax.device_get(_permutation(key, epoch, num_examples))


def make_batch(split: Split, index: np.ndarray, batch_size: int) -> dict:
  """Gathers ``index`` and pads to ``batch_size``: image in [0,1], label, mask."""
  n = len(index)
  padded = np.zeros(batch_size, dtype=np.int64)
  padded[:n] = index
  if is_lazy(split.images):  # decode only the rows this process feeds
    rows = batch_size // jax.process_count()
    start = jax.process_index() * rows
    images = split.images.gather(padded, rows=slice(start, start + rows))
  else:
    images = split.images[padded]
  images = images.astype(np.float32) / 255.0
  mask = np.zeros(batch_size, dtype=np.float32)
  mask[:n] = 1.0
  return {"image": images, "label": split.labels[padded].astype(np.int32),
          "mask": mask}


def iterate(split: Split, batch_size: int, order: np.ndarray,
            drop_remainder: bool = False, start: int = 0) -> Iterator[dict]:
  """Host batches in ``order``, from batch number ``start`` on."""
  count = num_batches(len(order), batch_size, drop_remainder)
  for b in range(start, count):
    yield make_batch(split, order[b * batch_size:(b + 1) * batch_size], batch_size)


def in_order(split: Split, batch_size: int) -> Iterator[dict]:
  """Every example once, in order, in padded batches read ahead (evaluation)."""
  return prefetch(iterate(split, batch_size, np.arange(len(split))))


def prefetch(batches: Iterable, size: int = 2) -> Iterator:
  """Iterates ``batches`` with up to ``size`` items prepared ahead in a
  background thread (reading and decoding overlap the devices' work).
  Errors surface in the consumer; leaving the loop early stops the thread."""
  if size <= 0:
    yield from batches
    return
  out: queue.Queue = queue.Queue(maxsize=size)
  done = object()
  stop = threading.Event()

  def produce():
    try:
      for item in batches:
        if stop.is_set():
          return
        out.put(item)
      out.put(done)
    except BaseException as error:  # noqa: BLE001  (re-raised below)
      out.put(error)

  thread = threading.Thread(target=produce, daemon=True)
  thread.start()
  try:
    while (item := out.get()) is not done:
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    while thread.is_alive():  # unblock a producer waiting on a full queue
      try:
        out.get_nowait()
      except queue.Empty:
        thread.join(0.05)


def augment_images(key: jax.Array, images: jnp.ndarray, crop_padding: int = 0,
                   flip: bool = False) -> jnp.ndarray:
  """Random crop after zero padding, and random horizontal flip (on device).

  The randomness is drawn over the global batch, so the augmented batch is
  the same whatever the number of devices it is sharded over.
  """
  if crop_padding:
    b, h, w, _ = images.shape
    p = crop_padding
    key, key_x, key_y = jax.random.split(key, 3)
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
    dx = jax.random.randint(key_x, (b,), 0, 2 * p + 1)
    dy = jax.random.randint(key_y, (b,), 0, 2 * p + 1)
    crop = lambda img, y, x: jax.lax.dynamic_slice(
        img, (y, x, 0), (h, w, img.shape[-1]))
    images = jax.vmap(crop)(padded, dy, dx)
  if flip:
    key, key_f = jax.random.split(key)
    flips = jax.random.bernoulli(key_f, 0.5, (images.shape[0], 1, 1, 1))
    images = jnp.where(flips, images[:, :, ::-1, :], images)
  return images
