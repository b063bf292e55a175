"""Per-example gradient statistics on CPU: all of a batch's examples at once
(``vmap``) against one after another (``scan``), for the predictive Fisher
of Fisher forgetting's released form and the empirical Fisher
(``jaxunlearn.methods._stats``). Not a test.

For each model (the Fashion-MNIST studies' ``cnn28`` at 28x28, the digits'
``small_cnn`` at 8x8), statistic and mode: images/s of the whole jitted,
sharded pass over ``--examples`` random images in batches of 64 (the Fisher
config's batch size), median over ``--repeats`` passes after a warm-up
pass that compiles, and the largest relative difference of the two modes'
results (float32 summation order only).

Run: PYTHONPATH=. nice -n 19 python benchmarks/fisher_per_example.py [--examples 512]
Writes benchmarks/results/fisher_per_example.{json,meta.json,md}.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import cpu_name, median_seconds, write_results  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxunlearn import parallel  # noqa: E402
from jaxunlearn.batches import Split  # noqa: E402
from jaxunlearn.methods import _stats  # noqa: E402
from jaxunlearn.models import get_model, init_variables  # noqa: E402

MODELS = [("cnn28", (28, 28, 1)), ("small_cnn", (8, 8, 1))]
STATISTICS = [("predictive Fisher", _stats.predictive_fisher_diagonal),
              ("empirical Fisher", _stats.fisher_diagonal)]
MODES = ("vmap", "scan")
BATCH = 64


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  mesh = parallel.make_mesh(1)
  rng = np.random.default_rng(0)
  rows = []
  for name, shape in MODELS:
    model = get_model(name, num_classes=10, mean=(0.5,), std=(0.25,))
    variables = init_variables(model, shape, jax.random.key(0))
    split = Split(rng.integers(0, 256, (args.examples,) + shape, dtype=np.uint8),
                  rng.integers(0, 10, args.examples).astype(np.int32),
                  np.arange(args.examples, dtype=np.int64))
    for statistic, fn in STATISTICS:
      results, seconds = {}, {}
      for mode in MODES:
        run = lambda: fn(model, variables, split, BATCH, mesh, per_example=mode)
        results[mode] = run()
        seconds[mode] = median_seconds(run, args.repeats)
      diff = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-30))
                 for a, b in zip(jax.tree.leaves(results["vmap"]),
                                 jax.tree.leaves(results["scan"])))
      row = {"model": name, "input": list(shape), "statistic": statistic,
             "examples": args.examples, "batch": BATCH,
             "vmap_img_s": args.examples / seconds["vmap"],
             "scan_img_s": args.examples / seconds["scan"],
             "speedup": seconds["vmap"] / seconds["scan"],
             "max_rel_diff": diff}
      rows.append(row)
      print(f"{name} {statistic}: vmap {row['vmap_img_s']:.0f} img/s, scan "
            f"{row['scan_img_s']:.0f} img/s (x{row['speedup']:.2f}), "
            f"max rel. diff {diff:.1e}", flush=True)
  meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "jax": jax.__version__,
          "devices": 1, "examples": args.examples, "repeats": args.repeats}
  md = ["# Per-example statistics on CPU: vmap vs scan", "",
        f"{meta['cpu']}, {meta['cores']} cores, jax {jax.__version__}, one "
        f"device; {args.examples} random images, batch {BATCH}, median of "
        f"{args.repeats} passes after a compiling one.", "",
        "| model | statistic | vmap img/s | scan img/s | scan speed-up | max rel. diff |",
        "|---|---|---|---|---|---|"]
  md += [f"| {r['model']} {r['input'][0]}x{r['input'][1]} | {r['statistic']} | "
         f"{r['vmap_img_s']:.0f} | {r['scan_img_s']:.0f} | {r['speedup']:.2f}x | "
         f"{r['max_rel_diff']:.1e} |" for r in rows]
  write_results("fisher_per_example", rows, meta, md)


if __name__ == "__main__":
  main()
