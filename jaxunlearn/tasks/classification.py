"""Image classification: forget classes, a random subset or listed instances.

``config.forget`` chooses D_f (``data/splits.make_forget_split``); every
registered method (``jaxunlearn.methods``) applies; the original and the
retrained model are trained with cross-entropy (``train.make_supervised_step``).
"""
from __future__ import annotations

import ml_collections

from jaxunlearn import loop
from jaxunlearn.data import load_dataset, resolve as resolve_dataset
from jaxunlearn.data.splits import make_forget_split
from jaxunlearn.methods import METHODS
from jaxunlearn.models import MODELS, get_model
from jaxunlearn.tasks import Task, TaskData, register
from jaxunlearn.train import make_supervised_step


def model_kwargs(cfg: ml_collections.ConfigDict) -> dict:
  return {k: v for k, v in cfg.model.to_dict().items() if k != "name"}


def load_splits(cfg: ml_collections.ConfigDict):
  """(DatasetSpec, {"train", "test"}) of ``config.dataset``."""
  return load_dataset(cfg.dataset, cfg.data_dir or None, cfg.manual_dir or None,
                      lazy_above_mb=cfg.get("lazy_above_mb", 2048),
                      accept_archives=cfg.get("accept_archives", ""))


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
    train_step=lambda cfg: make_supervised_step, method=method, check=check))
