"""Plots from the committed result tables (no training).

  python experiments/plots.py

- ``tradeoff_<setting>.png`` for compare_class / compare_random (and any
  other results/*.json with ``forget_acc`` and ``test_acc`` rows): one point
  per method at its mean over seeds (bars = std), forget accuracy against
  test accuracy on the remaining data, the retrained model marked: the
  closer a method sits to the retrained model, the better it unlearns.
- ``sweep_<name>.png`` for a ``jaxunlearn sweep`` result copied to
  results/ (``sweep_*.json``): each metric of the unlearned model over the
  grid points.
"""
from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS  # noqa: E402


def _save(fig, path: str) -> None:
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  os.replace(tmp, path)


def accuracy_curves(curves: dict, retrained: dict | None, forgotten: str,
                    path: str, title: str = "") -> None:
  """Forget accuracy and the remaining classes' test accuracy over
  unlearning epochs: ``curves`` maps a method to its points (epoch 0 = the
  original; each point has ``forget_acc`` and ``test_retain_acc``), the
  retrained model's values are the dashed lines; ``forgotten`` names D_f's
  classes in the left panel's title."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, key, label in ((axes[0], "forget_acc", f"forget accuracy (D_f, {forgotten})"),
                         (axes[1], "test_retain_acc", "test accuracy, other classes")):
    for name, curve in curves.items():
      ax.plot(range(len(curve)), [p[key] for p in curve], marker="o", ms=3, label=name)
    if retrained:
      ax.axhline(retrained[key], color="black", ls="--", lw=1, label="retrained")
    ax.set_xlabel("unlearning epoch (0 = original)")
    ax.set_title(label)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def tradeoff(path: str, y_key: str = "test_retain_acc") -> str | None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  with open(path) as f:
    data = json.load(f)
  rows = [r for r in data.get("rows", []) if "method" in r and "forget_acc" in r]
  if not rows:
    return None
  if not any(r.get(y_key) is not None for r in rows):
    y_key = "test_acc"
  if not any(r.get(y_key) is not None for r in rows):
    return None
  methods = list(dict.fromkeys(r["method"] for r in rows))
  fig, ax = plt.subplots(figsize=(7, 5))
  for m in methods:
    mine = [r for r in rows if r["method"] == m and r.get("forget_acc") is not None
            and r.get(y_key) is not None]
    if not mine:
      continue
    x = np.array([r["forget_acc"] for r in mine])
    y = np.array([r[y_key] for r in mine])
    style = dict(marker="*", s=220, color="black", zorder=3) if m == "retrained" else (
        dict(marker="s", s=80, color="gray", zorder=3) if m.startswith("original")
        else dict(marker="o", s=50))
    ax.errorbar(x.mean(), y.mean(), xerr=x.std(), yerr=y.std(), fmt="none",
                ecolor="lightgray", zorder=1)
    ax.scatter([x.mean()], [y.mean()], label=m, **style)
    ax.annotate(m, (x.mean(), y.mean()), fontsize=7, xytext=(3, 3),
                textcoords="offset points")
  ax.set_xlabel("forget accuracy (D_f)")
  ax.set_ylabel(y_key.replace("_", " "))
  ax.set_title(data.get("title", os.path.basename(path)))
  ax.grid(alpha=0.3)
  fig.tight_layout()
  out = os.path.join(RESULTS, "tradeoff_" + os.path.basename(path)[:-5] + ".png")
  _save(fig, out)
  plt.close(fig)
  return out


def sweep_plot(path: str) -> str:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  with open(path) as f:
    data = json.load(f)
  rows, fields = data["rows"], data["fields"]
  keys = [k for k in ("forget_acc", "test_acc", "avg_gap", "rcd_steps", "mia_efficacy")
          if any(k in r["metrics"] for r in rows)]
  labels = [", ".join(f"{f.split('.')[-1]}={r['point'][f]}" for f in fields) for r in rows]
  fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.8), squeeze=False)
  for ax, key in zip(axes[0], keys):
    mean = [r["metrics"].get(key, {}).get("mean") or np.nan for r in rows]
    std = [r["metrics"].get(key, {}).get("std") or 0.0 for r in rows]
    ax.bar(range(len(rows)), mean, yerr=std, color="tab:blue", alpha=0.8)
    ref = (data.get("references") or {}).get("retrained") or {}
    if key in ref and ref[key]["mean"] is not None:
      ax.axhline(ref[key]["mean"], color="black", ls="--", lw=1, label="retrained")
      ax.legend(fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=70, fontsize=7)
    ax.set_title(key)
  fig.suptitle(f"sweep: {data.get('method')} on {data.get('dataset')}")
  fig.tight_layout()
  out = path[:-5] + ".png"
  _save(fig, out)
  plt.close(fig)
  return out


def main():
  for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
    name = os.path.basename(path)
    if name.startswith("sweep_"):
      print(sweep_plot(path))
    elif name.startswith(("compare_", "dlfd_", "ieu_")):
      out = tradeoff(path)
      if out:
        print(out)


if __name__ == "__main__":
  main()
