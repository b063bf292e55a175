"""Several seeds of one config: run each, then mean ± std tables.

``jaxunlearn seeds --seeds 3 [--config FILE] [--workdir DIR] [--config.X=V]``
runs seeds ``config.seed, config.seed + 1, ...`` (or an explicit list,
``--seeds 0,4,7``), each in ``DIR/seed-<s>`` (so each resumes and reuses its
checkpoints like a single run), and writes ``DIR/summary.json`` and
``DIR/summary.md``: for every model role and every numeric metric in the
reports (nested ones flattened, e.g. ``audit.auc``), the mean, the standard
deviation (population, ddof 0, as the experiment tables) and the number of
seeds that reported it.

``jaxunlearn sweep --grid ieu.alpha=0.5,1,2 --grid ieu.epochs=3,6 [--seeds 1]
[--config FILE] [--workdir DIR]`` runs every point of the grid (the product
of the ``--grid FIELD=V1,V2,..`` lists; any config field) for each seed and
writes one row per point to ``DIR/sweep.{md,csv,json}``: the point's values
and the mean ± std over seeds of every numeric metric of the unlearned model,
with the original and retrained models as reference rows. All points of a
seed share ``DIR/seed-<s>``, so the original and retrained models are
trained once and each point's unlearning is checkpointed separately.

``--shard I/N`` runs only points I, I+N, I+2N, ... (in the grid's order) so
an array job can split a grid across processes or machines. A shard runs in
``DIR/shard-I-of-N/seed-<s>`` (concurrent shards must not write the same
checkpoints and reports, so each trains its own original and retrained
models) and writes its rows to ``DIR/sweep-shard-I-of-N.json``;
``jaxunlearn collect DIR`` merges the N files into the ``sweep.{md,csv,json}``
an unsharded sweep writes.
"""
from __future__ import annotations

import copy
import csv
import glob
import itertools
import json
import os
import re
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from jaxunlearn.checkpoint import write_json
from jaxunlearn.errors import UserError

ROLES = ("original", "unlearned", "retrained")


def parse_seeds(text: str, first: int) -> list[int]:
  """"3" -> [first, first + 1, first + 2]; "0,4,7" -> [0, 4, 7]."""
  try:
    if "," in text:
      seeds = [int(s) for s in text.split(",") if s.strip()]
    else:
      seeds = list(range(first, first + int(text)))
  except ValueError:
    raise UserError(f"--seeds {text!r}: give a count (3) or a list (0,4,7)") from None
  if not seeds or len(set(seeds)) != len(seeds):
    raise UserError(f"--seeds {text!r}: give at least one seed, no repeats")
  return seeds


def flatten(metrics: Optional[dict]) -> dict[str, float]:
  """The numeric entries of one model's metrics, one level of nesting
  flattened as ``outer.inner``."""
  out = {}
  for key, value in (metrics or {}).items():
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for sub, v in items:
      if isinstance(v, (int, float)) and not isinstance(v, bool):
        out[key if sub is None else f"{key}.{sub}"] = float(v)
  return out


def mean_std(values: Iterable[Optional[float]]) -> dict:
  """{"mean", "std", "n"} of the finite numbers among ``values`` (None and
  nan are skipped); std is the population one (ddof 0), as the experiment
  tables use; mean and std are None when no number is left."""
  finite = np.array([float(v) for v in values if v is not None and np.isfinite(v)])
  return dict(mean=float(finite.mean()) if len(finite) else None,
              std=float(finite.std()) if len(finite) else None, n=int(len(finite)))


def cell(stats: Optional[dict], digits: int = 4) -> str:
  """"mean ± std" of a ``mean_std`` result, "-" without a number."""
  if not stats or stats["mean"] is None:
    return "-"
  return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def summarize(reports: Sequence[dict]) -> dict:
  """{"seeds", "models": {role: {metric: {"mean", "std", "n"}}}, "rte"}."""
  models = {}
  for role in ROLES:
    per_seed = [flatten(r["models"].get(role)) for r in reports]
    keys = list(dict.fromkeys(k for m in per_seed for k in m))
    if not keys:
      continue
    models[role] = {key: mean_std(m[key] for m in per_seed if key in m)
                    for key in keys}
  rte = [r.get("rte") for r in reports if r.get("rte") is not None]
  return {"seeds": [r["seed"] for r in reports], "models": models,
          "rte": mean_std(rte) if rte else None}


