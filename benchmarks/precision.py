"""Mixed precision: float32 against bfloat16 (``config.model.dtype``) for
the default DELETE job and the digits runs of L2UL, DLFD and IEU, seeds 0,
1, 2 (not a test); ``--dataset fashion_mnist`` runs the Fashion-MNIST
settings of the same four instead (DELETE class 3, L2UL k = 16, DLFD a
random 10%, IEU a random 30%, each with configs/fashion_mnist.py and its
tuning).

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
On Fashion-MNIST the float32 runs use the studies' workdir of the seed
(experiments/.work/fmnist-seed<S>), whose float32 original model the studies
have trained already; the bfloat16 runs use ``--workdir`` (default
experiments/.work/precision-fmnist, kept: a pretraining costs ~6 minutes).

Acceptance (issue #26): bfloat16's mean test accuracy within 0.5 points and
mean forget accuracy within 1 point of float32's.

``--diagnose`` (with the ``--workdir`` of the runs, whose float32 originals
it reuses) separates the causes of a difference, per method and seed, from
the float32 original: the unlearning in float32 (the run's own numbers), the
unlearning in bfloat16 (evaluated in float32 and in bfloat16), and the
unlearning in float32 from the original with every parameter moved by one
float32 ulp (how far the method's outcome moves for a last-bit change of
its start: the noise floor any precision change has to be read against),
and the unlearning in float32 from the original rounded to bfloat16 (a
change of the start as large as bfloat16's rounding, with every step after
it in float32: whether the method's outcome is stable at that scale at
all). Methods that report a step count (L2UL, DLFD) record it per variant.
Diagnoses are kept per (method, seed), so a later ``--diagnose`` for some
methods or seeds replaces only those.

``--throughput``: images/s of the training step, float32 vs bfloat16, for
the digits CNN and two larger models (median of interleaved blocks).

``--rounding-check`` runs the same jobs in float32 with XLA's default CPU
kernels instead of the YNNPACK fusions ``run`` turns on
(``cpu_ynn_fusions=false``, in a fresh workdir): a float32 rounding-level
change of every operation, pretraining included, recorded as the variant
``float32_noynn``; how far it moves the results is the floor against which
bfloat16's differences are read.

Run: PYTHONPATH=. nice -n 10 python benchmarks/precision.py [--seeds 0,1,2]
     [--methods delete,l2ul,dlfd,ieu] [--fresh] [--diagnose --workdir DIR]
     [--throughput] [--rounding-check]
Writes benchmarks/results/precision.{json,md} (and precision.runs.json,
precision.diagnosis.json, precision.throughput.json); with ``--dataset
fashion_mnist``, the same files named precision_fashion_mnist.*.
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
sys.path.insert(0, HERE)
from _timing import write_text  # noqa: E402  (atomic: runs resume from it)

# dataset -> method -> (config file, forget setting overrides)
SETTINGS = {
    "digits": {"delete": ("delete_digits.py", {}), "l2ul": ("l2ul_digits.py", {}),
               "dlfd": ("dlfd_digits.py", {}), "ieu": ("ieu_digits.py", {})},
    "fashion_mnist": {
        "delete": ("fashion_mnist.py:delete", {}),
        "l2ul": ("l2ul_fashion_mnist.py:16", {}),
        "dlfd": ("fashion_mnist.py:dlfd", dict(kind="random", fraction=0.1)),
        "ieu": ("fashion_mnist.py:ieu", dict(kind="random", fraction=0.3))},
}
METHODS = ("delete", "l2ul", "dlfd", "ieu")
EXPERIMENTS_WORK = os.path.join(os.path.dirname(HERE), "experiments", ".work")
DTYPES = ("float32", "bfloat16")
TARGET = {"test_acc": 0.5, "forget_acc": 1.0}  # points


NOYNN = "float32_noynn"  # --rounding-check's variant


def config_for(method: str, dtype: str, seed: int, data_dir: str,
               dataset: str = "digits"):
  from jaxunlearn import config as config_lib
  file, forget = SETTINGS[dataset][method]
  cfg = config_lib.load_file(os.path.join(config_lib.CONFIGS_DIR, file))
  cfg.forget.update(forget)
  cfg.model.dtype = "float32" if dtype == NOYNN else dtype
  if dtype == NOYNN:
    cfg.cpu_ynn_fusions = "false"
  cfg.seed = seed
  cfg.with_retrained = False
  cfg.eval.evaluators = ("accuracy",)
  cfg.eval.method_evaluators = False
  cfg.progress = False
  if data_dir:
    cfg.data_dir = data_dir
  return cfg


def run_workdir(workdir: str, seed: int, dtype: str, dataset: str) -> str:
  """Where (seed, dtype) runs: Fashion-MNIST's float32 runs in the studies'
  workdir of the seed (its original model is trained there once)."""
  if dataset == "fashion_mnist" and dtype == "float32":
    return os.path.join(EXPERIMENTS_WORK, f"fmnist-seed{seed}")
  return os.path.join(workdir, f"seed{seed}-{dtype}")


def run_one(method: str, dtype: str, seed: int, workdir: str, data_dir: str,
            dataset: str = "digits") -> dict:
  from jaxunlearn import run as run_lib
  cfg = config_for(method, dtype, seed, data_dir, dataset)
  start = time.perf_counter()
  report = run_lib.run(cfg, run_workdir(workdir, seed, dtype, dataset),
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
  bfloat16 - float32 differences in points, the verdict, and the times:
  the first seed's (cold: the process starts, everything compiles) and the
  mean of the later ones (warm: the programs come from the compilation
  cache), with bfloat16's / float32's of the warm ones."""
  out = {}
  for method in methods:
    rows = {}
    for dtype in DTYPES:
      mine = sorted((r for r in runs if r["method"] == method and r["dtype"] == dtype
                     and r["seed"] in seeds), key=lambda r: seeds.index(r["seed"]))
      if len(mine) != len(seeds):
        break
      rows[dtype] = {key: mean_std(r[key] for r in mine) for key in (
          "test_acc", "forget_acc", "retain_acc", "original_test_acc")}
      warm = mine[1:] or mine
      for key in ("unlearn_s", "pretrain_s"):
        rows[dtype][key] = dict(cold=mine[0][key],
                                warm=statistics.fmean(r[key] for r in warm))
    if len(rows) < 2:
      continue
    f32, bf16 = rows["float32"], rows["bfloat16"]
    diff = {k: 100 * (bf16[k][0] - f32[k][0]) for k in ("test_acc", "forget_acc",
                                                         "original_test_acc")}
    noynn = [r for r in runs if r["method"] == method and r["dtype"] == NOYNN
             and r["seed"] in seeds]
    if len(noynn) == len(seeds):
      rows[NOYNN] = {key: mean_std(r[key] for r in noynn) for key in (
          "test_acc", "forget_acc", "original_test_acc")}
      f32_runs = {r["seed"]: r for r in runs if r["method"] == method
                  and r["dtype"] == "float32"}
      b16_runs = {r["seed"]: r for r in runs if r["method"] == method
                  and r["dtype"] == "bfloat16"}
      per_seed = lambda other, key: statistics.fmean(
          100 * abs(other[r["seed"]][key] - r[key]) for r in noynn) if other else None
      diff["rounding"] = {k: 100 * (rows[NOYNN][k][0] - f32[k][0])
                          for k in ("test_acc", "forget_acc")}
      diff["rounding_per_seed"] = {k: per_seed(f32_runs, k)
                                   for k in ("test_acc", "forget_acc")}
      diff["bfloat16_per_seed"] = {k: statistics.fmean(
          100 * abs(b16_runs[r["seed"]][k] - f32_runs[r["seed"]][k]) for r in noynn)
          for k in ("test_acc", "forget_acc")}
    out[method] = dict(
        rows=rows, diff_points=diff,
        slowdown={k: bf16[k]["warm"] / f32[k]["warm"] for k in ("unlearn_s",
                                                                "pretrain_s")},
        met={k: abs(diff[k]) <= TARGET[k] for k in TARGET})
  return out


