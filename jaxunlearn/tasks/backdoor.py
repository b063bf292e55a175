"""BadNets-style backdoors: poison a fraction of the training set, then unlearn
the poisoned samples.

Gu et al., "BadNets" (2017): a fixed patch (the trigger) is stamped on a
fraction of training images of the other classes, which are relabelled to the
target class. The poisoned model classifies clean images correctly and any
triggered image as the target. DELETE's paper (CVPR 2025, "backdoor defence")
treats the poisoned samples as the forget set: with the teacher's target logit
masked, the student learns that a triggered image is *not* the target.

The task ``backdoor`` (``config.task``) is classification with this forget
set: the original model is trained on the poisoned data, the retrained one on
the clean rest, every method applies, and the evaluator ``backdoor`` reports
the attack success rate on the triggered test images (split ``triggered``).

Config (``config.backdoor``): ``fraction`` (of the training set),
``target`` (class), ``size`` (patch side in pixels), ``position``
("bottom_right" | "top_left" | "top_right" | "bottom_left"), ``value``
(patch intensity 0..255). The poisoned ids are the forget set, saved with the
run like any other forget set.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from jaxunlearn.batches import Split
from jaxunlearn.data.splits import ids_forget_split
from jaxunlearn.errors import UserError
from jaxunlearn.tasks import Task, TaskData, classification, register


class Trigger(NamedTuple):
  size: int = 2
  position: str = "bottom_right"
  value: int = 255


def trigger_slices(trigger: Trigger, height: int, width: int):
  """(row slice, column slice) of the patch in an HxW image."""
  s = trigger.size
  if not 0 < s <= min(height, width):
    raise UserError(f"backdoor.size={s} does not fit {height}x{width} images")
  rows = {"top": slice(0, s), "bottom": slice(height - s, height)}
  cols = {"left": slice(0, s), "right": slice(width - s, width)}
  try:
    vertical, horizontal = trigger.position.split("_")
    return rows[vertical], cols[horizontal]
  except (ValueError, KeyError):
    raise UserError(f"unknown backdoor.position {trigger.position!r}; use "
                    "top_left, top_right, bottom_left or bottom_right") from None


def apply_trigger(images: np.ndarray, trigger: Trigger) -> np.ndarray:
  """Stamps the patch on uint8 images [N,H,W,C] (a copy)."""
  out = np.array(images, copy=True)
  rows, cols = trigger_slices(trigger, images.shape[1], images.shape[2])
  out[:, rows, cols, :] = trigger.value
  return out


def poison(train: Split, fraction: float, target: int, trigger: Trigger,
           key: jax.Array, num_classes: int) -> tuple[Split, np.ndarray]:
  """Stamps the trigger on a seeded ``fraction`` of the non-target training
  images and relabels them ``target``; returns (poisoned split, poisoned ids)."""
  if not 0 <= target < num_classes:
    raise UserError(f"backdoor.target={target} is out of range 0..{num_classes - 1}")
  candidates = np.flatnonzero(train.labels != target)
  count = int(round(fraction * len(train)))
  if not 0 < count <= len(candidates):
    raise UserError(f"backdoor.fraction={fraction} gives {count} poisoned samples; "
                    f"choose a fraction between 0 and {len(candidates) / len(train):.2f}")
  chosen = np.sort(np.asarray(jax.random.choice(key, candidates, (count,),
                                                replace=False)))
  images = np.array(train.images, copy=True)
  labels = np.array(train.labels, copy=True)
  images[chosen] = apply_trigger(train.images[chosen], trigger)
  labels[chosen] = target
  return Split(images, labels, train.ids), train.ids[chosen]


def triggered_test_set(test: Split, target: int, trigger: Trigger) -> Split:
  """The non-target test images with the trigger, labelled with their true class
  (attack success = predicted ``target``)."""
  keep = test.labels != target
  return Split(apply_trigger(test.images[keep], trigger), test.labels[keep],
               test.ids[keep])


POISON_KEY = 7  # fold_in(root, POISON_KEY) chooses the poisoned samples


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      fraction=0.1, target=0, size=2, position="bottom_right", value=255))


def trigger_of(cfg) -> Trigger:
  return Trigger(cfg.backdoor.size, cfg.backdoor.position, cfg.backdoor.value)


def load(cfg, root, split_key) -> TaskData:
  """The poisoned samples are the forget set."""
  del split_key
  spec, splits = classification.load_splits(cfg)
  trigger = trigger_of(cfg)
  poisoned, poisoned_ids = poison(
      splits["train"], cfg.backdoor.fraction, cfg.backdoor.target, trigger,
      jax.random.fold_in(root, POISON_KEY), spec.num_classes)
  data = ids_forget_split(poisoned, splits["test"], poisoned_ids)
  triggered = triggered_test_set(splits["test"], cfg.backdoor.target, trigger)
  return TaskData(spec.name, poisoned, data, spec.num_classes,
                  tuple(spec.image_shape), tuple(spec.mean), tuple(spec.std),
                  classification.augment_for(spec, cfg),
                  dict(kind="backdoor", backdoor=cfg.backdoor.to_dict()),
                  splits={"triggered": triggered})


def check(cfg) -> None:
  classification.check(cfg)
  if cfg.get("backdoor") is None:
    raise UserError("config.task='backdoor' needs a config.backdoor section; "
                    "start from configs/backdoor_digits.py or set config.backdoor "
                    "= jaxunlearn.tasks.backdoor.default_config()")


BACKDOOR = register(Task(
    "backdoor", load=load, build_model=classification.build_model,
    train_step=classification.CLASSIFICATION.train_step,
    method=classification.method, check=check,
    fingerprint=lambda cfg: ((cfg.backdoor.to_dict(),)
                         + classification.validation_fingerprint(cfg))))