def markdown(summary: dict, title: str = "") -> str:
  """Rows = metrics, columns = model roles, cells = mean ± std."""
  roles = [r for r in ROLES if r in summary["models"]]
  keys = list(dict.fromkeys(k for r in roles for k in summary["models"][r]))
  lines = [f"# {title}" if title else "",
           f"seeds {', '.join(map(str, summary['seeds']))} (mean ± std)", "",
           "| metric | " + " | ".join(roles) + " |",
           "|---|" + "---|" * len(roles)]
  for key in keys:
    lines.append(f"| {key} | " + " | ".join(
        cell(summary["models"][r].get(key)) for r in roles) + " |")
  if summary.get("rte"):
    lines += ["", f"rte (retrain seconds / unlearn seconds): {cell(summary['rte'])}"]
  return "\n".join(lines).lstrip("\n") + "\n"


def run_seeds(cfg, workdir: str, seeds: Sequence[int], run_fn: Callable,
              log=print) -> dict:
  """Runs ``cfg`` with ``run_fn`` (``jaxunlearn.run.run``; passed in, as
  the run itself reports with this module) once per seed
  (``workdir/seed-<s>``); writes and returns the summary."""
  reports = []
  for seed in seeds:
    c = copy.deepcopy(cfg)
    c.seed = int(seed)
    log(f"seed {seed}")
    reports.append(run_fn(c, os.path.join(workdir, f"seed-{seed}"), log=log))
  summary = summarize(reports)
  summary["method"] = reports[0].get("method")
  summary["dataset"] = reports[0].get("dataset")
  write_json(os.path.join(workdir, "summary.json"), summary)
  text = markdown(summary, f"{summary['method']} on {summary['dataset']}")
  tmp = os.path.join(workdir, "summary.md.tmp")
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, os.path.join(workdir, "summary.md"))
  return summary



def parse_grid(items: Sequence[str], cfg) -> dict[str, list]:
  """``["ieu.alpha=0.5,1", "ieu.epochs=3,6"]`` -> {field: [values]}, each
  value converted to the type of the config field it replaces."""
  grid = {}
  for item in items:
    field, sep, values = item.partition("=")
    if not sep or not values:
      raise UserError(f"--grid {item!r}: write FIELD=V1,V2 (e.g. ieu.alpha=0.5,1)")
    current = _get_field(cfg, field)
    grid[field] = [_convert(v.strip(), current, field) for v in values.split(",")]
  if not grid:
    raise UserError("sweep needs at least one --grid FIELD=V1,V2")
  return grid


def _get_field(cfg, field: str):
  node = cfg
  for part in field.split("."):
    try:
      node = node[part]
    except (KeyError, AttributeError, TypeError):
      raise UserError(f"--grid {field}: no such config field; see "
                      "jaxunlearn/config.py and the method's default_config()") from None
  return node


def _convert(text: str, current, field: str):
  """``text`` as the type of the field's current value (bool, int, float, str)."""
  kind = type(current)
  try:
    if kind is bool:
      if text.lower() not in ("true", "false"):
        raise ValueError
      return text.lower() == "true"
    if kind is int:
      number = float(text)
      if not number.is_integer():
        raise ValueError
      return int(number)
    if kind in (float, str):
      return kind(text)
  except ValueError:
    raise UserError(f"--grid {field}: {text!r} is not a {kind.__name__}") from None
  raise UserError(f"--grid {field}: only number, bool and string fields can be "
                  "swept")


def _set_field(cfg, field: str, value) -> None:
  *parents, leaf = field.split(".")
  node = cfg
  for part in parents:
    node = node[part]
  node[leaf] = value


def parse_shard(text: str) -> tuple[int, int]:
  """"1/4" -> (1, 4): this process runs points 1, 5, 9, ... of the grid."""
  match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
  if not match or not int(match[1]) < int(match[2]):
    raise UserError(f"--shard {text!r}: write I/N with 0 <= I < N "
                    "(e.g. 0/4 ... 3/4 for four shards)")
  return int(match[1]), int(match[2])


def shard_file(workdir: str, shard: tuple[int, int]) -> str:
  return os.path.join(workdir, f"sweep-shard-{shard[0]}-of-{shard[1]}.json")


