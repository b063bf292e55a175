"""experiments/fmnist_common.py: where run reports are kept, and how a seed
whose reports were not kept re-enters a table from the committed one."""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "experiments"))

import fmnist_common  # noqa: E402

from jaxunlearn.errors import UserError  # noqa: E402


def test_reports_are_kept_outside_the_workdir_under_its_name():
  cfg = fmnist_common.base_config("finetune", 3)
  path = fmnist_common.report_path(cfg, "class1-finetune")
  assert os.path.dirname(path) == os.path.join(fmnist_common.REPORTS, "fmnist-seed3")
  assert os.path.basename(path).startswith("class1-finetune-")
  tuned = fmnist_common.report_path(cfg, "x", work="/anywhere/fmnist-val-seed3/")
  assert os.path.dirname(tuned) == os.path.join(fmnist_common.REPORTS,
                                                "fmnist-val-seed3")
  cfg.finetune.epochs += 1  # any change to what the run reads is another report
  changed = fmnist_common.report_path(cfg, "class1-finetune")
  assert changed != path
  cfg.train.epochs += 1
  assert fmnist_common.report_path(cfg, "class1-finetune") not in (path, changed)
  cfg.train.epochs -= 1
  cfg.fisher.alpha *= 2  # another method's section: the run does not read it
  cfg.delete.lr *= 2
  assert fmnist_common.report_path(cfg, "class1-finetune") == changed
  assert cfg.method == "finetune" and "finetune" in fmnist_common.run_identity(cfg)


@pytest.fixture
def table(tmp_path, monkeypatch):
  monkeypatch.setattr(fmnist_common, "RESULTS", str(tmp_path))
  rows = [{"method": m, "seed": s, "test_acc": 0.9 + s / 100}
          for s in (0, 1, 2) for m in ("original", "finetune", "scrub")]
  (tmp_path / "study.json").write_text(json.dumps({"title": "t", "rows": rows}))
  (tmp_path / "study.md").write_text(
      "# t\n\nseeds [0, 1, 2]\n\n| method | test_acc |\n|---|---|\n"
      "- scrub (seed 1) failed: the loss became nan (recorded in "
      "experiments/.work/fmnist-seed1/reports/class3-scrub-12a7.diverged.json)\n"
      "- ssd (seed 2): ssd returned the original model unchanged\n"
      "- dlfd-paper (seed 11): a seed that only looks like seed 1\n")
  return rows


def test_committed_reads_back_the_seeds_rows_and_notes(table):
  rows, notes = fmnist_common.committed("study", [1, 2], ["original", "finetune"])
  assert rows == [r for r in table if r["seed"] in (1, 2) and r["method"] != "scrub"]
  assert notes == ["scrub (seed 1) failed: the loss became nan (its record was "
                   "machine-local and was not kept)",
                   "ssd (seed 2): ssd returned the original model unchanged"]
  assert fmnist_common.committed("study", []) == ([], [])


def test_committed_names_the_fix_for_a_seed_the_table_lacks(table):
  with pytest.raises(UserError, match=r"no row of seed\(s\) \[5\]; run them"):
    fmnist_common.committed("study", [0, 5])
  with pytest.raises(UserError, match="does not exist"):
    fmnist_common.committed("absent", [0])


def test_a_seed_is_run_or_read_not_both():
  import argparse
  parser = argparse.ArgumentParser()
  fmnist_common.seed_args(parser)
  assert fmnist_common.parse_seeds(parser.parse_args(
      ["--seeds", "2", "--committed-seeds", "0,1"])) == ([2], [0, 1])
  assert fmnist_common.parse_seeds(parser.parse_args(
      ["--seeds", "", "--committed-seeds", "1"])) == ([], [1])
  with pytest.raises(SystemExit, match="no seeds"):
    fmnist_common.parse_seeds(parser.parse_args(["--seeds", ""]))
  with pytest.raises(SystemExit, match=r"\[1\] are in both"):
    fmnist_common.parse_seeds(parser.parse_args(
        ["--seeds", "1,2", "--committed-seeds", "1"]))


