"""Study 2 of the Fashion-MNIST proving ground: L2UL, instance-wise
forgetting of k random training samples.

  python experiments/fmnist_l2ul.py [--seeds 0,1,2] [--ks 16,64,128]
                                    [--variants full,adv,ga] [--no-retrained]
                                    [--continual] [--committed-seeds S,...]

Settings: configs/l2ul_fashion_mnist.py (on configs/fashion_mnist.py).
For each seed and k, the full method, ``adv`` (no weight importance) and
``ga`` (gradient ascent only: the paper's baseline) run to the same stop
rule (none of the k classified as its label, or the budget) with the same
lr; the table gives steps, whether the rule was met, forget accuracy, the
test accuracy drop from the original, and time. The paper's claim (Cha et
al., "Learning to Unlearn", AAAI 2024): all k misclassified at the stop
rule, with a test accuracy drop much smaller than gradient ascent's.

``--no-retrained`` skips the retrained reference (one full training per k
and seed, for a forget set of at most 128 of 60,000 samples); rel_time then
divides by the original's pretraining time. ``--continual`` runs instead the
continual setting: 4 deletion requests of 16 random training samples each
(drawn with the seed's key), applied one after another to the seed's
original model (``l2ul.continual``), each stop rule covering every sample
forgotten so far; per request: steps, test accuracy, accuracy on all
samples forgotten so far (experiments/results/fmnist_l2ul_continual.*).

Resumable (experiments/fmnist_common.py). Writes
experiments/results/fmnist_l2ul.{md,csv,json}.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import aggregate, means, verdict_line, write_tables  # noqa: E402
from fmnist_common import (committed, merge, original_model,  # noqa: E402
                           parse_seeds, run_or_note, seed_args,
                           seeds_phrase)

from jaxunlearn import config as config_lib  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                      "configs", "l2ul_fashion_mnist.py")
COLUMNS = ("steps", "stopped", "forget_acc", "test_acc", "test_drop",
           "unlearn_s", "rel_time")


def run_config(seed: int, k: int, variant: str, retrained: bool = True):
  """The study's config of one run (the audit's k = 128 setting too)."""
  cfg = config_lib.load_file(f"{CONFIG}:{k}")
  cfg.seed, cfg.progress = seed, False
  cfg.l2ul.variant = variant
  cfg.with_retrained = retrained
  return cfg


def run_one(seed: int, k: int, variant: str, retrained: bool,
            failed: list) -> dict | None:
  """The run's report, or None with the reason in ``failed`` (a divergence
  is a result of the study, not its end)."""
  cfg = run_config(seed, k, variant, retrained)
  return run_or_note(cfg, f"l2ul-k{k}-{variant}", failed,
                     f"k={k} {variant} (seed {seed})")


def rows_for(report: dict, seed: int, k: int, variant: str) -> list[dict]:
  times = report["runtime_s"]
  reference = times.get("retrain") or times.get("pretrain")
  original = report["models"]["original"]
  out = []
  for role, name in (("unlearned", variant), ("original", "original"),
                     ("retrained", "retrained")):
    m = report["models"].get(role)
    if m is None:
      continue
    stats = (report.get("method_stats") or {}) if role == "unlearned" else {}
    seconds = {"unlearned": times.get("unlearn"), "retrained": times.get("retrain")}.get(role)
    out.append(dict(method=f"k={k} {name}", setting=f"k{k}", seed=seed,
                    steps=stats.get("steps"),
                    stopped=(float(stats["stopped"]) if "stopped" in stats else None),
                    forget_acc=m["forget_acc"], test_acc=m["test_acc"],
                    test_drop=original["test_acc"] - m["test_acc"],
                    unlearn_s=seconds,
                    rel_time=seconds / reference if seconds is not None and reference else None))
  return out


def verdict(table: list[dict]) -> list[str]:
  """The paper's claim per k, on the means: the full method met its stop rule
  in every run, and its test accuracy drop is at most half of gradient
  ascent's ("much smaller")."""
  by = means(table)
  lines = []
  for k in sorted({m.split()[0] for m in by if m.startswith("k=")},
                  key=lambda s: int(s[2:])):
    full, ga = by.get(f"{k} full"), by.get(f"{k} ga")
    if full is None or ga is None:
      continue
    parts = [f"{k}: full met the stop rule in {full['stopped']:.0%} of runs, "
             f"forget_acc {full['forget_acc']:.3f}",
             f"test drop {full['test_drop']:.3f} vs gradient ascent's "
             f"{ga['test_drop']:.3f}"]
    ok = [full["stopped"] == 1.0, full["test_drop"] <= 0.5 * ga["test_drop"]]
    lines.append(verdict_line(ok, parts))
  return lines


REQUESTS, REQUEST_SIZE = 4, 16


