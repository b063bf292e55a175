"""Batches for in-memory splits: seeded shuffles, padding, on-device augmentation.

Every batch has one static shape: the last partial batch is padded and its
``mask`` is 0 on the padding, so a jitted step compiles once and padded
examples change neither the loss nor the BatchNorm statistics.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np


class Split(NamedTuple):
  """An in-memory split: uint8 images [N,H,W,C], int32 labels, int64 ids."""
  images: np.ndarray
  labels: np.ndarray
  ids: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> "Split":
    index = np.asarray(index, dtype=np.int64)
    return Split(self.images[index], self.labels[index], self.ids[index])


def num_batches(num_examples: int, batch_size: int,
                drop_remainder: bool = False) -> int:
  if drop_remainder:
    return num_examples // batch_size
  return -(-num_examples // batch_size)


def epoch_order(key: jax.Array, epoch: int, num_examples: int,
                shuffle: bool = True) -> np.ndarray:
  """The example order of one epoch: a permutation from ``fold_in(key, epoch)``."""
  if not shuffle:
    return np.arange(num_examples)
  return np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch),
                                           num_examples))


def make_batch(split: Split, index: np.ndarray, batch_size: int) -> dict:
  """Gathers ``index`` and pads to ``batch_size``: image in [0,1], label, mask."""
  n = len(index)
  padded = np.zeros(batch_size, dtype=np.int64)
  padded[:n] = index
  images = split.images[padded].astype(np.float32) / 255.0
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