def test_a_committed_seed_runs_only_the_methods_its_table_lacks(monkeypatch):
  import fmnist_class
  kept_rows = [{"method": m, "seed": 0} for m in ("original", "retrained", "delete")]
  monkeypatch.setattr(fmnist_class, "committed", lambda *a: (
      list(kept_rows), ["finetune (seed 0) failed: the loss became nan"]))
  monkeypatch.setattr(fmnist_class, "write", lambda *a: None)
  ran = []
  monkeypatch.setattr(fmnist_class, "run_or_note", lambda cfg, label, notes, what:
                      ran.append((cfg.seed, label)))
  fmnist_class.main(["--seeds", "2", "--committed-seeds", "0", "--settings",
                     "class1", "--methods", "delete,finetune,ssd"])
  # seed 2 runs everything; seed 0 only what has neither a row nor a failure
  assert ran == [(2, "class1-delete"), (2, "class1-finetune"), (2, "class1-ssd"),
                 (0, "class1-ssd")]
  ran.clear()  # a changed method runs again on the committed seed
  fmnist_class.main(["--seeds", "", "--committed-seeds", "0", "--settings",
                     "class1", "--methods", "delete,finetune,ssd",
                     "--rerun", "delete,finetune"])
  assert ran == [(0, "class1-delete"), (0, "class1-finetune"), (0, "class1-ssd")]
  with pytest.raises(SystemExit, match="fisher"):
    fmnist_class.main(["--committed-seeds", "0", "--methods", "delete",
                       "--rerun", "fisher"])


def test_an_audit_keeps_its_shadows_beside_its_report_and_counts_their_time(
    tmp_path, monkeypatch):
  import numpy as np
  from jaxunlearn import run as run_lib
  monkeypatch.setattr(fmnist_common, "REPORTS", str(tmp_path / "reports"))
  cfg = fmnist_common.base_config("finetune", 3)
  path = fmnist_common.report_path(cfg, "audit-x", work=str(tmp_path / "w"))
  keep = path.replace(".json", ".shadows")
  os.makedirs(keep)  # shadow 0 finished on a machine that is gone
  np.savez(os.path.join(keep, "shadow0.npz"), seconds=np.asarray(100.0))
  given = []
  monkeypatch.setattr(run_lib, "run", lambda cfg, work, log, shadow_keep=None:
                      given.append(shadow_keep) or {"models": {}})
  report = fmnist_common.run_cached(cfg, "audit-x", work=str(tmp_path / "w"),
                                    keep_shadows=True)
  assert given == [keep]
  assert report["wall_s_before"] == 100.0 and 100.0 <= report["wall_s"] < 200.0
  with open(path) as f:
    assert json.load(f)["wall_s"] == report["wall_s"]
  fmnist_common.run_cached(cfg, "audit-y", work=str(tmp_path / "w"))
  assert given == [keep, None]  # other runs keep nothing


def test_a_table_says_how_many_seeds_each_mean_is_over(tmp_path, monkeypatch):
  import common
  monkeypatch.setattr(common, "RESULTS", str(tmp_path))
  rows = [{"method": "delete", "seed": s, "acc": a} for s, a in ((0, 0.5), (1, 0.7))]
  rows.append({"method": "unsir", "seed": 0, "acc": 0.25})
  columns = ("acc",)
  markdown = common.write_tables("t", "t", common.aggregate(rows, "method", columns),
                                 "method", columns, rows)
  body = [line.split(" | ") for line in markdown.splitlines()
          if line.startswith("| ") and not line.startswith("| method")]
  assert [cells[:2] for cells in body] == [["| delete", "2"], ["| unsir", "1"]]
  assert body[0][2].startswith("0.600 ± 0.1")
  csv_rows = (tmp_path / "t.csv").read_text().splitlines()
  assert csv_rows[0] == "method,n,acc_mean,acc_std" and csv_rows[2].startswith("unsir,1,0.25,")
