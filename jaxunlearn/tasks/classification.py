"""Image classification: forget classes, a random subset or listed instances.

``config.forget`` chooses D_f (``data/splits.make_forget_split``); every
registered method (``jaxunlearn.methods``) applies; the original and the
retrained model are trained with cross-entropy (``train.make_supervised_step``).
"""
from __future__ import annotations

import jax
import ml_collections

from jaxunlearn import loop
from jaxunlearn.data import load_dataset, resolve as resolve_dataset
from jaxunlearn.data.splits import hold_out, make_forget_split
from jaxunlearn.methods import METHODS
from jaxunlearn.models import MODELS, get_model
from jaxunlearn.tasks import Task, TaskData, register
from jaxunlearn.train import make_supervised_step


def model_kwargs(cfg: ml_collections.ConfigDict) -> dict:
  return {k: v for k, v in cfg.model.to_dict().items() if k != "name"}


def load_splits(cfg: ml_collections.ConfigDict):
  """(DatasetSpec, {"train", "test"}) of ``config.dataset``.

  With ``config.validation = N > 0`` the "test" split is N training images
  held out (drawn with a key folded from ``config.seed``) and the model
  trains on the rest: the split hyperparameters are chosen on, so the
  dataset's test split, which the studies report, is never read."""
  spec, splits = load_dataset(
      cfg.dataset, cfg.data_dir or None, cfg.manual_dir or None,
      splits=("train",) if validation_size(cfg) else ("train", "test"),
      lazy_above_mb=cfg.get("lazy_above_mb", 2048),
      accept_archives=cfg.get("accept_archives", ""))
  if validation_size(cfg):
    key = jax.random.fold_in(jax.random.key(cfg.seed), VALIDATION_SALT)
    splits["train"], splits["test"] = hold_out(splits["train"],
                                               validation_size(cfg), key)
  return spec, splits


# Folded into the seed's key for the held-out draw, so it shares no key with
# the forget split or any phase (run.PhaseKeys split the seed's key).
VALIDATION_SALT = 0x7A11D


def validation_size(cfg: ml_collections.ConfigDict) -> int:
  return int(cfg.get("validation", 0) or 0)


def validation_fingerprint(cfg: ml_collections.ConfigDict) -> tuple:
  """The held-out size, in the trained models' fingerprints when it is set
  (they train on fewer images); nothing otherwise, so existing checkpoints
  keep their names."""
  return (("validation", validation_size(cfg)),) if validation_size(cfg) else ()


def augment_for(spec, cfg: ml_collections.ConfigDict) -> loop.Augment:
  return (loop.Augment(spec.crop_padding, spec.flip) if cfg.train.augment
          else loop.Augment())


def load(cfg, root, split_key) -> TaskData:
  spec, splits = load_splits(cfg)
  data = make_forget_split(cfg.forget, splits["train"], splits["test"],
                           spec.num_classes, split_key)
  return TaskData(spec.name, splits["train"], data, spec.num_classes,
                  tuple(spec.image_shape), tuple(spec.mean), tuple(spec.std),
                  augment_for(spec, cfg), cfg.forget.to_dict())


def build_model(cfg, data: TaskData):
  return get_model(cfg.model.name, num_classes=data.num_classes, mean=data.mean,
                   std=data.std, **model_kwargs(cfg))


def check(cfg) -> None:
  METHODS.get(cfg.method)
  resolve_dataset(cfg.dataset)
  MODELS.get(cfg.model.name)


def method(cfg, name: str):
  return METHODS.get(name)


CLASSIFICATION = register(Task(
    "classification", load=load, build_model=build_model,
    train_step=lambda cfg: make_supervised_step, method=method, check=check,
    fingerprint=validation_fingerprint))
