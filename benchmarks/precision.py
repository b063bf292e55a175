"""Mixed precision on the digits: float32 against bfloat16
(``config.model.dtype``) for the default DELETE job and the digits runs of
L2UL, DLFD and IEU, seeds 0, 1, 2 (not a test).

Each run is ``jaxunlearn.run.run`` with the config file's settings and one
dtype for everything the run trains (the original model too), without the
retrained model and with the accuracy evaluator only: the numbers compared
are the unlearned model's test and forget accuracy, and the wall times. One
workdir per (seed, dtype): DELETE, L2UL and IEU share their original model
(the same recipe, trained once); DLFD's config trains its own. Each
invocation starts an empty XLA compilation cache, so neither dtype loads
programs an earlier run compiled (within an invocation, later runs load the
first's). Runs already recorded in ``precision.runs.json`` are reused
(``--fresh`` runs them again), so seeds can be added in later invocations.

Acceptance (issue #26): bfloat16's mean test accuracy within 0.5 points and
mean forget accuracy within 1 point of float32's.

Run: PYTHONPATH=. nice -n 10 python benchmarks/precision.py [--seeds 0,1,2]
     [--methods delete,l2ul,dlfd,ieu] [--fresh]
Writes benchmarks/results/precision.{json,md} (and precision.runs.json).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
sys.path.insert(0, os.path.dirname(HERE))

CONFIGS = {"delete": "delete_digits.py", "l2ul": "l2ul_digits.py",
           "dlfd": "dlfd_digits.py", "ieu": "ieu_digits.py"}
DTYPES = ("float32", "bfloat16")
TARGET = {"test_acc": 0.5, "forget_acc": 1.0}  # points


def config_for(method: str, dtype: str, seed: int, data_dir: str):
  from jaxunlearn import config as config_lib
  cfg = config_lib.load_file(os.path.join(config_lib.CONFIGS_DIR, CONFIGS[method]))
  cfg.model.dtype = dtype
  cfg.seed = seed
  cfg.with_retrained = False
  cfg.eval.evaluators = ("accuracy",)
  cfg.eval.method_evaluators = False
  cfg.progress = False
  if data_dir:
    cfg.data_dir = data_dir
  return cfg


def run_one(method: str, dtype: str, seed: int, workdir: str, data_dir: str) -> dict:
  from jaxunlearn import run as run_lib
  cfg = config_for(method, dtype, seed, data_dir)
  start = time.perf_counter()
  report = run_lib.run(cfg, os.path.join(workdir, f"seed{seed}-{dtype}"),
                       log=lambda *_: None)
  unlearned, original = report["models"]["unlearned"], report["models"]["original"]
  return dict(method=method, dtype=dtype, seed=seed,
              test_acc=unlearned["test_acc"], forget_acc=unlearned["forget_acc"],
              retain_acc=unlearned["retain_acc"],
              original_test_acc=original["test_acc"],
              original_forget_acc=original["forget_acc"],
              unlearn_s=report["runtime_s"]["unlearn"],
              pretrain_s=report["runtime_s"]["pretrain"],
              evaluate_s=report["runtime_s"]["evaluate"],
              run_s=time.perf_counter() - start,
              method_stats={k: v for k, v in (report.get("method_stats") or {}).items()
                            if k in ("steps", "stopped", "synth_steps", "max_steps")})


def mean_std(values):
  values = list(values)
  return statistics.fmean(values), (statistics.pstdev(values) if len(values) > 1 else 0.0)


def summarise(runs: list[dict], methods, seeds) -> dict:
  """Per method: per dtype means ± std (ddof 0) over the seeds, the
  bfloat16 - float32 differences in points, the slowdowns, the verdict."""
  out = {}
  for method in methods:
    rows = {}
    for dtype in DTYPES:
      mine = [r for r in runs if r["method"] == method and r["dtype"] == dtype
              and r["seed"] in seeds]
      if len(mine) != len(seeds):
        break
      rows[dtype] = {key: mean_std(r[key] for r in mine) for key in (
          "test_acc", "forget_acc", "retain_acc", "original_test_acc",
          "unlearn_s", "pretrain_s")}
    if len(rows) < 2:
      continue
    f32, bf16 = rows["float32"], rows["bfloat16"]
    diff = {k: 100 * (bf16[k][0] - f32[k][0]) for k in ("test_acc", "forget_acc",
                                                         "original_test_acc")}
    out[method] = dict(
        rows=rows, diff_points=diff,
        slowdown={k: bf16[k][0] / f32[k][0] for k in ("unlearn_s", "pretrain_s")},
        met={k: abs(diff[k]) <= TARGET[k] for k in TARGET})
  return out


def markdown(summary: dict, seeds, platform: dict) -> str:
  lines = [
      "# Mixed precision on the digits: float32 vs bfloat16",
      "",
      f"`benchmarks/precision.py`; seeds {', '.join(map(str, seeds))}; "
      f"{platform.get('devices')} {platform.get('backend')} device(s), jax "
      f"{platform.get('jax')}; mean ± std over the seeds. Every model of a run "
      "(the original too) is trained in the run's dtype; accuracy evaluator only, "
      "no retrained model. Times: the unlearning phase, and the pretraining of "
      "the original it starts from (DELETE, L2UL and IEU share one; on a 2-core "
      "machine shared with other jobs, so compare within a row).",
      "",
      "| method | dtype | test acc | forget acc | original test acc | unlearn s | pretrain s |",
      "|---|---|---|---|---|---|---|"]
  fmt = lambda v, scale=1.0, digits=4: f"{v[0] * scale:.{digits}f} ± {v[1] * scale:.{digits}f}"
  for method, s in summary.items():
    for dtype in DTYPES:
      r = s["rows"][dtype]
      lines.append(f"| {method} | {dtype} | {fmt(r['test_acc'])} | {fmt(r['forget_acc'])} "
                   f"| {fmt(r['original_test_acc'])} | {fmt(r['unlearn_s'], digits=1)} "
                   f"| {fmt(r['pretrain_s'], digits=1)} |")
  lines += ["", "bfloat16 - float32 (points of accuracy; target: test within "
            f"±{TARGET['test_acc']}, forget within ±{TARGET['forget_acc']}), and "
            "bfloat16's time / float32's:", "",
            "| method | test acc | forget acc | original test acc | target met | "
            "unlearn time | pretrain time |", "|---|---|---|---|---|---|---|"]
  for method, s in summary.items():
    d, slow = s["diff_points"], s["slowdown"]
    met = "yes" if all(s["met"].values()) else (
        "no (" + ", ".join(k for k, ok in s["met"].items() if not ok) + ")")
    lines.append(f"| {method} | {d['test_acc']:+.2f} | {d['forget_acc']:+.2f} | "
                 f"{d['original_test_acc']:+.2f} | {met} | {slow['unlearn_s']:.2f}x | "
                 f"{slow['pretrain_s']:.2f}x |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--methods", default=",".join(CONFIGS))
  parser.add_argument("--workdir", default="",
                      help="where the runs' checkpoints go (default: a temp dir)")
  parser.add_argument("--data-dir", default="")
  parser.add_argument("--fresh", action="store_true",
                      help="run again what precision.runs.json holds")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  methods = [m for m in args.methods.split(",") if m]
  os.makedirs(RESULTS, exist_ok=True)
  runs_path = os.path.join(RESULTS, "precision.runs.json")
  runs = []
  if os.path.exists(runs_path) and not args.fresh:
    with open(runs_path) as f:
      runs = json.load(f)
  done = {(r["method"], r["dtype"], r["seed"]) for r in runs}
  workdir = args.workdir or tempfile.mkdtemp(prefix="precision-")
  import jax
  jax.config.update("jax_compilation_cache_dir",
                    tempfile.mkdtemp(prefix="precision-xla-"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  # The dtypes alternate, so load on the shared machine drifts over both.
  for seed in seeds:
    for method in methods:
      for dtype in DTYPES:
        if (method, dtype, seed) in done:
          continue
        record = run_one(method, dtype, seed, workdir, args.data_dir)
        runs = [r for r in runs if (r["method"], r["dtype"], r["seed"])
                != (method, dtype, seed)] + [record]
        with open(runs_path, "w") as f:
          json.dump(runs, f, indent=1)
        print(f"{method:6s} {dtype:8s} seed {seed}: test {record['test_acc']:.4f} "
              f"forget {record['forget_acc']:.4f} unlearn {record['unlearn_s']:.1f}s "
              f"pretrain {record['pretrain_s']:.1f}s", flush=True)
  from jaxunlearn import parallel
  platform = parallel.describe()
  summary = summarise(runs, methods, seeds)
  text = markdown(summary, seeds, platform)
  print(text)
  with open(os.path.join(RESULTS, "precision.md"), "w") as f:
    f.write(text)
  with open(os.path.join(RESULTS, "precision.json"), "w") as f:
    json.dump(dict(seeds=seeds, platform=platform, target_points=TARGET,
                   summary=summary, runs=[r for r in runs if r["seed"] in seeds
                                          and r["method"] in methods]), f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
