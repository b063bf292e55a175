"""Study 5 of the Fashion-MNIST proving ground: the whole evaluation suite
and the per-example U-LiRA audit on one setting of each study.

  python experiments/fmnist_audit.py [--seeds 0,1,2]
      [--settings class1-delete,k128-l2ul,random10-dlfd,random30-ieu]
      [--shadows 4] [--shadow-epochs 15]

Settings (each exactly as its study runs it, so the trained, retrained and
unlearned models are the study's, restored from the seed's workdir):
``class1-delete`` (experiments/fmnist_class.py, class 3), ``k128-l2ul``
(experiments/fmnist_l2ul.py, full method, k = 128, with its retrained
model), ``random10-dlfd`` (experiments/fmnist_dlfd.py, the default
variant), ``random30-ieu`` (experiments/fmnist_ieu.py).

Every model (original, unlearned, retrained) gets the accuracies, the SVC
attacks on five features, the entropy attack, the forgetting score and
NoMUS, ZRF, JS divergence and activation distance to the retrained model,
run time, and the audit (jaxunlearn/metrics/audit.py): AUC and TPR at 1%
FPR of a U-LiRA attacker telling D_f from unseen images (0.5 = forgotten
looks unseen), and of online LiRA against the same shadows before their
unlearning (``audit_trained``: U-LiRA's reference is unlearned models, so
it misreads the original, which never was), and the AUC of the model's
own confidence on the same pool without shadows (``audit_threshold``).
The audit's pool has at most ``|D_f|`` unseen images
(``eval.audit.max_unseen``), so the shadows unlearn as much as the audited
model did.

The shadows: ``--shadows`` (even) models per setting and seed, each trained
with the original's recipe (``--shadow-epochs``, 15 as the original) on D_r
plus half the pool, then unlearned with the setting's method. Four is what
a 2-core machine affords (every shadow repeats the setting's unlearning:
about 14 minutes for DLFD); few shadows are why the variance is pooled
(``fixed_variance``, Carlini et al.'s advice for few shadows), so the AUCs
are a lower bound on what a better-equipped attacker reaches. The shadows
are trained as long as the original because shorter ones memorise less
and calibrate a weaker attack: on random30-ieu (seed 1), LiRA against 8-
epoch shadows separated the original from the retrained model by 0.029 AUC,
against 15-epoch shadows by 0.048 (experiments/reports/fmnist-seed1/
audit-random30-ieu-*.json, ``eval.audit.epochs`` 8 and 15).

The claim checked: here the original memorises, so the audit must separate
the original from the retrained model; the verdict states by how much (AUC
of the original minus that of the retrained model, per setting).

Resumable (experiments/fmnist_common.py; shadow models are checkpointed in
the workdir, and each finished shadow's statistics are kept beside the
report, ``experiments/reports/fmnist-seed<S>/audit-<setting>-<hash>.shadows/``,
so a DLFD audit, longer than a machine lasts here, goes on across machines);
``--kept-only`` rebuilds the table from the kept reports without running.
Writes experiments/results/fmnist_audit.{md,csv,json}.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import aggregate, means, write_tables  # noqa: E402
from fmnist_common import report_path, run_or_note  # noqa: E402

SUITE = ("accuracy", "mia_efficacy", "mia_threshold", "mia_features",
         "entropy_mia", "forgetting_score", "zrf", "rte", "audit")
COLUMNS = ("audit.auc", "audit.tpr_at_1fpr", "audit_trained.auc",
           "audit_trained.tpr_at_1fpr", "audit_threshold.auc", "forget_acc", "test_acc",
           "mia_efficacy", "mia_threshold", "entropy_mia", "forgetting_score",
           "nomus", "zrf", "js_to_retrained", "avg_gap")
SETTINGS = ("class1-delete", "k128-l2ul", "random10-dlfd", "random30-ieu")


def study_config(setting: str, seed: int):
  """The setting's config as its study builds it, and the forget-set size
  that bounds the audit's unseen examples."""
  if setting == "class1-delete":
    from fmnist_class import setting_config
    return setting_config("class1", seed, "delete")
  if setting == "k128-l2ul":
    from fmnist_l2ul import run_config
    return run_config(seed, 128, "full")
  if setting == "random10-dlfd":
    from fmnist_dlfd import run_config
    return run_config("dlfd-paper", seed)
  if setting == "random30-ieu":
    from fmnist_ieu import setting_config
    return setting_config("random30", seed, "ieu")
  raise SystemExit(f"unknown setting {setting!r}: use {', '.join(SETTINGS)}")


def audit_config(setting: str, seed: int, shadows: int, epochs: int):
  cfg = study_config(setting, seed)
  cfg.with_retrained = True
  cfg.eval.evaluators = SUITE
  cfg.eval.audit.num_shadows = shadows
  cfg.eval.audit.epochs = epochs
  # As many unseen images as forgotten ones at most (class forgetting has
  # fewer unseen ones than that anyway: the test images of the class).
  cfg.eval.audit.max_unseen = forget_size(cfg)
  return cfg