def continual(seeds, kept=(), variant: str = "full") -> None:
  """The continual setting on each seed's original model (module docstring),
  beside the committed rows of the seeds ``kept``."""
  import jax
  import numpy as np
  from jaxunlearn.methods import UnlearnTask, l2ul
  rows, _ = committed("fmnist_l2ul_continual", kept)
  for seed in seeds:
    cfg = config_lib.load_file(f"{CONFIG}:{REQUEST_SIZE}")
    cfg.seed, cfg.progress = seed, False
    cfg.l2ul.variant = variant
    task, loaded, model, original, keys, mesh = original_model(cfg)
    pool = loaded.train.ids
    chosen = np.asarray(jax.random.choice(
        jax.random.fold_in(keys.unlearn, 4), len(pool),
        (REQUESTS * REQUEST_SIZE,), replace=False))
    requests = [pool[chosen[i * REQUEST_SIZE:(i + 1) * REQUEST_SIZE]]
                for i in range(REQUESTS)]
    unlearn_task = UnlearnTask(model, original, loaded.data, loaded.num_classes,
                               loaded.image_shape, mesh, loaded.augment,
                               cfg.train, progress=False)
    _, per_request = l2ul.continual(unlearn_task, cfg.l2ul, keys.unlearn, requests)
    for r in per_request:
      rows.append(dict(method=f"request {r['request']}", seed=seed,
                       **{c: float(r[c]) for c in ("steps", "stopped", "test_acc",
                                                  "forgotten_so_far_acc")}))
      print(rows[-1], flush=True)
    write_continual(rows, seeds, kept, variant)
  if rows and not seeds:
    write_continual(rows, seeds, kept, variant)


def write_continual(rows: list[dict], seeds, kept, variant: str) -> None:
  rows.sort(key=lambda r: (r["method"], r["seed"]))
  columns = ("steps", "stopped", "test_acc", "forgotten_so_far_acc")
  write_tables("fmnist_l2ul_continual", "Fashion-MNIST: L2UL, continual "
               f"requests ({REQUESTS} of {REQUEST_SIZE})",
               aggregate(rows, "method", columns), "method", columns, rows,
               [f"configs/l2ul_fashion_mnist.py, variant {variant}; seeds "
                f"{seeds_phrase(rows, seeds, kept)}; mean ± std. Each "
                "request starts from the model the previous one left; stopped: its "
                "stop rule (none of the samples forgotten so far classified as its "
                "label) held within the budget; test_acc on the whole test split. "
                "Produced by `python experiments/fmnist_l2ul.py --continual`."])


ROLES = ("original", "retrained", "full", "adv", "ga")


def row_order(row: dict) -> tuple:
  """Per k: the reference rows, then the variants; seeds in order."""
  k, role = row["method"].split(" ", 1)
  return (int(k.removeprefix("k=")), ROLES.index(role) if role in ROLES
          else len(ROLES), role, row["seed"])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  seed_args(parser)
  parser.add_argument("--ks", default="16,64,128")
  parser.add_argument("--variants", default="full,adv,ga")
  parser.add_argument("--no-retrained", action="store_true")
  parser.add_argument("--continual", action="store_true")
  args = parser.parse_args(argv)
  seeds, kept = parse_seeds(args)
  if args.continual:
    return continual(seeds, kept)
  ks, variants = [int(k) for k in args.ks.split(",")], args.variants.split(",")
  # notes: the runs that failed
  rows, notes = committed("fmnist_l2ul", kept, [
      f"k={k} {role}" for k in ks for role in ("original", "retrained", *variants)])
  if rows:
    write(rows, seeds, kept, args.no_retrained, notes)
  for seed in seeds:
    for k in ks:
      for variant in variants:
        report = run_one(seed, k, variant, not args.no_retrained, notes)
        if report is not None:
          merge(rows, rows_for(report, seed, k, variant))
          u = report["models"]["unlearned"]
          print(f"seed {seed} k {k} {variant}: forget {u['forget_acc']:.3f} "
                f"test {u['test_acc']:.4f} {report.get('method_stats')}", flush=True)
        if rows:
          write(rows, seeds, kept, args.no_retrained, notes)


def write(rows: list[dict], seeds, kept, no_retrained: bool, notes) -> None:
  rows.sort(key=row_order)
  table = aggregate(rows, "method", COLUMNS)
  head = (f"Fashion-MNIST, cnn28, configs/l2ul_fashion_mnist.py; seeds with "
          f"results {seeds_phrase(rows, seeds, kept)}; mean ± std. stopped: the "
          "fraction of runs that met the stop rule (all k misclassified) "
          "within the budget. test_drop: original test accuracy minus "
          "this model's. rel_time: unlearn_s / the retraining time"
          + (" (here the pretraining time: --no-retrained)" if no_retrained
             else "") + ". Produced by `python experiments/fmnist_l2ul.py`.")
  write_tables("fmnist_l2ul", "Fashion-MNIST: L2UL, k random samples",
               table, "method", COLUMNS, rows,
               [head, "", *verdict(table), *(f"- {n}" for n in notes)])


if __name__ == "__main__":
  main()