def diagnose(method: str, seed: int, workdir: str, data_dir: str,
             dataset: str = "digits") -> dict:
  """Test and forget accuracy of the unlearned model, all from the float32
  run's original (``--diagnose`` in the module docstring)."""
  import jax
  import numpy as np
  from jaxunlearn import batches, parallel
  from jaxunlearn import run as run_lib
  from jaxunlearn.methods import METHODS, UnlearnTask
  from jaxunlearn.metrics.predict import accuracy, make_predict_fn
  from jaxunlearn.tasks import TASKS
  from jaxunlearn.train import train_model
  cfg = {d: config_for(method, d, seed, data_dir, dataset) for d in DTYPES}
  c = cfg["float32"]
  task = TASKS.get("classification")
  keys = task.keys(jax.random.key(seed))
  loaded = task.load(c, jax.random.key(seed), keys.split)
  mesh = parallel.make_mesh(None)
  models = {d: task.build_model(cfg[d], loaded) for d in DTYPES}
  base = run_lib.trained_fingerprint(c, task, loaded)
  directory = os.path.join(run_workdir(workdir, seed, "float32", dataset),
                           "checkpoints", f"original-{run_lib.fingerprint(*base)}")
  original = train_model(models["float32"], c.train, loaded.train, loaded.image_shape,
                         keys.pretrain, mesh, augment=loaded.augment,
                         checkpoint_dir=directory, progress=False,
                         make_step=task.train_step(c))[0]
  rng = np.random.default_rng(seed)
  one_ulp = lambda x: np.nextafter(x, np.where(rng.random(x.shape) < 0.5, -np.inf,
                                               np.inf)).astype(x.dtype)
  nudged = dict(original, params=jax.tree.map(one_ulp, original["params"]))
  rounded = dict(original, params=jax.tree.map(
      lambda x: np.asarray(x).astype(jax.numpy.bfloat16).astype(x.dtype),
      original["params"]))
  data = loaded.data
  test = batches.concat([data.test_forget, data.test_retain])

  def unlearn(variables, dtype):
    unlearn_task = UnlearnTask(
        model=models[dtype], variables=variables, data=data,
        num_classes=loaded.num_classes, image_shape=loaded.image_shape, mesh=mesh,
        augment=loaded.augment, train_config=c.train, progress=False)
    return METHODS.get(method).unlearn(unlearn_task, c[method], keys.unlearn)

  def scores(unlearned, dtype):
    variables, info = unlearned
    predict_fn = make_predict_fn(models[dtype], mesh)
    out = {split: accuracy(predict_fn, variables, part, 256, mesh)
           for split, part in (("test_acc", test), ("forget_acc", data.forget))}
    return out | ({"steps": int(info["steps"])} if "steps" in info else {})
  f32, bf16, from_nudged, from_rounded = (
      unlearn(original, "float32"), unlearn(original, "bfloat16"),
      unlearn(nudged, "float32"), unlearn(rounded, "float32"))
  return dict(method=method, seed=seed,
              float32=scores(f32, "float32"),
              bfloat16_eval_float32=scores(bf16, "float32"),
              bfloat16=scores(bf16, "bfloat16"),
              float32_eval_bfloat16=scores(f32, "bfloat16"),
              float32_one_ulp=scores(from_nudged, "float32"),
              float32_bfloat16_start=scores(from_rounded, "float32"))


