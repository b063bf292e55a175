"""Retrain: train from scratch on the retain set with the original recipe.

The gold standard every metric is compared with (exact unlearning); as a
method it shows what the others save in time.
"""
import ml_collections

from jaxunlearn.methods import Method, register
from jaxunlearn.train import train_model


def default_config():
  return ml_collections.ConfigDict(dict(epochs=0))  # 0 = the recipe's epochs


def unlearn(task, cfg, key):
  recipe = ml_collections.ConfigDict(task.train_config.to_dict())
  if cfg.epochs:
    recipe.epochs = cfg.epochs
  variables, _ = train_model(task.model, recipe, task.data.retain, task.image_shape,
                             key, task.mesh, augment=task.augment,
                             checkpoint_dir=task.checkpoint_dir, desc="retrain",
                             progress=task.progress)
  return variables, {}


register(Method("retrain", unlearn, default_config,
                "train from scratch on D_r (the gold standard)"))
