"""Accuracy over unlearning epochs on digits (forget class 3).

  python experiments/curves_digits.py [--seed 0] [--methods delete,finetune,...]

Pretrains the small CNN (base recipe, seed), then runs each epoch-based
method with its default config from the original model, recording forget
accuracy (D_f) and test accuracy on the remaining classes (D_t,r) after each
epoch through ``UnlearnTask.on_epoch_end``. The retrained model's values are
drawn as reference lines. Writes experiments/results/curves_digits.{json,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS  # noqa: E402
from plots import accuracy_curves  # noqa: E402

from jaxunlearn import config as base_config  # noqa: E402
from jaxunlearn import loop, parallel  # noqa: E402
from jaxunlearn.data import load_dataset  # noqa: E402
from jaxunlearn.data.splits import class_forget_split  # noqa: E402
from jaxunlearn.methods import METHODS, UnlearnTask  # noqa: E402
from jaxunlearn.metrics.predict import accuracy, make_predict_fn  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.train import train_model  # noqa: E402

DEFAULT = ("delete", "finetune", "neggrad_plus", "salun", "l1_sparse",
           "random_label", "ieu")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--methods", default=",".join(DEFAULT))
  args = parser.parse_args(argv)
  cfg = base_config.get_config()
  spec, splits = load_dataset("digits", os.environ.get("JAXUNLEARN_DATA_DIR") or None)
  mesh = parallel.make_mesh(None)
  model = get_model(cfg.model.name, num_classes=spec.num_classes, mean=spec.mean,
                    std=spec.std)
  augment = loop.Augment(spec.crop_padding, spec.flip)
  root = jax.random.key(args.seed)
  _, pretrain_key, retrain_key, unlearn_key = jax.random.split(root, 4)
  data = class_forget_split(splits["train"], splits["test"], (3,), spec.num_classes)
  train = lambda split, key: train_model(model, cfg.train, split, spec.image_shape,
                                         key, mesh, augment=augment, progress=False)[0]
  original, retrained = train(splits["train"], pretrain_key), train(data.retain,
                                                                    retrain_key)
  predict_fn = make_predict_fn(model, mesh)
  acc = lambda v, split: accuracy(predict_fn, v, split, 64 * mesh.devices.size, mesh)
  point = lambda v: dict(forget_acc=acc(v, data.forget),
                         test_retain_acc=acc(v, data.test_retain))
  curves = {"original": point(original), "retrained": point(retrained), "methods": {}}
  for name in args.methods.split(","):
    curve = [point(original)]
    task = UnlearnTask(model, original, data, spec.num_classes, spec.image_shape,
                       mesh, augment, cfg.train, progress=False,
                       on_epoch_end=lambda epoch, v, c=curve: c.append(point(v)))
    METHODS.get(name).unlearn(task, base_config.tuned_section(name, "digits", "class"),
                              unlearn_key)
    curves["methods"][name] = curve
    print(name, [round(p["forget_acc"], 3) for p in curve], flush=True)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "curves_digits.json"), "w") as f:
    json.dump(dict(seed=args.seed, forget_classes=[3], **curves), f, indent=1)
  accuracy_curves(curves["methods"], curves["retrained"], "class 3",
                  os.path.join(RESULTS, "curves_digits.png"))


if __name__ == "__main__":
  main()
