"""L2UL on digits: the full method vs its ablations, for several k, and
continual requests.

  python experiments/l2ul_digits.py [--seeds 0,1,2] [--ks 1,16,64,128]

Settings: configs/l2ul_digits.py (the L2UL section; the pretraining recipe
is the base one).

Per seed: pretrain the small CNN (base recipe); for each k draw k random
training samples and run L2UL "full" (-CE + adversarial-example CE + weight
importance), "adv" (no weight importance) and "ga" (-CE only: the gradient
ascent baseline) to the same stop rule (none of the k classified as its
label, at most max_iter + 1 passes) with the same lr; report steps, forget
accuracy and test accuracy drop. Then 4 continual requests of 16 samples
each (first seed's model): per request steps, test accuracy and accuracy on
every sample forgotten so far. Writes experiments/results/l2ul_digits.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, add_data_args, dataset_tag  # noqa: E402

from jaxunlearn.config import load_file  # noqa: E402
from jaxunlearn.aggregate import cell, mean_std  # noqa: E402
from jaxunlearn import loop, parallel  # noqa: E402
from jaxunlearn.data import load_dataset  # noqa: E402
from jaxunlearn.data.splits import random_forget_split  # noqa: E402
from jaxunlearn.methods import UnlearnTask, l2ul  # noqa: E402
from jaxunlearn.metrics.predict import accuracy, make_predict_fn  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.train import train_model  # noqa: E402

K, REQUESTS = 16, 4  # continual requests: REQUESTS of K samples
VARIANTS = ("full", "adv", "ga")
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs",
                      "l2ul_digits.py")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--ks", default="1,16,64,128")
  add_data_args(parser)
  args = parser.parse_args(argv)
  ks = [int(k) for k in args.ks.split(",")]
  tag = dataset_tag(args)
  stem = "l2ul_digits" if tag == "digits" else f"l2ul_{tag}"
  cfg = load_file(CONFIG)
  if args.model:
    cfg.model.name = args.model
  spec, splits = load_dataset(args.dataset, os.environ.get("JAXUNLEARN_DATA_DIR") or None)
  mesh = parallel.make_mesh(None)
  model = get_model(cfg.model.name, num_classes=spec.num_classes, mean=spec.mean,
                    std=spec.std)
  rows, continual_rows = [], None
  for seed in (int(s) for s in args.seeds.split(",")):
    root = jax.random.key(seed)
    split_key, pretrain_key, unlearn_key, retrain_key = jax.random.split(root, 4)
    original, _ = train_model(model, cfg.train, splits["train"], spec.image_shape,
                              pretrain_key, mesh, progress=False)
    acc = _accuracy_fn(model, mesh)
    test = splits["test"]
    test0 = acc(original, test)
    for k in ks:
      data = random_forget_split(splits["train"], splits["test"],
                                 jax.random.fold_in(split_key, k), count=k)
      task = UnlearnTask(model, original, data, spec.num_classes, spec.image_shape,
                         mesh, loop.Augment(), cfg.train, progress=False)
      retrained, t_retrain = train_model(
          model, cfg.train, data.retain, spec.image_shape,
          jax.random.fold_in(retrain_key, k), mesh, progress=False)
      rows.append(dict(seed=seed, k=k, variant="retrained", steps=None, stopped=None,
                       forget_acc=acc(retrained, data.forget), test_acc_original=test0,
                       test_acc=acc(retrained, test), seconds=t_retrain, rel_time=1.0))
      rows[-1]["test_drop"] = test0 - rows[-1]["test_acc"]
      for variant in VARIANTS:
        mcfg = cfg.l2ul.copy_and_resolve_references()
        mcfg.variant = variant
        start = time.perf_counter()
        new, info = l2ul.run(task, mcfg, unlearn_key)
        seconds = time.perf_counter() - start
        row = dict(seed=seed, k=k, variant=variant, **info,
                   forget_acc=acc(new, data.forget), test_acc_original=test0,
                   test_acc=acc(new, test), seconds=seconds,
                   rel_time=seconds / t_retrain)
        row["test_drop"] = test0 - row["test_acc"]
        rows.append(row)
        print(row, flush=True)
    if continual_rows is None:
      rng = np.random.default_rng(seed)
      ids = rng.choice(splits["train"].ids, REQUESTS * K, replace=False)
      requests = [ids[i * K:(i + 1) * K] for i in range(REQUESTS)]
      _, continual_rows = l2ul.continual(task, cfg.l2ul, unlearn_key, requests)
      for r in continual_rows:
        r["test_acc_original"] = test0
        print(r, flush=True)
  lines = [f"# L2UL on {tag} (k random samples)", "",
           f"Config (configs/l2ul_digits.py): `{dict(cfg.l2ul)}`; pretrain: base "
           f"recipe; seeds {args.seeds}.", "",
           "Every variant runs to the same stop rule (none of the k classified as "
           "its label, at most max_iter + 1 passes; max_steps = that budget in steps) "
           "with the same lr. full = the method; "
           "adv = without the weight-importance term; ga = gradient ascent only "
           "(the baseline); retrained = trained from scratch without the k samples (the "
           "reference; rel_time = seconds / its training time). Lower test accuracy "
           "drop is better.", "",
           "| k | variant | steps | max_steps | stopped | forget acc | test acc drop | seconds | rel_time |",
           "|---|---|---|---|---|---|---|---|---|"]
  for k in ks:
    for variant in ("retrained",) + VARIANTS:
      mine = [r for r in rows if r["variant"] == variant and r["k"] == k]
      if variant == "retrained":
        steps, budget, stopped = "-", "-", "-"
      else:
        steps = cell(mean_std(r["steps"] for r in mine), 1)
        budget = "/".join(sorted({str(r["max_steps"]) for r in mine}))
        stopped = f"{sum(r['stopped'] for r in mine)}/{len(mine)}"
      lines.append(f"| {k} | {variant} | {steps} | {budget} | {stopped} | " + " | ".join(
          cell(mean_std(r[c] for r in mine), d)
          for c, d in (("forget_acc", 3), ("test_drop", 4), ("seconds", 1),
                       ("rel_time", 3))) + " |")
  lines += ["", f"## Continual: {REQUESTS} requests of {K} (seed {args.seeds.split(',')[0]})", "",
            "| request | steps | stopped | test acc | acc on all forgotten so far |",
            "|---|---|---|---|---|"]
  for r in continual_rows:
    lines.append(f"| {r['request']} | {r['steps']} | {r['stopped']} | {r['test_acc']:.4f} | "
                 f"{r['forgotten_so_far_acc']:.3f} |")
  lines.append(f"\nOriginal test accuracy: {continual_rows[0]['test_acc_original']:.4f}")
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(RESULTS, stem + ".json"), "w") as f:
    json.dump({"config": dict(cfg.l2ul), "rows": rows, "continual": continual_rows},
              f, indent=1)
  print("\n".join(lines))


def _accuracy_fn(model, mesh):
  predict_fn = make_predict_fn(model, mesh)
  return lambda v, split: accuracy(predict_fn, v, split, 64 * mesh.devices.size, mesh)


if __name__ == "__main__":
  main()
