"""A synthetic face-identity dataset, generated locally and deterministically.

No real face data is needed (or downloadable offline): each identity ``k`` has
fixed procedural "face" parameters drawn from ``(seed, k)`` — face ellipse
shape and skin colour, hair colour and height, eye spacing/height/size and
iris colour, brow thickness, nose length, mouth position/width/colour — and
each image of it varies the nuisances a face recogniser must ignore: pose
(shift, scale, in-plane rotation), a smile, the background, lighting (gain
and a left-right shading gradient) and pixel noise.

``write_image_folder`` writes the images as PNGs, one folder per identity
under ``train/`` and ``test/``, so the library's generic ``image_folder``
tfds builder prepares them exactly as it would a real folder-per-identity
dataset. Faces are drawn at 4x the stored size and downsampled (anti-aliased).
"""
from __future__ import annotations

import json
import os
from typing import Iterator

import numpy as np

SUPERSAMPLE = 4
VERSION = 2  # bump when the renderer changes: old folders are not reused
FOLDER_PREFIX = "id_"


def identity_params(seed: int, identity: int) -> dict:
  """The fixed parameters of one identity (fractions of the image side)."""
  rng = np.random.default_rng([seed, identity, 0])
  u = lambda lo, hi: float(rng.uniform(lo, hi))
  color = lambda lo, hi: tuple(int(v) for v in rng.uniform(lo, hi, 3))
  skin = rng.uniform(0.35, 1.0) * np.array([255, 205, 170]) * rng.uniform(0.85, 1.0, 3)
  return dict(
      face_rx=u(0.25, 0.36), face_ry=u(0.32, 0.44), skin=tuple(int(v) for v in skin),
      hair=color(0, 200), hair_height=u(0.04, 0.22), hair_width=u(1.0, 1.2),
      eye_dx=u(0.09, 0.17), eye_y=u(-0.12, 0.02), eye_r=u(0.025, 0.06),
      iris=color(0, 160), brow=u(0.01, 0.035), brow_gap=u(0.03, 0.07),
      nose_len=u(0.04, 0.13), nose_w=u(0.015, 0.05),
      mouth_y=u(0.12, 0.24), mouth_w=u(0.07, 0.17), mouth_h=u(0.01, 0.04),
      lips=(int(rng.uniform(120, 230)), int(rng.uniform(30, 110)),
            int(rng.uniform(40, 120))))


def _nuisance(rng: np.random.Generator) -> dict:
  """Per-image variation: pose, expression, background, lighting, noise."""
  return dict(dx=rng.uniform(-0.08, 0.08), dy=rng.uniform(-0.08, 0.08),
              scale=rng.uniform(0.85, 1.15), angle=rng.uniform(-15, 15),
              smile=rng.uniform(-0.6, 1.0),
              background=tuple(int(v) for v in rng.uniform(0, 255, 3)),
              gain=rng.uniform(0.6, 1.3), shading=rng.uniform(-0.4, 0.4),
              noise=rng.uniform(4, 16))


