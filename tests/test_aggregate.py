"""Multi-seed aggregation: seeds parsing, mean ± std against NumPy, the files
``jaxunlearn seeds`` writes, and its usage errors."""
import json
import os

import numpy as np
import pytest

from jaxunlearn import aggregate, cli
from jaxunlearn import config as base_config
from jaxunlearn.errors import UserError


def test_parse_seeds():
  assert aggregate.parse_seeds("3", 5) == [5, 6, 7]
  assert aggregate.parse_seeds("0,4,7", 5) == [0, 4, 7]
  for bad in ("x", "0", "1,1", ""):
    with pytest.raises(UserError, match="--seeds"):
      aggregate.parse_seeds(bad, 0)


def fake_report(seed):
  rng = np.random.default_rng(seed)
  return {"seed": seed, "method": "delete", "dataset": "digits",
          "rte": 2.0 + seed,
          "models": {"original": {"forget_acc": float(rng.uniform()),
                                  "audit": {"auc": float(rng.uniform()),
                                            "setup": "ulira, 8 shadows"},
                                  "test_forget_acc": None},
                     "unlearned": {"forget_acc": float(rng.uniform()),
                                   "nomus": float("nan") if seed == 1 else 0.5},
                     "retrained": None}}


def test_summary_matches_numpy_and_skips_missing_values(tmp_path):
  cfg = base_config.get_config()
  calls = []

  def run_fn(c, workdir, log):
    calls.append((c.seed, workdir))
    return fake_report(c.seed)
  summary = aggregate.run_seeds(cfg, str(tmp_path), [0, 1, 2], run_fn=run_fn,
                                log=lambda *_: None)
  assert calls == [(s, os.path.join(str(tmp_path), f"seed-{s}")) for s in (0, 1, 2)]
  assert cfg.seed == 0  # the caller's config is not changed
  reports = [fake_report(s) for s in (0, 1, 2)]
  for role, key, get in (("original", "forget_acc", lambda r: r["forget_acc"]),
                         ("original", "audit.auc", lambda r: r["audit"]["auc"]),
                         ("unlearned", "forget_acc", lambda r: r["forget_acc"])):
    values = np.array([get(r["models"][role]) for r in reports])
    entry = summary["models"][role][key]
    assert np.isclose(entry["mean"], values.mean())
    assert np.isclose(entry["std"], values.std()) and entry["n"] == 3
  assert summary["models"]["unlearned"]["nomus"] == dict(mean=0.5, std=0.0, n=2)
  assert "test_forget_acc" not in summary["models"]["original"]
  assert "audit.setup" not in summary["models"]["original"]
  assert "retrained" not in summary["models"]
  assert np.isclose(summary["rte"]["mean"], 3.0)
  with open(tmp_path / "summary.json") as f:
    assert json.load(f)["seeds"] == [0, 1, 2]
  text = (tmp_path / "summary.md").read_text()
  m = summary["models"]["original"]["audit.auc"]
  assert f"| audit.auc | {m['mean']:.4f} ± {m['std']:.4f} |" in text


def test_seeds_command_usage_errors(capsys):
  assert cli.main(["seeds"]) == 2
  assert "--seeds N" in capsys.readouterr().err
  assert cli.main(["seeds", "--seeds", "a,b"]) == 2
  assert "give a count" in capsys.readouterr().err


def test_grid_parsing_converts_to_the_field_types():
  cfg = base_config.get_config()
  grid = aggregate.parse_grid(["ieu.alpha=0.5,1", "ieu.epochs=3,6.0",
                               "delete.freeze_bn=true,False", "delete.mask=label"], cfg)
  assert grid == {"ieu.alpha": [0.5, 1.0], "ieu.epochs": [3, 6],
                  "delete.freeze_bn": [True, False], "delete.mask": ["label"]}
  assert type(grid["ieu.alpha"][1]) is float and type(grid["ieu.epochs"][1]) is int
  for bad, match in (("ieu.nope=1", "no such config field"),
                     ("ieu.epochs=2.5", "not a int"), ("ieu.alpha", "FIELD=V1,V2"),
                     ("delete.freeze_bn=yes", "not a bool")):
    with pytest.raises(UserError, match=match):
      aggregate.parse_grid([bad], cfg)


def test_sweep_runs_every_point_and_seed_and_writes_one_row_per_point(tmp_path):
  cfg = base_config.get_config()
  cfg.method = "ieu"
  seen = []

  def run_fn(c, workdir, log):
    seen.append((c.ieu.alpha, c.ieu.epochs, c.seed, os.path.basename(workdir)))
    score = c.ieu.alpha * 10 + c.ieu.epochs + 0.1 * c.seed
    return {"seed": c.seed, "rte": 1.0,
            "models": {"original": {"forget_acc": 1.0},
                       "unlearned": {"forget_acc": score},
                       "retrained": {"forget_acc": 0.5}}}
  grid = aggregate.parse_grid(["ieu.alpha=0.5,1", "ieu.epochs=3,6"], cfg)
  rows = aggregate.run_sweep(cfg, str(tmp_path), grid, [0, 1], run_fn=run_fn,
                             log=lambda *_: None)
  assert sorted(seen) == sorted((a, e, s, f"seed-{s}") for a in (0.5, 1.0)
                                for e in (3, 6) for s in (0, 1))
  assert [r["point"] for r in rows] == [
      {"ieu.alpha": a, "ieu.epochs": e} for a in (0.5, 1.0) for e in (3, 6)]
  for r in rows:
    expected = r["point"]["ieu.alpha"] * 10 + r["point"]["ieu.epochs"] + 0.05
    assert np.isclose(r["metrics"]["forget_acc"]["mean"], expected)
    assert np.isclose(r["metrics"]["forget_acc"]["std"], 0.05)
  text = (tmp_path / "sweep.md").read_text()
  assert "| (retrained) |  | 0.5000 ± 0.0000 |" in text
  assert "| 1.0 | 6 | 16.0500 ± 0.0500 |" in text
  with open(tmp_path / "sweep.csv") as f:
    assert f.readline().strip() == "ieu.alpha,ieu.epochs,forget_acc_mean,forget_acc_std"
