"""Study 4 of the Fashion-MNIST proving ground: IEU with the relearning
convergence delay (RCD), a random 30% and 30% of the classes.

  python experiments/fmnist_ieu.py [--seeds 0,1,2] [--settings random30,class30]
                                   [--committed-seeds S,...]

Rows: original, retrained, finetune, random_label, neggrad (gradient
ascent), salun, ieu; columns: rcd_steps (how many relearning steps on D_f
bring its accuracy back to the original's minus the tolerance; larger =
forgotten more deeply), weight distance, avg_gap, accuracies, MIA. class30
forgets classes 0, 1, 2 (the forget set of experiments/fmnist_class.py's
class3 setting, so the retrained model is shared); IEU runs its class
setting there and configs/ieu_fashion_mnist.py (if present) on random30.
The paper's claim (IEU): a larger delay than these baselines, approaching
the retrained model's, at a small average gap.

Resumable (experiments/fmnist_common.py). Writes
experiments/results/fmnist_ieu_<setting>.{md,csv,json} and the relearning
curves of the first seed as fmnist_ieu_<setting>_curves.png (left as
committed when the first seed is one of --committed-seeds: the curves are
in its reports only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (RESULTS, aggregate, means,  # noqa: E402
                    verdict_line, write_tables)
from fmnist_common import (DATASET, base_config, committed, merge,  # noqa: E402
                           parse_seeds, report_path, rows_of, run_or_note,
                           seed_args, seeds_phrase, unchanged_notes)

from jaxunlearn.config import tuned_section  # noqa: E402

METHODS = ("finetune", "random_label", "neggrad", "salun", "ieu", "ieu-default")
IEU_ROWS = ("ieu", "ieu-default")
# The relearning budget: long enough for the gold standard. With the
# library's 100 steps every model that forgot anything, the retrained one
# included, hits the budget on Fashion-MNIST random30 (threshold 0.94: the
# original's forget accuracy minus 0.05), so the delay cannot rank them.
# Measured on seed 0 from the retrained model alone (no method's result):
# it relearns D_f to 0.94 in 1,241 steps of the fixed protocol (SGD lr
# 0.01, batch 32); the budget is twice that, rounded.
RCD_STEPS = 2500
COLUMNS = ("rcd_steps", "rcd_reached", "rcd_weight_distance", "avg_gap", "forget_acc",
           "test_acc", "mia_efficacy", "mia_threshold", "unlearn_s", "rel_time")


def verdict(table: list[dict]) -> list[str]:
  """The paper's claim per IEU row, on the means: IEU's relearning delay
  above every baseline's, at an avg_gap no more than 0.01 above the
  smallest baseline gap; how close its delay comes to the retrained
  model's is stated."""
  by = means(table)
  base = {m: by[m] for m in METHODS if m in by and m not in IEU_ROWS
          and None not in (by[m]["rcd_steps"], by[m]["avg_gap"])}
  if not base:
    return []
  slowest = max(base, key=lambda m: base[m]["rcd_steps"])
  closest = min(base, key=lambda m: base[m]["avg_gap"])
  lines = []
  for row in IEU_ROWS:
    if row not in by:
      continue
    u = by[row]
    parts = [f"{row}: rcd_steps {u['rcd_steps']:.1f} vs the baselines' largest "
             f"{base[slowest]['rcd_steps']:.1f} ({slowest})",
             f"avg_gap {u['avg_gap']:.4f} vs the smallest baseline gap "
             f"{base[closest]['avg_gap']:.4f} ({closest})",
             f"baselines with results: {', '.join(base)}"]
    if by.get("retrained", {}).get("rcd_steps"):
      parts.insert(1, f"retrained model's delay {by['retrained']['rcd_steps']:.1f}")
    ok = [u["rcd_steps"] > base[slowest]["rcd_steps"],
          u["avg_gap"] <= base[closest]["avg_gap"] + 0.01]
    lines.append(verdict_line(ok, parts))
  return lines


