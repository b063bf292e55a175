"""Several seeds of one config: run each, then mean ± std tables.

``jaxunlearn seeds --seeds 3 [--config FILE] [--workdir DIR] [--config.X=V]``
runs seeds ``config.seed, config.seed + 1, ...`` (or an explicit list,
``--seeds 0,4,7``), each in ``DIR/seed-<s>`` (so each resumes and reuses its
checkpoints like a single run), and writes ``DIR/summary.json`` and
``DIR/summary.md``: for every model role and every numeric metric in the
reports (nested ones flattened, e.g. ``audit.auc``), the mean, the standard
deviation (population, ddof 0, as the experiment tables) and the number of
seeds that reported it.
"""
from __future__ import annotations

import copy
import os
from typing import Callable, Optional, Sequence

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


def summarize(reports: Sequence[dict]) -> dict:
  """{"seeds", "models": {role: {metric: {"mean", "std", "n"}}}, "rte"}."""
  models = {}
  for role in ROLES:
    per_seed = [flatten(r["models"].get(role)) for r in reports]
    keys = list(dict.fromkeys(k for m in per_seed for k in m))
    if not keys:
      continue
    models[role] = {}
    for key in keys:
      values = np.array([m[key] for m in per_seed
                         if key in m and np.isfinite(m[key])])
      models[role][key] = dict(
          mean=float(values.mean()) if len(values) else None,
          std=float(values.std()) if len(values) else None, n=int(len(values)))
  rte = [r.get("rte") for r in reports if r.get("rte") is not None]
  return {"seeds": [r["seed"] for r in reports], "models": models,
          "rte": dict(mean=float(np.mean(rte)), std=float(np.std(rte)),
                      n=len(rte)) if rte else None}


def markdown(summary: dict, title: str = "") -> str:
  """Rows = metrics, columns = model roles, cells = mean ± std."""
  roles = [r for r in ROLES if r in summary["models"]]
  keys = list(dict.fromkeys(k for r in roles for k in summary["models"][r]))
  cell = lambda s: "-" if s is None or s["mean"] is None else (
      f"{s['mean']:.4f} ± {s['std']:.4f}")
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


def run_seeds(cfg, workdir: str, seeds: Sequence[int],
              run_fn: Optional[Callable] = None, log=print) -> dict:
  """Runs ``cfg`` once per seed (``workdir/seed-<s>``); writes and returns
  the summary."""
  if run_fn is None:
    from jaxunlearn.run import run as run_fn
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

