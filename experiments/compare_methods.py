"""Every registered method on the embedded digits, class and random forgetting.

  python experiments/compare_methods.py [--methods a,b] [--seeds 0,1,2]
                                        [--settings class,random]

For each setting and seed the original and retrained models are trained once
(checkpoints shared by all methods in experiments/.work/), every method
unlearns, and the tables (mean ± std over seeds) go to
experiments/results/compare_<setting>.{md,csv,json}. ``retrained`` is the
reference row (avg_gap 0 by construction); ``rel_time`` is the unlearning
time divided by the retraining time.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (add_data_args, aggregate, apply_data_args, dataset_tag,  # noqa: E402
                    write_tables)

from jaxunlearn import config as base_config  # noqa: E402
from jaxunlearn import run as run_lib  # noqa: E402
from jaxunlearn.methods import METHODS  # noqa: E402

COLUMNS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy", "mia_threshold",
           "avg_gap", "unlearn_s", "rel_time")
WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".work")


def setting_config(setting: str, seed: int):
  cfg = base_config.get_config()
  cfg.seed = seed
  cfg.progress = False
  if setting == "class":
    cfg.forget.kind, cfg.forget.classes = "class", (3,)
  elif setting == "random":
    cfg.forget.kind, cfg.forget.fraction = "random", 0.1
  else:
    raise SystemExit(f"unknown setting {setting!r}: use class or random")
  return cfg


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default=",".join(METHODS.names()))
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--settings", default="class,random")
  parser.add_argument("--authors-settings", action="store_true",
                      help="every method with its default_config() (the "
                           "authors' setting) instead of configs/<method>_<dataset>.py")
  add_data_args(parser)
  args = parser.parse_args(argv)
  methods = args.methods.split(",")
  for name in methods:
    METHODS.get(name)  # fail fast on a typo
  for setting in args.settings.split(","):
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
      workdir = os.path.join(WORK, f"{setting}-seed{seed}" + (
          "" if dataset_tag(args) == "digits" else f"-{dataset_tag(args)}"))
      for name in methods:
        cfg = setting_config(setting, seed)
        apply_data_args(cfg, args)
        cfg.method = name
        if not args.authors_settings:
          cfg[name] = base_config.tuned_section(name, dataset_tag(args),
                                              cfg.forget.kind)
        report = run_lib.run(cfg, workdir, log=lambda *_: None)
        times = report["runtime_s"]
        for role, label in (("unlearned", name), ("original", "original"),
                            ("retrained", "retrained")):
          if role != "unlearned" and any(r["method"] == label and r["seed"] == seed
                                         for r in rows):
            continue
          m = report["models"][role]
          rows.append({"method": label, "seed": seed, **{k: m.get(k) for k in COLUMNS[:6]},
                       "unlearn_s": times["unlearn"] if role == "unlearned" else None,
                       "rel_time": (times["unlearn"] / times["retrain"]
                                    if role == "unlearned" else None)})
        print(f"{setting} seed {seed} {name}: forget {report['models']['unlearned']['forget_acc']:.3f} "
              f"test {report['models']['unlearned']['test_acc']:.3f} "
              f"gap {report['models']['unlearned']['avg_gap']:.4f}", flush=True)
    order = ["original", "retrained"] + methods
    rows.sort(key=lambda r: order.index(r["method"]))
    table = aggregate(rows, "method", COLUMNS)
    notes = [f"{args.dataset}, {args.model or 'small_cnn'}, forgetting "
             f"{'class 3' if setting == 'class' else 'a random 10% of the training set'}; "
             f"seeds {args.seeds}; mean ± std. Produced by `python experiments/compare_methods.py`."]
    suffix = "" if dataset_tag(args) == "digits" else f"_{dataset_tag(args)}"
    print(write_tables(f"compare_{setting}{suffix}",
                       f"Unlearning methods on {dataset_tag(args)}: {setting} forgetting",
                       table, "method", COLUMNS, rows, notes))


if __name__ == "__main__":
  main()