def setting_config(setting: str, seed: int, row: str):
  """The config of one table row; ``ieu-default`` is IEU with the method's
  default section (on class30 the same as ``ieu``)."""
  method = "ieu" if row in IEU_ROWS else row
  cfg = base_config(method, seed)
  if setting == "random30":
    cfg.forget.kind, cfg.forget.fraction = "random", 0.3
  elif setting == "class30":
    cfg.forget.kind, cfg.forget.classes = "class", (0, 1, 2)
  else:
    raise SystemExit(f"unknown setting {setting!r}: use random30 or class30")
  if row == "ieu-default":
    from jaxunlearn.methods import METHODS as REGISTRY
    cfg.ieu = REGISTRY.get("ieu").default_config()
  else:
    cfg[method] = tuned_section(method, DATASET, cfg.forget.kind)
  cfg.eval.evaluators = tuple(cfg.eval.evaluators) + ("rcd",)
  cfg.eval.rcd.steps = RCD_STEPS
  return cfg


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  seed_args(parser)
  parser.add_argument("--settings", default="random30,class30")
  parser.add_argument("--methods", default=",".join(METHODS))
  args = parser.parse_args(argv)
  methods = args.methods.split(",")
  seeds, kept = parse_seeds(args)
  first = min(seeds + kept)
  order = ["original", "retrained", *methods]
  for setting in args.settings.split(","):
    # notes: the runs that failed and those that kept the original model
    rows, notes = committed(f"fmnist_ieu_{setting}", kept, order)
    curves = {}
    if rows:
      write(setting, rows, order, seeds, kept, notes, curves, first)
    for seed in seeds:
      for method in methods:
        if method == "ieu-default" and setting == "class30":
          continue  # IEU's class setting is its default: the ieu row
        cfg = setting_config(setting, seed, method)
        report = run_or_note(cfg, f"{setting}-{method}", notes,
                             f"{method} (seed {seed})")
        if report is None:
          continue
        merge(rows, rows_of(report, method, seed, COLUMNS[:-2]))
        notes += unchanged_notes(report, method, seed)
        saved_path = report_path(cfg, f"{setting}-{method}").replace(
            ".json", ".rcd_curves.json")
        if seed == first and os.path.exists(saved_path):
          with open(saved_path) as f:
            saved = json.load(f)
          curves.setdefault("original", saved["original"])
          curves.setdefault("retrained", saved["retrained"])
          curves[method] = saved["unlearned"]
        u = report["models"]["unlearned"]
        print(f"{setting} seed {seed} {method}: rcd {u.get('rcd_steps')} "
              f"gap {u['avg_gap']:.4f}", flush=True)
        write(setting, rows, order, seeds, kept, notes, curves, first)


def write(setting: str, rows: list[dict], order, seeds, kept, notes, curves,
          first: int) -> None:
  from jaxunlearn.metrics.rcd import plot_curves
  rows.sort(key=lambda r: (order.index(r["method"]), r["seed"]))
  table = aggregate(rows, "method", COLUMNS)
  head = (f"Fashion-MNIST, cnn28 (configs/fashion_mnist.py), {setting}; seeds "
          f"with results {seeds_phrase(rows, seeds, kept)}; mean ± std. RCD: the "
          "library's protocol (jaxunlearn/metrics/rcd.py defaults: SGD lr "
          f"0.01, momentum 0.9, batch 32; threshold = the original's forget "
          f"accuracy minus 0.05) with a budget of {RCD_STEPS} steps "
          "(RCD_STEPS says why); rcd_reached: the fraction of runs whose "
          "relearning reached the threshold within it. Produced by "
          "`python experiments/fmnist_ieu.py`.")
  write_tables(f"fmnist_ieu_{setting}", f"Fashion-MNIST: IEU and relearning "
               f"delay, {setting}", table, "method", COLUMNS, rows,
               [head, "", *verdict(table), *(f"- {n}" for n in notes)])
  if curves:
    plot_curves(curves, os.path.join(RESULTS, f"fmnist_ieu_{setting}_curves.png"),
                title=f"Relearning on D_f ({setting}, seed {first})")


if __name__ == "__main__":
  main()
