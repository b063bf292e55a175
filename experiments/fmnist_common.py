"""What the Fashion-MNIST studies (experiments/fmnist_*.py) share.

- One workdir per seed, ``experiments/.work/fmnist-seed<S>``, for every
  study and forget set: the original model's checkpoint fingerprint depends
  on the dataset, model, recipe and seed only, so it is trained once per
  seed and reused by all four studies; the retrained model and each
  method's unlearning are fingerprinted with the forget set as well, so
  they are shared by every method of one forget set and never mixed up
  between forget sets.
- Each finished run's report is kept in ``experiments/reports/<workdir's
  name>/`` under a name that hashes the config the run reads, so a rerun
  of a study skips what is done and a study killed midway resumes at the
  run it was in (whose training and unlearning resume from their
  checkpoints). The reports are committed with the tables they make: the
  checkpoints in ``.work/`` stay on the machine that trained them, and a
  table over more seeds is rebuilt from the reports without rerunning the
  seeds it had.
- Seeds whose reports were not kept (runs from before ``experiments/
  reports/``) enter a table through ``--committed-seeds``: their rows and
  notes are read back from the committed table (``committed``).
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS, aggregate, write_tables  # noqa: E402,F401

from jaxunlearn import config as config_lib  # noqa: E402
from jaxunlearn import records  # noqa: E402
from jaxunlearn.errors import Diverged, UserError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, ".work")
REPORTS = os.path.join(HERE, "reports")
BASE_CONFIG = os.path.join(HERE, os.pardir, "configs", "fashion_mnist.py")
DATASET = "fashion_mnist"


def workdir(seed: int) -> str:
  return os.path.join(WORK, f"fmnist-seed{seed}")


def base_config(method: str, seed: int):
  """configs/fashion_mnist.py for ``method`` (with its Fashion-MNIST tuning,
  configs/<method>_fashion_mnist.py, where there is one)."""
  cfg = config_lib.load_file(f"{BASE_CONFIG}:{method}")
  cfg.seed, cfg.progress = seed, False
  return cfg


def run_identity(cfg) -> dict:
  """The config a run reads: all of it but the sections of the methods it
  does not run (``run.run`` reads ``cfg[cfg.method]`` only). Those sections
  stay out of the report's name, so a new default of one method leaves
  every other method's kept reports where they are."""
  others = set(config_lib.method_names()) - {cfg.method}
  return {k: v for k, v in cfg.to_dict().items() if k not in others}


def report_path(cfg, label: str, work: str = "") -> str:
  """Where ``run_cached`` keeps the report of ``cfg``: experiments/reports/
  <name of the seed's workdir (or ``work``)>/<label>-<hash of
  ``run_identity(cfg)``>.json."""
  blob = json.dumps(run_identity(cfg), sort_keys=True, default=str).encode()
  digest = hashlib.sha1(blob).hexdigest()[:10]
  name = os.path.basename(os.path.normpath(work or workdir(cfg.seed)))
  return os.path.join(REPORTS, name, f"{label}-{digest}.json")