def render_face(params: dict, nuisance: dict, size: int,
                rng: np.random.Generator) -> np.ndarray:
  """One uint8 [size, size, 3] face image."""
  from PIL import Image, ImageDraw
  big = size * SUPERSAMPLE
  image = Image.new("RGB", (big, big), nuisance["background"])
  draw = ImageDraw.Draw(image)
  cx = big * (0.5 + nuisance["dx"])
  cy = big * (0.52 + nuisance["dy"])
  k = big * nuisance["scale"]  # fractions -> pixels

  def ellipse(x, y, rx, ry, fill):
    draw.ellipse([cx + k * (x - rx), cy + k * (y - ry),
                  cx + k * (x + rx), cy + k * (y + ry)], fill=fill)

  p = params
  # Hair: a larger ellipse behind the face, raised by hair_height.
  ellipse(0, -p["hair_height"], p["face_rx"] * p["hair_width"],
          p["face_ry"] * 0.9, p["hair"])
  ellipse(0, 0, p["face_rx"], p["face_ry"], p["skin"])
  for side in (-1, 1):
    x, y = side * p["eye_dx"], p["eye_y"]
    ellipse(x, y, p["eye_r"] * 1.5, p["eye_r"], (240, 240, 240))
    ellipse(x, y, p["eye_r"] * 0.7, p["eye_r"] * 0.7, p["iris"])
    brow_y = y - p["eye_r"] - p["brow_gap"]
    ellipse(x, brow_y, p["eye_r"] * 1.7, p["brow"], p["hair"])
  shadow = tuple(int(c * 0.75) for c in p["skin"])
  nose_top = p["eye_y"] + 0.03
  draw.polygon([(cx, cy + k * nose_top),
                (cx - k * p["nose_w"], cy + k * (nose_top + p["nose_len"])),
                (cx + k * p["nose_w"], cy + k * (nose_top + p["nose_len"]))],
               fill=shadow)
  # Mouth: an ellipse whose height grows with the smile (an expression).
  mouth_h = p["mouth_h"] * (1.0 + 0.8 * nuisance["smile"])
  ellipse(0, p["mouth_y"], p["mouth_w"], max(mouth_h, 0.004), p["lips"])

  image = image.rotate(nuisance["angle"], resample=Image.BILINEAR,
                       center=(cx, cy), fillcolor=nuisance["background"])
  image = image.resize((size, size), Image.LANCZOS)
  pixels = np.asarray(image, np.float32)
  ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None]
  pixels = pixels * nuisance["gain"] * (1.0 + nuisance["shading"] * ramp)
  pixels += rng.normal(0.0, nuisance["noise"], pixels.shape)
  return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def identity_images(seed: int, identity: int, count: int,
                    size: int = 32) -> np.ndarray:
  """uint8 [count, size, size, 3]: the images of one identity (deterministic)."""
  params = identity_params(seed, identity)
  rng = np.random.default_rng([seed, identity, 1])
  return np.stack([render_face(params, _nuisance(rng), size, rng)
                   for _ in range(count)])


def generate(seed: int, num_identities: int, images_per_identity: int,
             size: int = 32) -> tuple[np.ndarray, np.ndarray]:
  """(images [N, size, size, 3] uint8, labels [N] int32), identity-major."""
  images = [identity_images(seed, k, images_per_identity, size)
            for k in range(num_identities)]
  labels = np.repeat(np.arange(num_identities, dtype=np.int32), images_per_identity)
  return np.concatenate(images), labels


def _files(num_identities: int, images_per_identity: int,
           test_per_identity: int) -> Iterator[tuple[int, int, str]]:
  """(identity, image index, relative path): the last ``test_per_identity``
  images of each identity go to ``test/``."""
  width = len(str(num_identities - 1))
  for k in range(num_identities):
    for i in range(images_per_identity):
      split = "test" if i >= images_per_identity - test_per_identity else "train"
      yield k, i, os.path.join(split, f"{FOLDER_PREFIX}{k:0{width}d}", f"{i:04d}.png")


def write_image_folder(root: str, *, seed: int = 0, num_identities: int = 40,
                       images_per_identity: int = 60, test_per_identity: int = 12,
                       size: int = 32) -> str:
  """Writes ``root/{train,test}/id_K/NNNN.png`` once; returns ``root``.

  A ``complete.json`` marker (written last, atomically) records the
  parameters; a folder with the marker is reused, anything else is rewritten.
  """
  from PIL import Image
  from jaxunlearn.errors import UserError
  if num_identities < 2 or not 0 < test_per_identity < images_per_identity:
    raise UserError(
        f"synthetic faces need >= 2 identities and 0 < test_per_identity "
        f"({test_per_identity}) < images_per_identity ({images_per_identity})")
  spec = dict(version=VERSION, seed=seed, num_identities=num_identities, size=size,
              images_per_identity=images_per_identity,
              test_per_identity=test_per_identity)
  marker = os.path.join(root, "complete.json")
  if os.path.exists(marker):
    with open(marker) as f:
      if json.load(f) == spec:
        return root
    raise UserError(f"{root} holds other synthetic faces; use another data dir")
  files = list(_files(num_identities, images_per_identity, test_per_identity))
  for k in range(num_identities):
    images = identity_images(seed, k, images_per_identity, size)
    for identity, i, rel in files[k * images_per_identity:(k + 1) * images_per_identity]:
      path = os.path.join(root, rel)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(images[i]).save(path)
  from jaxunlearn.checkpoint import write_json
  write_json(marker, spec)
  return root


def variant_name(seed: int, num_identities: int, images_per_identity: int,
                 test_per_identity: int, size: int) -> str:
  """A directory name that differs whenever the generated data would."""
  return (f"synthetic_faces_v{VERSION}_s{seed}_n{num_identities}_i{images_per_identity}"
          f"_t{test_per_identity}_{size}px")