DIAGNOSIS = (("float32", "float32 (the run's)"),
             ("bfloat16", "bfloat16"),
             ("bfloat16_eval_float32", "bfloat16, evaluated in float32"),
             ("float32_eval_bfloat16", "float32, evaluated in bfloat16"),
             ("float32_one_ulp", "float32 from the original moved 1 ulp"),
             ("float32_bfloat16_start", "float32 from the original rounded to bfloat16"))


def cell(entry: dict, key: str) -> str:
  """A diagnosis table cell: test accuracy, with the step count where the
  method reports one; "—" for a variant that diagnosis did not run."""
  if key not in entry:
    return "—"
  steps = entry[key].get("steps")
  return f"{entry[key]['test_acc']:.4f}" + (f" ({steps})" if steps is not None else "")


def seeds_mean(values: list, seeds: int, scale: float = 1.0, digits: int = 4) -> str:
  """A diagnosis mean over the seeds a variant ran on (of ``seeds``), saying
  how many where not all; "—" where none."""
  if not values:
    return "—"
  partial = "" if len(values) == seeds else f" ({len(values)} of {seeds} seeds)"
  return f"{scale * statistics.fmean(values):.{digits}f}{partial}"


def step_throughput(name: str, options: dict, shape: tuple, batch: int, dtype: str,
                    steps: int = 10) -> float:
  """images/s of one block of ``steps`` training steps (compiled before)."""
  import jax
  import numpy as np
  import optax
  from jaxunlearn import parallel
  from jaxunlearn.models import get_model, init_variables
  from jaxunlearn.state import TrainState
  from jaxunlearn.train import make_supervised_step
  key = (name, tuple(sorted(options.items())), shape, batch, dtype)
  if key not in _STEPS:
    model = get_model(name, num_classes=10, mean=(0.5,) * shape[-1],
                      std=(0.25,) * shape[-1], dtype=dtype, **options)
    tx = optax.sgd(0.01, momentum=0.9)
    mesh = parallel.make_mesh(1)
    state = parallel.replicate(TrainState.create(
        init_variables(model, shape, jax.random.key(0)), tx), mesh)
    rng = np.random.default_rng(0)
    data = parallel.shard_batch({"image": rng.random((batch, *shape), np.float32),
                                 "label": rng.integers(0, 10, batch).astype(np.int32),
                                 "mask": np.ones(batch, np.float32)}, mesh)
    step = parallel.jit_step(make_supervised_step(model, tx), mesh)
    step_key = jax.device_put(jax.random.key(1), parallel.replicated(mesh))
    state = jax.block_until_ready(step(state, data, step_key)[0])  # compile
    _STEPS[key] = [step, state, data, step_key]
  step, state, data, step_key = _STEPS[key]
  start = time.perf_counter()
  for _ in range(steps):
    state, _ = step(state, data, step_key)
  jax.block_until_ready(state)
  _STEPS[key][1] = state
  return steps * batch / (time.perf_counter() - start)


