"""The record of a run, beside its report: what produced it and what it shows.

- ``config.json``: the resolved config, every field (``config.from_json``
  reads it back, so a run can be repeated from it alone);
- ``report.md``: the table, the config's difference from the defaults, the
  timings and the notes, with ``report.png`` (per-class test accuracy of the
  original, unlearned and retrained models; the unlearning phase's curves
  from ``metrics.jsonl``);
- ``manifest.json``: provenance to archive with a deletion request: dataset
  name and fingerprint, SHA-256 of the forget-id list, digests of the three
  models' weights, the evidence, package versions, source revision.

Only process 0 calls these (``run.py``).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from jaxunlearn import checkpoint as ckpt_lib

PACKAGES = ("jaxunlearn", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
            "tensorflow-datasets", "numpy", "scikit-learn", "ml-collections")
EVIDENCE = ("forget_acc", "retain_acc", "test_acc", "test_forget_acc",
            "mia_efficacy", "mia_threshold", "avg_gap", "rcd_steps",
            "rcd_reached", "audit", "audit_trained", "audit_threshold",
            "forgetting_score", "attack_success_rate",
            "forget_iou", "retain_miou")


def write_config(path: str, cfg: ml_collections.ConfigDict) -> None:
  ckpt_lib.write_json(path, json.loads(cfg.to_json_best_effort()))


def config_diff(cfg: ml_collections.ConfigDict,
                defaults: ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
  """(field, default, value) for every leaf that differs from ``defaults``
  (a field the defaults lack has default None)."""
  def flat(d: Any, prefix: str = "") -> dict:
    out = {}
    for k, v in dict(d).items():
      if isinstance(v, (dict, ml_collections.ConfigDict)):
        out.update(flat(v, f"{prefix}{k}."))
      else:
        out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out
  mine, base = flat(cfg.to_dict()), flat(defaults.to_dict())
  return [(k, base.get(k), mine[k]) for k in sorted(mine) if base.get(k) != mine[k]]


def weights_digest(variables: Optional[dict]) -> Optional[str]:
  """SHA-256 of a model's arrays (names, shapes, dtypes and bytes, in tree
  order): the same weights give the same digest whatever the file layout."""
  if variables is None:
    return None
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def split_fingerprint(*splits) -> str:
  """SHA-256 over the ids and labels of ``splits`` (which examples, which
  labels), cheap even for data read from disk per batch."""
  digest = hashlib.sha256()
  for split in splits:
    digest.update(np.ascontiguousarray(split.ids, np.int64).tobytes())
    digest.update(np.ascontiguousarray(split.labels).tobytes())
  return digest.hexdigest()


def forget_ids_digest(ids) -> str:
  text = json.dumps(sorted(int(i) for i in ids))
  return hashlib.sha256(text.encode()).hexdigest()


def versions() -> dict:
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def source_revision() -> Optional[str]:
  """The git commit of the installed source, when it is a checkout."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    done = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"],
                          capture_output=True, text=True, timeout=5)
  except (OSError, subprocess.SubprocessError):
    return None
  if done.returncode != 0:
    return None
  dirty = subprocess.run(["git", "-C", root, "status", "--porcelain",
                          "--untracked-files=no"],
                         capture_output=True, text=True, timeout=5)
  return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def evidence(report: dict) -> dict:
  """The metrics that show the forgetting, per model."""
  out = {}
  for role, metrics in report["models"].items():
    if metrics is not None:
      out[role] = {k: metrics[k] for k in EVIDENCE if k in metrics}
  return out


def manifest(report: dict, dataset_fingerprint: str, forget_ids,
             models: dict) -> dict:
  return {
      "task": report.get("task"), "method": report["method"],
      "dataset": {"name": report["dataset"], "fingerprint": dataset_fingerprint},
      "forget": {"spec": report["forget"],
                 "ids_sha256": forget_ids_digest(forget_ids),
                 "count": len(forget_ids)},
      "weights_sha256": {role: weights_digest(v) for role, v in models.items()},
      "evidence": evidence(report),
      "notes": report.get("notes", []),
      "seed": report["seed"],
      "platform": report.get("platform"),
      "versions": versions(),
      "source_revision": source_revision(),
  }


def per_class_accuracy(logits: np.ndarray, labels: np.ndarray,
                       num_classes: int) -> list[Optional[float]]:
  predicted = np.argmax(logits, -1)
  out = []
  for c in range(num_classes):
    rows = labels == c
    out.append(float(np.mean(predicted[rows] == c)) if rows.any() else None)
  return out


def read_metrics(path: str, offset: int = 0) -> list[dict]:
  """The records of ``metrics.jsonl`` from byte ``offset`` on (a run that
  appends to a shared file reads back its own by the size before it)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    f.seek(offset)
    return [json.loads(line) for line in f if line.strip()]


def plot(path: str, per_class: dict, curves: list[dict], phase: str) -> bool:
  """report.png: per-class test accuracy by model, and the unlearning phase's
  loss (and other step metrics) per epoch. False if there is nothing to draw."""
  if not per_class and not curves:
    return False
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [p for p in ("classes", "curves") if (per_class if p == "classes"
                                                 else curves)]
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.6),
                           squeeze=False)
  for ax, panel in zip(axes[0], panels):
    if panel == "classes":
      roles = [r for r in ("original", "unlearned", "retrained") if r in per_class]
      num = len(next(iter(per_class.values())))
      width = 0.8 / len(roles)
      for i, role in enumerate(roles):
        values = [np.nan if v is None else v for v in per_class[role]]
        ax.bar(np.arange(num) + i * width, values, width, label=role)
      ax.set_xticks(np.arange(num) + 0.4 - width / 2)
      ax.set_xticklabels([str(c) for c in range(num)])
      ax.set_xlabel("class")
      ax.set_ylabel("test accuracy")
      ax.set_ylim(0, 1.05)
      ax.legend(fontsize=8)
      ax.set_title("per-class test accuracy")
    else:
      keys = [k for k in curves[0] if k not in (
          "phase", "epoch", "epochs", "images_per_s", "elapsed_s", "eta_s", "lr")]
      epochs = [r["epoch"] for r in curves]
      for k in keys:
        ax.plot(epochs, [r.get(k, np.nan) for r in curves], marker="o", label=k)
      ax.set_xlabel("epoch")
      ax.xaxis.get_major_locator().set_params(integer=True)
      ax.set_title(f"{phase}: step metrics (epoch means)")
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path + ".tmp.png", dpi=110)
  plt.close(fig)
  os.replace(path + ".tmp.png", path)
  return True


def report_markdown(table: str, diff: list, report: dict, image: Optional[str]
                    ) -> str:
  lines = [f"# {report['method']} on {report['dataset']} "
           f"({report.get('task', 'classification')}, seed {report['seed']})", "",
           "```", table, "```", ""]
  if image:
    lines += [f"![per-class accuracy and curves]({image})", ""]
  lines += ["## Configuration (differences from the defaults)", ""]
  if diff:
    lines += ["| field | default | this run |", "|---|---|---|"]
    lines += [f"| `{k}` | `{d}` | `{v}` |" for k, d, v in diff]
  else:
    lines.append("None: the library's defaults.")
  lines += ["", "## Timings (seconds)", "", "| phase | seconds |", "|---|---|"]
  lines += [f"| {k} | {'-' if v is None else f'{v:.1f}'} |"
            for k, v in report["runtime_s"].items()]
  if report.get("notes"):
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
  return "\n".join(lines) + "\n"


def write_text(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