def run_sweep(cfg, workdir: str, grid: dict[str, list], seeds: Sequence[int],
              run_fn: Callable, log=print,
              shard: Optional[tuple[int, int]] = None) -> list[dict]:
  """One row per grid point (mean ± std over seeds, each run with
  ``run_fn`` as in ``run_seeds``); writes DIR/sweep.*.

  With ``shard=(i, n)`` only points i, i+n, ... run, in
  ``DIR/shard-i-of-n/seed-<s>``, and the rows go to ``shard_file`` (merged
  by ``collect``) instead of DIR/sweep.*."""
  fields = list(grid)
  points = list(itertools.product(*(grid[f] for f in fields)))
  indices = list(range(len(points)))
  run_root = workdir
  if shard is not None:
    indices = indices[shard[0]::shard[1]]
    run_root = os.path.join(workdir, f"shard-{shard[0]}-of-{shard[1]}")
  rows, references = [], {}
  for index in indices:
    values = points[index]
    reports = []
    for seed in seeds:
      c = copy.deepcopy(cfg)
      c.seed = int(seed)
      for field, value in zip(fields, values):
        _set_field(c, field, value)
      log(f"sweep {dict(zip(fields, values))} seed {seed}")
      reports.append(run_fn(c, os.path.join(run_root, f"seed-{seed}"), log=log))
    summary = summarize(reports)
    for role in ("original", "retrained"):
      references.setdefault(role, summary["models"].get(role))
    rows.append(dict(point=dict(zip(fields, values)),
                     metrics=summary["models"].get("unlearned", {}),
                     rte=summary["rte"]))
  os.makedirs(workdir, exist_ok=True)
  if shard is not None:
    # The grid itself is recorded so that collect refuses shards of
    # different sweeps; references come from each shard's first point, and
    # collect keeps shard 0's (point 0's, as an unsharded sweep does).
    write_json(shard_file(workdir, shard), dict(
        shard=list(shard), grid=grid, seeds=list(seeds), indices=indices,
        rows=rows, references=references, method=cfg.method,
        dataset=cfg.dataset))
    return rows
  result = dict(fields=fields, seeds=list(seeds), rows=rows, references=references,
                method=cfg.method, dataset=cfg.dataset)
  write_json(os.path.join(workdir, "sweep.json"), result)
  _write_sweep_tables(result, workdir)
  return rows


def collect(workdir: str) -> dict:
  """Merges ``DIR/sweep-shard-*-of-N.json`` into DIR/sweep.{md,csv,json}
  (the files and rows an unsharded sweep writes); returns the result."""
  paths = glob.glob(os.path.join(workdir, "sweep-shard-*-of-*.json"))
  if not paths:
    raise UserError(f"collect: no sweep-shard-I-of-N.json in {workdir}; run "
                    "jaxunlearn sweep --shard I/N --workdir there first")
  shards = {}
  for path in paths:
    with open(path) as f:
      part = json.load(f)
    shards[tuple(part["shard"])] = part
  counts = sorted({n for _, n in shards})
  if len(counts) > 1:
    raise UserError(f"collect: {workdir} holds shards of {counts} ways of "
                    "splitting; keep one set of sweep-shard-*-of-N.json")
  n = counts[0]
  missing = [i for i in range(n) if (i, n) not in shards]
  if missing:
    raise UserError(f"collect: shard(s) {', '.join(map(str, missing))} of {n} "
                    f"have not finished (no sweep-shard-I-of-{n}.json in {workdir})")
  first = shards[(0, n)]
  for key in ("grid", "seeds", "method", "dataset"):
    for i in range(1, n):
      if shards[(i, n)][key] != first[key]:
        raise UserError(f"collect: shards 0 and {i} of {n} differ in {key} "
                        f"({first[key]} vs {shards[(i, n)][key]}); they are "
                        "not parts of one sweep")
  by_index = {index: row for i in range(n)
              for index, row in zip(shards[(i, n)]["indices"], shards[(i, n)]["rows"])}
  rows = [by_index[i] for i in sorted(by_index)]
  result = dict(fields=list(first["grid"]), seeds=first["seeds"], rows=rows,
                references=first["references"], method=first["method"],
                dataset=first["dataset"])
  write_json(os.path.join(workdir, "sweep.json"), result)
  _write_sweep_tables(result, workdir)
  return result


def _write_sweep_tables(result: dict, workdir: str) -> None:
  fields, rows = result["fields"], result["rows"]
  keys = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
  lines = [f"# sweep: {result['method']} on {result['dataset']}", "",
           f"seeds {', '.join(map(str, result['seeds']))}; unlearned model per "
           "point (mean ± std); original and retrained for reference.", "",
           "| " + " | ".join(fields + keys) + " |",
           "|" + "---|" * (len(fields) + len(keys))]
  for role, ref in result["references"].items():
    if ref:
      lines.append("| " + " | ".join([f"({role})"] + [""] * (len(fields) - 1)
                                     + [cell(ref.get(k)) for k in keys]) + " |")
  for r in rows:
    lines.append("| " + " | ".join([str(r["point"][f]) for f in fields]
                                   + [cell(r["metrics"].get(k)) for k in keys]) + " |")
  tmp = os.path.join(workdir, "sweep.md.tmp")
  with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(tmp, os.path.join(workdir, "sweep.md"))
  tmp = os.path.join(workdir, "sweep.csv.tmp")
  with open(tmp, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(fields + [f"{k}_{s}" for k in keys for s in ("mean", "std")])
    for r in rows:
      writer.writerow([r["point"][f] for f in fields] + [
          (r["metrics"].get(k) or {}).get(s) for k in keys for s in ("mean", "std")])
  os.replace(tmp, os.path.join(workdir, "sweep.csv"))