_STEPS: dict = {}
THROUGHPUT = (("small_cnn", {}, (8, 8, 1), 64),
              ("cnn28", {}, (28, 28, 1), 128),
              ("resnet18", {"stem": "cifar"}, (32, 32, 3), 32))


def throughput(blocks: int = 7) -> list[dict]:
  """Median images/s of each case, the dtypes' blocks interleaved."""
  out = []
  for name, options, shape, batch in THROUGHPUT:
    speeds = {d: [] for d in DTYPES}
    for _ in range(blocks):
      for dtype in DTYPES:
        speeds[dtype].append(step_throughput(name, options, shape, batch, dtype))
    row = dict(model=name, shape=list(shape), batch=batch,
               **{f"{d}_img_s": statistics.median(speeds[d]) for d in DTYPES})
    row["bfloat16_over_float32"] = row["bfloat16_img_s"] / row["float32_img_s"]
    out.append(row)
    print(row, flush=True)
  return out


def decision_counts(runs: list[dict], seeds, dataset: str = "digits") -> list[str]:
  """Markdown rows: per seed, the steps L2UL's stop rule let run and the
  steps DLFD's gate made synthesis steps, per variant."""
  variants = [v for v in DTYPES + (NOYNN,) if any(r["dtype"] == v for r in runs)]
  rows = []
  for method, key in (("l2ul", "steps"), ("dlfd", "synth_steps")):
    for seed in seeds:
      got = {r["dtype"]: r for r in runs if r["method"] == method and r["seed"] == seed}
      if all(v in got for v in variants):
        rows.append(f"| {method} {key} | {seed} | " + " | ".join(
            f"{got[v]['method_stats'].get(key)} ({got[v]['test_acc']:.4f})"
            for v in variants) + " |")
  if not rows:
    return []
  gate = ("of 41; its gate synthesises while the forgetting score is >= 0.02, "
          "and the digits originals score about 0.03" if dataset == "digits" else
          "the steps its gate let synthesise")
  return (["", "The decisions behind the differences: L2UL's steps until its stop "
           f"rule held, DLFD's synthesis steps ({gate}), per seed and variant, "
           "with the test accuracy:", "",
           "| count | seed | " + " | ".join(variants) + " |",
           "|---|---|" + "---|" * len(variants)] + rows)


