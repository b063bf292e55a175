"""How long the Fashion-MNIST studies take: the wall seconds of every run
behind the current tables, per study and seed, from the committed reports.

  python experiments/fmnist_walltime.py [--seeds 0,1,2]

Each study script runs its configs through ``fmnist_common.run_cached``,
which records the run's wall time (``wall_s``) in its report. This script
rebuilds the same configs (the studies' own functions), finds each one's
report in experiments/reports/fmnist-seed<S>/, and sums. What the sum
counts: a run that trained the seed's original model or a retrained one
includes that training; later runs reuse the checkpoint, so each training
is counted once, in the first run that needed it. What it leaves out, and
the table says how much of each: runs whose report was not kept (the seeds
run before reports were kept enter the tables through
``--committed-seeds``), a divergence (its record has no time), and the work
outside reports (the L2UL continual setting, the validation searches, the
curves and the "why" studies). The reports also name the host CPU: the
times of two machines differ by up to 2x, so the column says which ran.

Writes experiments/results/fmnist_walltime.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import RESULTS  # noqa: E402
from fmnist_common import report_path  # noqa: E402


def study_runs(seed: int) -> dict[str, list[tuple]]:
  """{study: [(cfg, label), ...]}: the runs each study's default command
  makes on ``seed``, in its order."""
  import fmnist_audit
  import fmnist_class
  import fmnist_dlfd
  import fmnist_ieu
  import fmnist_l2ul

  runs = {}
  for setting in fmnist_class.SETTINGS:
    runs[f"fmnist_class.py {setting}"] = [
        (fmnist_class.setting_config(setting, seed, m), f"{setting}-{m}")
        for m in fmnist_class.METHODS]
  runs["fmnist_l2ul.py"] = [(fmnist_l2ul.run_config(seed, k, v), f"l2ul-k{k}-{v}")
                            for k in (16, 64, 128) for v in ("full", "adv", "ga")]
  runs["fmnist_dlfd.py"] = [
      (fmnist_dlfd.run_config(label, seed), fmnist_dlfd.cache_label(label))
      for label in fmnist_dlfd.RUNS
      if not label.endswith(fmnist_dlfd.AUTHORS) or seed in fmnist_dlfd.AUTHORS_SEEDS]
  for setting in ("random30", "class30"):
    runs[f"fmnist_ieu.py {setting}"] = [
        (fmnist_ieu.setting_config(setting, seed, m), f"{setting}-{m}")
        for m in fmnist_ieu.METHODS
        if not (m == "ieu-default" and setting == "class30")]
  runs["fmnist_audit.py"] = [
      (fmnist_audit.audit_config(s, seed, 4, 15), f"audit-{s}")
      for s in fmnist_audit.SETTINGS]
  return runs


def measure(seed: int) -> list[dict]:
  rows = []
  for study, runs in study_runs(seed).items():
    row = dict(study=study, seed=seed, runs=len(runs), timed=0, wall_s=0.0,
               diverged=0, missing=0, hosts=set())
    for cfg, label in runs:
      path = report_path(cfg, label)
      if os.path.exists(path):
        with open(path) as f:
          report = json.load(f)
        row["timed"] += 1
        row["wall_s"] += report["wall_s"]
        row["hosts"].add(report.get("platform", {}).get("host_cpu", "not recorded"))
      elif os.path.exists(path.replace(".json", ".diverged.json")):
        row["diverged"] += 1
      else:
        row["missing"] += 1
    row["hosts"] = sorted(row["hosts"])
    rows.append(row)
  return rows


def markdown(rows: list[dict]) -> str:
  lines = ["# Fashion-MNIST: wall time of the studies", "",
           "Sum of the committed reports' `wall_s` (each training counted once, "
           "in the first run that needed it) for the runs behind the current "
           "tables. `diverged`: runs recorded as a divergence, without a time; "
           "`missing`: runs without a committed report (not run yet, or run "
           "before reports were kept). Not counted: the L2UL continual "
           "setting, the validation searches, the curves and the \"why\" "
           "studies. Produced by `python experiments/fmnist_walltime.py`.", "",
           "| study | seed | runs | timed | diverged | missing | wall (h) | host |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['study']} | {r['seed']} | {r['runs']} | {r['timed']} | "
                 f"{r['diverged']} | {r['missing']} | {r['wall_s'] / 3600:.2f} | "
                 f"{', '.join(r['hosts'])} |")
  lines += ["", "| seed | runs | timed | wall (h) |", "|---|---|---|---|"]
  for seed in sorted({r["seed"] for r in rows}):
    mine = [r for r in rows if r["seed"] == seed]
    lines.append(f"| {seed} | {sum(r['runs'] for r in mine)} | "
                 f"{sum(r['timed'] for r in mine)} | "
                 f"{sum(r['wall_s'] for r in mine) / 3600:.2f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  args = parser.parse_args(argv)
  rows = [r for seed in args.seeds.split(",") for r in measure(int(seed))]
  text = markdown(rows)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "fmnist_walltime.md"), "w") as f:
    f.write(text)
  with open(os.path.join(RESULTS, "fmnist_walltime.json"), "w") as f:
    json.dump({"title": "Fashion-MNIST: wall time of the studies", "rows": rows},
              f, indent=1)
  print(text)


if __name__ == "__main__":
  main()