def run_cached(cfg, label: str, log=print, work: str = "",
               keep_shadows: bool = False) -> dict:
  """``run.run(cfg)`` in the seed's workdir (or ``work``), or the report a
  previous run of the same config left (``report_path``). ``label`` names
  the file for a reader. The relearning curves a run writes to the shared
  workdir (rcd_curves.json) move beside its report
  (``<report>.rcd_curves.json``), so each run's curves stay with it.

  ``keep_shadows``: the audit's shadow statistics are kept beside the
  report (``<report>.shadows/``), so an audit killed with its machine goes
  on from its last finished shadow on the next; ``wall_s`` then adds the
  seconds of the shadows computed before (``wall_s_before``)."""
  from jaxunlearn import run as run_lib
  work = work or workdir(cfg.seed)
  path = report_path(cfg, label, work)
  directory = os.path.dirname(path)
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  keep = path.replace(".json", ".shadows") if keep_shadows else None
  before = shadow_seconds(keep) if keep else 0.0
  failed = path.replace(".json", ".diverged.json")
  if os.path.exists(failed):  # a divergence is a result: not rerun
    with open(failed) as f:
      where = os.path.relpath(failed, os.path.dirname(HERE))  # as the tables print it
      raise Diverged(json.load(f)["diverged"] + f" (recorded in {where})")
  start = time.perf_counter()
  metrics = os.path.join(work, "metrics.jsonl")
  offset = os.path.getsize(metrics) if os.path.exists(metrics) else 0
  try:
    report = run_lib.run(cfg, work, log=lambda *_: None, shadow_keep=keep)
  except Diverged as error:
    os.makedirs(directory, exist_ok=True)
    with open(failed + ".tmp", "w") as f:
      json.dump({"diverged": str(error), "config": cfg.to_dict(),
                 "epoch_records": records.read_metrics(metrics, offset)}, f, indent=1,
                default=str)
    os.replace(failed + ".tmp", failed)
    raise
  report["wall_s"] = time.perf_counter() - start + before
  if before:
    report["wall_s_before"] = before
  # the records this run appended to the seed's shared metrics.jsonl
  report["epoch_records"] = records.read_metrics(metrics, offset)
  os.makedirs(directory, exist_ok=True)
  curves = os.path.join(work, "rcd_curves.json")
  if os.path.exists(curves):
    os.replace(curves, path.replace(".json", ".rcd_curves.json"))
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=1, default=float)
  os.replace(path + ".tmp", path)
  log(f"{label}: {time.perf_counter() - start:.0f}s")
  return report


def shadow_seconds(directory: str) -> float:
  """The seconds the shadows kept in ``directory`` took to compute."""
  total = 0.0
  for path in glob.glob(os.path.join(directory, "shadow*.npz")):
    with np.load(path) as kept:
      total += float(kept["seconds"])
  return total


def run_or_note(cfg, label: str, failed: list, what: str, **kwargs):
  """``run_cached(cfg, label, **kwargs)``, or None after appending to
  ``failed`` why the run stopped (a diverging loss, a recorded divergence)
  under ``what``: one method's failure is a row of the study, not its end."""
  try:
    return run_cached(cfg, label, **kwargs)
  except UserError as error:
    failed.append(f"{what} failed: {error}")
    print(failed[-1], flush=True)
    return None


def rows_of(report: dict, label: str, seed: int, columns, extra=None) -> list[dict]:
  """The unlearned model's row (named ``label``) and the original's and the
  retrained model's reference rows, with unlearn_s and rel_time."""
  times = report.get("runtime_s", {})
  retrain = times.get("retrain")
  out = []
  for role, name in (("unlearned", label), ("original", "original"),
                     ("retrained", "retrained")):
    m = report["models"].get(role) or {}
    row = {"method": name, "seed": seed, **{c: metric(m, c) for c in columns}}
    seconds = {"unlearned": times.get("unlearn"), "retrained": retrain}.get(role)
    row["unlearn_s"] = seconds
    row["rel_time"] = seconds / retrain if seconds is not None and retrain else None
    row.update(extra or {})
    out.append(row)
  return out


# Before reports were committed, a failed run's record sat in the seed's
# workdir: a note read back must not send the reader to a file that is gone.
_LOCAL_RECORD = re.compile(r"\(recorded in experiments/\.work/[^)]*\)")


def committed(stem: str, seeds, methods=None) -> tuple[list[dict], list[str]]:
  """The rows of ``seeds`` in the committed experiments/results/<stem>.json
  (of ``methods`` only, where given) and the notes of its .md that name one
  of those seeds ("- <row> (seed S)..."): how a seed whose reports were not
  kept enters a table rebuilt over more seeds. Each row is the number the
  committed table was made of, so the rebuilt means are those of the same
  runs; the verdicts are recomputed from them."""
  seeds = set(seeds)
  path = os.path.join(RESULTS, stem + ".json")
  if not seeds:
    return [], []
  if not os.path.exists(path):
    raise UserError(f"--committed-seeds: {os.path.relpath(path, HERE)} does not "
                    f"exist; run the seeds instead")
  with open(path) as f:
    rows = [r for r in json.load(f)["rows"] if r["seed"] in seeds
            and (methods is None or r["method"] in methods)]
  missing = seeds - {r["seed"] for r in rows}
  if missing:
    raise UserError(f"--committed-seeds: {stem}.json has no row of seed(s) "
                    f"{sorted(missing)}; run them instead")
  notes = []
  with open(os.path.join(RESULTS, stem + ".md")) as f:
    for line in f:
      found = re.match(r"- .*?\(seed (\d+)\)", line)
      if found and int(found.group(1)) in seeds:
        notes.append(_LOCAL_RECORD.sub(
            "(its record was machine-local and was not kept)",
            line.rstrip("\n")[2:]))
  return rows, notes