def markdown(summary: dict, seeds, platform: dict, diagnosis=None,
             speeds=None, runs=(), dataset: str = "digits") -> str:
  fmt = lambda v: f"{v[0]:.4f} ± {v[1]:.4f}"
  lines = [
      f"# Mixed precision on {'the digits' if dataset == 'digits' else dataset}: "
      "float32 vs bfloat16",
      "",
      f"`benchmarks/precision.py --dataset {dataset}`; seeds {', '.join(map(str, seeds))}; "
      f"{platform.get('devices')} {platform.get('backend')} device(s), jax "
      f"{platform.get('jax')}; mean ± std (ddof 0) over the seeds. Every model of "
      "a run (the original too) is trained in the run's dtype; accuracy "
      "evaluator only, no retrained model.",
      "",
      "| method | dtype | test acc | forget acc | original test acc |",
      "|---|---|---|---|---|"]
  for method, s in summary.items():
    for dtype in DTYPES:
      r = s["rows"][dtype]
      lines.append(f"| {method} | {dtype} | {fmt(r['test_acc'])} | "
                   f"{fmt(r['forget_acc'])} | {fmt(r['original_test_acc'])} |")
  lines += ["", "bfloat16 - float32, in points of accuracy (target: test within "
            f"±{TARGET['test_acc']}, forget within ±{TARGET['forget_acc']}):", "",
            "| method | test acc | forget acc | original test acc | target met |",
            "|---|---|---|---|---|"]
  for method, s in summary.items():
    d = s["diff_points"]
    met = "yes" if all(s["met"].values()) else (
        "no (" + ", ".join(k for k, ok in s["met"].items() if not ok) + ")")
    lines.append(f"| {method} | {d['test_acc']:+.2f} | {d['forget_acc']:+.2f} | "
                 f"{d['original_test_acc']:+.2f} | {met} |")
  lines += ["", "Wall time in seconds: the unlearning, and the pretraining of the "
            "original it starts from (DELETE, L2UL and IEU share one). Cold: the "
            f"first seed ({seeds[0]}), where the process starts and every program "
            "compiles (float32 runs first, so it also compiles the programs both "
            "dtypes share); warm: the mean of the later seeds, programs from the "
            "compilation cache. A 2-core machine shared with other jobs.", "",
            "| method | unlearn f32 cold / warm | unlearn bf16 cold / warm | "
            "bf16 / f32 warm | pretrain f32 cold / warm | pretrain bf16 cold / warm "
            "| bf16 / f32 warm |", "|---|---|---|---|---|---|---|"]
  for method, s in summary.items():
    t = lambda dtype, key: (f"{s['rows'][dtype][key]['cold']:.1f} / "
                            f"{s['rows'][dtype][key]['warm']:.1f}")
    lines.append(f"| {method} | {t('float32', 'unlearn_s')} | {t('bfloat16', 'unlearn_s')} "
                 f"| {s['slowdown']['unlearn_s']:.2f}x | {t('float32', 'pretrain_s')} "
                 f"| {t('bfloat16', 'pretrain_s')} | {s['slowdown']['pretrain_s']:.2f}x |")
  rounding = {m: s for m, s in summary.items() if "rounding" in s["diff_points"]}
  if rounding:
    lines += ["", "float32 against itself (`--rounding-check`): the same jobs with "
              "XLA's default CPU kernels instead of the YNNPACK fusions, a float32 "
              "rounding-level change of every operation, pretraining included. "
              "Points of accuracy: the difference of the means, and the mean "
              "per-seed |difference|, beside bfloat16's per-seed |difference| "
              "from float32:", "",
              "| method | test acc (means) | forget acc (means) | test acc per seed | "
              "forget acc per seed | bf16: test acc per seed | bf16: forget acc per "
              "seed |", "|---|---|---|---|---|---|---|"]
    for method, s in rounding.items():
      d = s["diff_points"]
      lines.append(
          f"| {method} | {d['rounding']['test_acc']:+.2f} | "
          f"{d['rounding']['forget_acc']:+.2f} | "
          f"{d['rounding_per_seed']['test_acc']:.2f} | "
          f"{d['rounding_per_seed']['forget_acc']:.2f} | "
          f"{d['bfloat16_per_seed']['test_acc']:.2f} | "
          f"{d['bfloat16_per_seed']['forget_acc']:.2f} |")
  lines += decision_counts(list(runs), seeds, dataset)
  if speeds:
    lines += ["", "Training step alone (`--throughput`: images/s, median of 7 "
              "interleaved blocks of 10 steps, one device):", "",
              "| model | input | batch | float32 img/s | bfloat16 img/s | bf16 / f32 |",
              "|---|---|---|---|---|---|"]
    for r in speeds:
      lines.append(f"| {r['model']} | {'x'.join(map(str, r['shape']))} | {r['batch']} "
                   f"| {r['float32_img_s']:.0f} | {r['bfloat16_img_s']:.0f} | "
                   f"{r['bfloat16_over_float32']:.2f}x |")
  if diagnosis:
    lines += ["", "Where a difference comes from (`--diagnose`): the unlearned "
              "model's test accuracy (with the method's step count where it "
              "reports one), every variant starting from the float32 run's "
              "original, per seed; — where that diagnosis did not run the "
              "variant:", "",
              "| method | seed | " + " | ".join(label for _, label in DIAGNOSIS) + " |",
              "|---|---|" + "---|" * len(DIAGNOSIS)]
    for d in sorted(diagnosis, key=lambda d: (d["seed"], list(METHODS).index(d["method"]))):
      lines.append(f"| {d['method']} | {d['seed']} | " + " | ".join(
          cell(d, key) for key, _ in DIAGNOSIS) + " |")
    lines += ["", "Means over the seeds, and the spread a change of the float32 "
              "start causes: mean |float32 - float32 from the changed original|, "
              "points, for a one-ulp move and for rounding to bfloat16:", "",
              "| method | " + " | ".join(label for _, label in DIAGNOSIS)
              + " | one-ulp spread | bfloat16-start spread |",
              "|---|" + "---|" * (len(DIAGNOSIS) + 2)]
    for method in sorted({d["method"] for d in diagnosis}, key=list(METHODS).index):
      mine = [d for d in diagnosis if d["method"] == method]
      means = [seeds_mean([d[key]["test_acc"] for d in mine if key in d], len(mine))
               for key, _ in DIAGNOSIS]
      spreads = [seeds_mean([abs(d["float32"]["test_acc"] - d[key]["test_acc"])
                             for d in mine if key in d], len(mine), 100, 2)
                 for key in ("float32_one_ulp", "float32_bfloat16_start")]
      lines.append(f"| {method} | " + " | ".join(means + spreads) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--dataset", default="digits", choices=sorted(SETTINGS))
  parser.add_argument("--workdir", default="",
                      help="where the runs' checkpoints go (default: a temp dir; "
                      "experiments/.work/precision-fmnist for Fashion-MNIST)")
  parser.add_argument("--data-dir", default="")
  parser.add_argument("--fresh", action="store_true",
                      help="run again what precision.runs.json holds")
  parser.add_argument("--diagnose", action="store_true",
                      help="separate the causes of a difference (needs --workdir)")
  parser.add_argument("--throughput", action="store_true",
                      help="images/s of the training step in both dtypes")
  parser.add_argument("--rounding-check", action="store_true",
                      help="the jobs again in float32 with XLA's default CPU kernels")
  args = parser.parse_args(argv)
  seeds = [int(s) for s in args.seeds.split(",")]
  methods = [m for m in args.methods.split(",") if m]
  os.makedirs(RESULTS, exist_ok=True)
  stem = "precision" if args.dataset == "digits" else f"precision_{args.dataset}"
  runs_path = os.path.join(RESULTS, f"{stem}.runs.json")
  runs = []
  if os.path.exists(runs_path) and not args.fresh:
    with open(runs_path) as f:
      runs = json.load(f)
  done = {(r["method"], r["dtype"], r["seed"]) for r in runs}
  workdir = args.workdir or (
      os.path.join(EXPERIMENTS_WORK, "precision-fmnist")
      if args.dataset == "fashion_mnist" else tempfile.mkdtemp(prefix="precision-"))
  from jaxunlearn import parallel
  # As run() sets up the process (before JAX starts), also for --diagnose
  # and --throughput, whose numbers must come from the runs' XLA flags.
  parallel.configure_cpu(0, "false" if args.rounding_check else "auto")
  import jax
  jax.config.update("jax_compilation_cache_dir",
                    tempfile.mkdtemp(prefix="precision-xla-"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  # The dtypes alternate, so load on the shared machine drifts over both.
  variants = (NOYNN,) if args.rounding_check else DTYPES
  for seed in seeds:
    for method in methods:
      for dtype in variants:
        if (method, dtype, seed) in done:
          continue
        record = run_one(method, dtype, seed, workdir, args.data_dir, args.dataset)
        runs = [r for r in runs if (r["method"], r["dtype"], r["seed"])
                != (method, dtype, seed)] + [record]
        write_text(runs_path, json.dumps(runs, indent=1))
        print(f"{method:6s} {dtype:8s} seed {seed}: test {record['test_acc']:.4f} "
              f"forget {record['forget_acc']:.4f} unlearn {record['unlearn_s']:.1f}s "
              f"pretrain {record['pretrain_s']:.1f}s", flush=True)
  diagnosis_path = os.path.join(RESULTS, f"{stem}.diagnosis.json")
  diagnosis = None
  if args.diagnose:
    diagnosis = []
    if os.path.exists(diagnosis_path):
      with open(diagnosis_path) as f:
        diagnosis = json.load(f)
    for seed in seeds:
      for method in methods:
        entry = diagnose(method, seed, workdir, args.data_dir, args.dataset)
        diagnosis = [d for d in diagnosis
                     if (d["method"], d["seed"]) != (method, seed)] + [entry]
        write_text(diagnosis_path, json.dumps(diagnosis, indent=1))
  elif os.path.exists(diagnosis_path):
    with open(diagnosis_path) as f:
      diagnosis = json.load(f)
  speeds_path = os.path.join(RESULTS, f"{stem}.throughput.json")
  speeds = None
  if args.throughput:
    speeds = throughput()
    write_text(speeds_path, json.dumps(speeds, indent=1))
  elif os.path.exists(speeds_path):
    with open(speeds_path) as f:
      speeds = json.load(f)
  platform = parallel.describe()
  summary = summarise(runs, methods, seeds)
  text = markdown(summary, seeds, platform, diagnosis, speeds,
                  [r for r in runs if r["method"] in methods], args.dataset)
  print(text)
  write_text(os.path.join(RESULTS, f"{stem}.md"), text)
  write_text(os.path.join(RESULTS, f"{stem}.json"), json.dumps(
      dict(seeds=seeds, platform=platform, target_points=TARGET,
           summary=summary, diagnosis=diagnosis, throughput=speeds,
           runs=[r for r in runs if r["seed"] in seeds
                 and r["method"] in methods]), indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