def forget_size(cfg) -> int:
  """|D_f| of the setting, from its config (Fashion-MNIST: 6,000 images per
  class, 60,000 training images)."""
  if cfg.forget.kind == "class":
    return 6000 * len(cfg.forget.classes)
  if cfg.forget.count:
    return int(cfg.forget.count)
  return int(round(cfg.forget.fraction * 60000))


def rows_for(report: dict, setting: str, seed: int) -> list[dict]:
  from fmnist_common import metric
  return [dict(method=f"{setting} {role}", setting=setting, role=role, seed=seed,
               **{c: metric(report["models"][role] or {}, c) for c in COLUMNS})
          for role in ("original", "unlearned", "retrained")]


def verdict(table: list[dict], settings) -> list[str]:
  """Per setting, on the means: each attack's AUC on the original against
  the retrained model's (the separation the claim asks for; a difference
  above 0.05 counts) and the unlearned model's."""
  by = means(table)
  lines = []
  for setting in settings:
    o, u, r = (by.get(f"{setting} {role}") for role in
               ("original", "unlearned", "retrained"))
    if None in (o, u, r):
      continue
    for name, what in (("audit_trained", "LiRA against the trained shadows"),
                       ("audit", "U-LiRA")):
      auc, tpr = f"{name}.auc", f"{name}.tpr_at_1fpr"
      if None in (o[auc], r[auc], u[auc]):
        continue
      gap = o[auc] - r[auc]
      word = "separates" if gap > 0.05 else "does not separate"
      lines.append(
          f"- {setting}, {what}: {word} the original from the retrained model "
          f"(AUC {o[auc]:.3f} vs {r[auc]:.3f}, difference {gap:+.3f}; TPR at "
          f"1% FPR {o[tpr]:.3f} vs {r[tpr]:.3f}); the unlearned model: AUC "
          f"{u[auc]:.3f}, TPR {u[tpr]:.3f}.")
    if None not in (o["audit_threshold.auc"], r["audit_threshold.auc"]):
      lines.append(
          f"- {setting}, no shadows (each model's own confidence, one "
          f"threshold): AUC {o['audit_threshold.auc']:.3f} on the original, "
          f"{r['audit_threshold.auc']:.3f} on the retrained model.")
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--settings", default=",".join(SETTINGS))
  parser.add_argument("--shadows", type=int, default=4)
  parser.add_argument("--shadow-epochs", type=int, default=15)
  parser.add_argument("--kept-only", action="store_true",
                      help="build the table from the kept reports and run "
                           "nothing (a setting and seed without one is a note)")
  args = parser.parse_args(argv)
  settings = args.settings.split(",")
  rows, failed = [], []
  for seed in (int(s) for s in args.seeds.split(",")):
    for setting in settings:
      cfg = audit_config(setting, seed, args.shadows, args.shadow_epochs)
      if args.kept_only and not os.path.exists(report_path(cfg, f"audit-{setting}")):
        failed.append(f"{setting} (seed {seed}): not run yet (no kept report)")
        continue
      report = run_or_note(cfg, f"audit-{setting}", failed,
                           f"{setting} (seed {seed})", keep_shadows=True)
      if report is None:
        continue
      rows += rows_for(report, setting, seed)
      print(f"seed {seed} {setting}: audit AUC " + ", ".join(
          f"{r['role']} {r['audit.auc']}" for r in rows[-3:]), flush=True)
      write(rows, failed, settings, args)
  write(rows, failed, settings, args)


def write(rows: list[dict], failed: list[str], settings, args) -> None:
  if not rows:
    return
  roles = ("original", "unlearned", "retrained")
  rows = sorted(rows, key=lambda r: (settings.index(r["setting"]),
                                     roles.index(r["role"]), r["seed"]))
  table = aggregate(rows, "method", COLUMNS)
  done = sorted({r["seed"] for r in rows})
  notes = [f"Fashion-MNIST, cnn28; one setting of each study, its models "
           f"restored from the study; seeds with results {done} (asked "
           f"{args.seeds}); mean ± std over the seeds with results (the notes "
           "name the settings and seeds still missing). audit: U-LiRA with "
           f"{args.shadows} shadow models of {args.shadow_epochs} epochs per "
           "setting and seed, at most |D_f| "
           "unseen images in the pool. Produced by "
           "`python experiments/fmnist_audit.py`. Seeds per setting (a "
           "std over one seed reads 0): " + "; ".join(
               f"{s} {sorted({r['seed'] for r in rows if r['setting'] == s})}"
               for s in settings if any(r["setting"] == s for r in rows)) + ".",
           "", *verdict(table, settings), *(f"- {f}" for f in failed)]
  write_tables("fmnist_audit", "Fashion-MNIST: the evaluation suite and the "
               "U-LiRA audit", table, "method", COLUMNS, rows, notes)


if __name__ == "__main__":
  main()