def seed_args(parser) -> None:
  """--seeds and --committed-seeds."""
  parser.add_argument("--seeds", default="0,1,2", help="the seeds to run (or "
                      "read from their kept reports)")
  parser.add_argument("--committed-seeds", default="",
                      help="seeds whose rows are read from the committed table "
                           "instead (runs whose reports were not kept); none by "
                           "default")


def seeds_phrase(rows: list[dict], seeds, kept) -> str:
  """A table's seeds: those with results, then which were run and which
  read back from the committed table."""
  done = sorted({r["seed"] for r in rows})
  return (f"{done} (run {seeds or 'none'}; read from the committed table "
          f"{kept or 'none'})")


def parse_seeds(args) -> tuple[list[int], list[int]]:
  """(seeds to run, seeds read from the committed table), disjoint."""
  run = [int(s) for s in args.seeds.split(",") if s]
  kept = [int(s) for s in args.committed_seeds.split(",") if s]
  if set(run) & set(kept):
    raise SystemExit(f"seed(s) {sorted(set(run) & set(kept))} are in both --seeds "
                     "and --committed-seeds: give each seed once")
  if not run and not kept:
    raise SystemExit("no seeds: give --seeds, --committed-seeds or both")
  return run, kept


def unchanged_notes(report: dict, label: str, seed: int) -> list[str]:
  """The report's note that the method returned the original model
  unchanged (``run.report_notes``), named for a table: a row equal to the
  original's must say why."""
  return [f"{label} (seed {seed}): {note}" for note in report.get("notes", [])
          if "returned the original model unchanged" in note]


def metric(metrics: dict, key: str):
  """``metrics[key]``, or a nested value as ``audit.auc``."""
  value = metrics
  for part in key.split("."):
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return float(value) if isinstance(value, (int, float)) else None


def merge(rows: list[dict], new: list[dict]) -> None:
  """Adds ``new`` rows, keeping one original / retrained row per seed and
  setting (they recur in every method's report; a study may prefix them, as
  "k=16 original")."""
  for row in new:
    key = (row["method"], row["seed"], row.get("setting"))
    if row["method"].split()[-1] in ("original", "retrained") and any(
        (r["method"], r["seed"], r.get("setting")) == key for r in rows):
      continue
    rows.append(row)


def original_model(cfg):
  """(task, loaded task data, model, original variables, phase keys) of
  ``cfg``'s seed: the original model the studies share, restored from the
  seed's workdir (trained there first, resumably, if it is not yet). For
  what ``run.run`` does not cover (L2UL's continual requests, the
  per-epoch curves of fmnist_curves.py)."""
  import jax
  from jaxunlearn import parallel
  from jaxunlearn import run as run_lib
  from jaxunlearn.tasks import TASKS
  from jaxunlearn.train import train_model
  task = TASKS.get(run_lib.task_name(cfg))
  mesh = parallel.make_mesh(cfg.num_devices or None)
  keys = task.keys(jax.random.key(cfg.seed))
  loaded = task.load(cfg, jax.random.key(cfg.seed), keys.split)  # as run.run
  model = task.build_model(cfg, loaded)
  base = run_lib.trained_fingerprint(cfg, task, loaded)
  directory = os.path.join(workdir(cfg.seed), "checkpoints",
                           f"original-{run_lib.fingerprint(*base)}")
  variables, _ = train_model(model, cfg.train, loaded.train, loaded.image_shape,
                             keys.pretrain, mesh, augment=loaded.augment,
                             checkpoint_dir=directory, desc="pretrain",
                             progress=False, make_step=task.train_step(cfg))
  return task, loaded, model, variables, keys, mesh
