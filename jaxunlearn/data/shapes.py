"""Synthetic shapes: a small segmentation data set generated locally.

Each image (default 32x32x3 uint8) has a textured background (a random colour
gradient plus pixel noise) and 1..3 filled shapes of random class, size,
position and colour; later shapes occlude earlier ones. The mask [H,W] uint8
holds each pixel's class: 0 background, 1 disc, 2 square, 3 triangle,
4 cross. Everything is a pure function of the seed (NumPy's PCG64 seeded with
``(seed, split)``), so two machines generate the same bytes.

Ids: train 0..N-1, test N..N+M-1 (the library's convention: ids are unique
across splits).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError

CLASS_NAMES = ("background", "disc", "square", "triangle", "cross")
NUM_CLASSES = len(CLASS_NAMES)
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
IGNORE_LABEL = 255


class Shape(NamedTuple):
  """One drawn shape: class, centre (row, col), half-size in pixels, colour."""
  label: int
  cy: int
  cx: int
  size: int
  colour: tuple


def shape_mask(label: int, cy: float, cx: float, size: float,
               height: int, width: int) -> np.ndarray:
  """Boolean [H,W] mask of one shape of half-size ``size`` centred at (cy, cx)."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  dy, dx = y - cy, x - cx
  if label == 1:  # disc
    return dy * dy + dx * dx <= size * size
  if label == 2:  # axis-aligned square
    return (np.abs(dy) <= size) & (np.abs(dx) <= size)
  if label == 3:  # upward triangle: apex at cy - size, base at cy + size
    inside_rows = (dy >= -size) & (dy <= size)
    half_width = (dy + size) / 2.0  # 0 at the apex, size at the base
    return inside_rows & (np.abs(dx) <= half_width)
  if label == 4:  # plus-shaped cross, arm thickness ~ size / 3
    arm = max(size / 3.0, 1.0)
    return (((np.abs(dy) <= arm) & (np.abs(dx) <= size))
            | ((np.abs(dx) <= arm) & (np.abs(dy) <= size)))
  raise ValueError(f"no shape for class {label}")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A colour gradient between two random colours plus Gaussian pixel noise."""
  c0, c1 = rng.uniform(0, 255, (2, 3))
  angle = rng.uniform(0, 2 * np.pi)
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  t = (np.cos(angle) * x / width + np.sin(angle) * y / height)
  t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
  image = c0 + t[..., None] * (c1 - c0)
  return image + rng.normal(0, 12, (height, width, 3))


def draw_example(rng: np.random.Generator, height: int = 32, width: int = 32,
                 max_shapes: int = 3) -> tuple[np.ndarray, np.ndarray, list[Shape]]:
  """(image uint8 [H,W,3], mask uint8 [H,W], shapes in drawing order)."""
  image = _background(rng, height, width)
  mask = np.zeros((height, width), np.uint8)
  shapes = []
  for _ in range(int(rng.integers(1, max_shapes + 1))):
    label = int(rng.integers(1, NUM_CLASSES))
    size = int(rng.integers(max(2, height // 10), max(3, height // 4) + 1))
    cy = int(rng.integers(size, height - size))
    cx = int(rng.integers(size, width - size))
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    inside = shape_mask(label, cy, cx, size, height, width)
    image[inside] = np.asarray(colour) + rng.normal(0, 12, (int(inside.sum()), 3))
    mask[inside] = label
    shapes.append(Shape(label, cy, cx, size, colour))
  return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, shapes


def generate(count: int, seed: int, split_index: int, image_size: int = 32,
             id_offset: int = 0, max_shapes: int = 3
             ) -> tuple[Split, list[list[Shape]]]:
  """``count`` examples from the stream ``(seed, split_index)``."""
  rng = np.random.default_rng([int(seed), int(split_index)])
  images = np.empty((count, image_size, image_size, 3), np.uint8)
  masks = np.empty((count, image_size, image_size), np.uint8)
  drawn = []
  for i in range(count):
    images[i], masks[i], shapes = draw_example(rng, image_size, image_size,
                                               max_shapes)
    drawn.append(shapes)
  ids = id_offset + np.arange(count, dtype=np.int64)
  return Split(images, masks, ids), drawn


def load(seed: int = 0, num_train: int = 2000, num_test: int = 500,
         image_size: int = 32, max_shapes: int = 3) -> dict[str, Split]:
  """{"train": Split, "test": Split}: labels are uint8 masks [N,H,W]."""
  if image_size < 12:
    raise UserError(f"segmentation.image_size={image_size} is too small for "
                    "the shapes; use 12 or more (32 is the default)")
  if num_train < 1 or num_test < 1:
    raise UserError("segmentation.num_train and num_test must be positive")
  train, _ = generate(num_train, seed, 0, image_size, 0, max_shapes)
  test, _ = generate(num_test, seed, 1, image_size, num_train, max_shapes)
  return {"train": train, "test": test}
