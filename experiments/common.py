"""Helpers the experiment scripts share: run a config over seeds, aggregate,
write markdown / CSV / JSON tables."""
from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Sequence

from jaxunlearn.aggregate import cell, mean_std

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def aggregate(rows: list[dict], group: str, columns: Sequence[str]) -> list[dict]:
  """``aggregate.mean_std`` of ``columns`` over the rows sharing ``row[group]``."""
  names = list(dict.fromkeys(r[group] for r in rows))
  out = []
  for name in names:
    mine = [r for r in rows if r[group] == name]
    entry = {group: name, "n": len(mine)}
    for c in columns:
      entry[c] = mean_std(r.get(c) for r in mine)
    out.append(entry)
  return out


def means(table: list[dict], group: str = "method") -> dict[str, dict]:
  """{group value: {column: mean}} of an ``aggregate`` table (None where a
  column has no number)."""
  return {e[group]: {c: (v["mean"] if isinstance(v, dict) else v)
                     for c, v in e.items()} for e in table}


def verdict_line(checks: Sequence[bool], parts: Sequence[str]) -> str:
  """"Verdict (...): reproduced / partly reproduced / not reproduced: ...";
  ``checks`` are the claim's parts, each true where the numbers meet it."""
  word = ("reproduced" if all(checks) else "partly reproduced" if any(checks)
          else "not reproduced")
  return f"Verdict (means over the seeds present): {word}: " + "; ".join(parts) + "."


def write_tables(stem: str, title: str, table: list[dict], group: str,
                 columns: Sequence[str], raw_rows: list[dict],
                 notes: Iterable[str] = ()) -> str:
  """Writes RESULTS/<stem>.md, .csv (n, then mean/std columns) and .json (raw
  rows). n is the rows behind each mean: a row run on fewer seeds than the
  others says so in the table itself."""
  os.makedirs(RESULTS, exist_ok=True)
  lines = [f"# {title}", "", *notes, "" if notes else "",
           "| " + " | ".join([group, "n"] + list(columns)) + " |",
           "|" + "---|" * (len(columns) + 2)]
  for entry in table:
    lines.append("| " + " | ".join([str(entry[group]), str(entry["n"])] +
                                   [cell(entry[c], 3) for c in columns]) + " |")
  markdown = "\n".join(lines) + "\n"
  with open(os.path.join(RESULTS, stem + ".md"), "w") as f:
    f.write(markdown)
  with open(os.path.join(RESULTS, stem + ".csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([group, "n"] + [f"{c}_{s}" for c in columns for s in ("mean", "std")])
    for entry in table:
      writer.writerow([entry[group], entry["n"]] + [
          _number(entry[c][s]) for c in columns for s in ("mean", "std")])
  with open(os.path.join(RESULTS, stem + ".json"), "w") as f:
    json.dump({"title": title, "rows": raw_rows}, f, indent=1)
  return markdown


def _number(value):
  return float("nan") if value is None else value


def timing(report: dict, role: str) -> dict:
  """unlearn_s and rel_time (÷ retrain seconds) of a report's model ``role``:
  the unlearning run for ``unlearned``, the retraining for ``retrained``
  (rel_time 1), none for ``original``."""
  times = report.get("runtime_s", {})
  seconds = {"unlearned": times.get("unlearn"),
             "retrained": times.get("retrain")}.get(role)
  retrain = times.get("retrain")
  return {"unlearn_s": seconds,
          "rel_time": seconds / retrain if seconds is not None and retrain else None}


def add_data_args(parser) -> None:
  """--dataset / --model: the same study on another (prepared) dataset."""
  parser.add_argument("--dataset", default="digits",
                      help="a name from `jaxunlearn datasets` (prepared, or its "
                           "archives in the manual dir); default: the embedded digits")
  parser.add_argument("--model", default="",
                      help="a name from `jaxunlearn models`; default: the config's")


def apply_data_args(cfg, args) -> None:
  cfg.dataset = args.dataset
  if args.model:
    cfg.model.name = args.model


def dataset_tag(args) -> str:
  """The dataset's part of result file names: digits, cifar10, ..."""
  return args.dataset.split(":")[0]
