"""The main job end to end on the embedded digits: DELETE forgets class 3 and
keeps the rest; report.json has the documented shape; checkpoints are reused."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from jaxunlearn import config as base_config
from jaxunlearn import parallel
from jaxunlearn import run as run_lib

M_KEYS = {"forget_acc", "retain_acc", "test_acc", "test_forget_acc",
          "test_retain_acc", "mia_efficacy", "mia_threshold", "avg_gap"}


@pytest.fixture(scope="module")
def cfg(data_dir):
  c = base_config.load_file(base_config.DEFAULT_RUN)
  c.data_dir = data_dir
  c.progress = False
  c.train.epochs = 12  # enough for ~97% test accuracy; keeps the test short
  return c


@pytest.fixture(scope="module")
def report(cfg, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  return workdir, run_lib.run(cfg, workdir, log=lambda *_: None)


def test_report_shape(report):
  workdir, rep = report
  with open(os.path.join(workdir, "report.json")) as f:
    on_disk = json.load(f)
  assert on_disk["method"] == "delete" and on_disk["dataset"] == "digits"
  assert on_disk["seed"] == 0 and on_disk["forget"]["classes"] == [3]
  assert set(on_disk["models"]) == {"original", "unlearned", "retrained"}
  for role, metrics in on_disk["models"].items():
    assert M_KEYS <= set(metrics), role
    for key in M_KEYS - {"avg_gap"} | {"mia_efficacy_attack_acc",
                                        "mia_threshold_attack_acc"}:
      assert 0.0 <= metrics[key] <= 1.0
  assert set(on_disk["runtime_s"]) >= {"pretrain", "retrain", "unlearn", "evaluate"}
  assert on_disk["models"]["retrained"]["avg_gap"] == 0.0
  # What the numbers depend on besides the config: the conftest's 2 devices
  # and the XLA flags `run` applies by default.
  assert on_disk["platform"]["devices"] == 2
  assert on_disk["platform"]["jax"] == jax.__version__
  # the host's CPU, on which float32's last bits and every time depend
  assert on_disk["platform"]["host_cpu"].endswith(
      f", {len(os.sched_getaffinity(0))} cores")
  assert not on_disk["platform"]["host_cpu"].startswith(",")
  assert ((parallel.YNN_FUSIONS_FLAG in on_disk["platform"]["xla_flags"])
          == parallel.ynn_fusions_known())
  with open(os.path.join(workdir, "forget_ids.json")) as f:
    ids = json.load(f)["forget_ids"]
  assert len(ids) == rep["forget"]["size"] == 135


def test_delete_forgets_the_class_and_keeps_the_rest(report):
  _, rep = report
  original, unlearned, retrained = (rep["models"][r] for r in
                                    ("original", "unlearned", "retrained"))
  assert original["forget_acc"] > 0.95 and original["test_retain_acc"] > 0.9
  assert unlearned["forget_acc"] <= 0.02
  assert unlearned["test_forget_acc"] <= 0.02
  assert abs(unlearned["test_retain_acc"] - original["test_retain_acc"]) <= 0.03
  # The monotone attack: the SVC's verdict on D_f flips between CPUs.
  assert abs(unlearned["mia_threshold"] - retrained["mia_threshold"]) <= 0.10
  assert retrained["forget_acc"] <= 0.05  # never saw class 3
  assert unlearned["avg_gap"] < original["avg_gap"]


def test_second_run_reuses_every_checkpoint(cfg, report, monkeypatch):
  workdir, first = report
  from jaxunlearn import loop
  def no_step(*args, **kwargs):
    raise AssertionError("a finished phase took a training step again")
  monkeypatch.setattr(loop, "epoch_keys", no_step)  # called once per epoch
  second = run_lib.run(cfg, workdir, log=lambda *_: None)
  assert second["models"] == first["models"]


def test_another_method_reuses_the_evaluation_of_the_original_and_retrained(
    cfg, report, monkeypatch, tmp_path):
  import shutil
  workdir = str(tmp_path / "run")  # a copy: the other tests read the DELETE run's files
  shutil.copytree(report[0], workdir)
  first = report[1]
  from jaxunlearn.metrics import evaluators as evaluators_lib
  accuracy = evaluators_lib.EVALUATORS.get("accuracy")
  evaluated = []

  def counting(ctx, role, options):
    evaluated.append(role)
    return accuracy.fn(ctx, role, options)
  monkeypatch.setitem(evaluators_lib.EVALUATORS._items, "accuracy",
                      accuracy._replace(fn=counting))
  other = cfg.copy_and_resolve_references()
  other.method = "finetune"
  other.finetune.epochs = 1
  second = run_lib.run(other, workdir, log=lambda *_: None)
  assert evaluated == ["unlearned"]
  for role in ("original", "retrained"):
    assert second["models"][role] == first["models"][role]
  # Evaluators' code that changed: the stored evaluations are not reused.
  monkeypatch.setattr(run_lib, "evaluation_code_fingerprint", lambda: "changed")
  evaluated.clear()
  third = run_lib.run(other, workdir, log=lambda *_: None)
  assert evaluated == ["original", "unlearned", "retrained"]
  assert third["models"] == second["models"]


def test_timed_phase_reports_the_stored_time_only_for_a_restored_checkpoint(tmp_path):
  directory = str(tmp_path / "unlearn-x")
  record = directory + ".json"

  def no_checkpoint(d):  # a method that recomputes every time (DLFD, L2UL)
    os.makedirs(d, exist_ok=True)
    return "result", {}

  _, first = run_lib.timed_phase(directory, no_checkpoint)
  assert first < 5.0 and json.load(open(record))["seconds"] == first
  with open(record, "w") as f:
    json.dump({"seconds": 123.0}, f)
  _, again = run_lib.timed_phase(directory, no_checkpoint)
  assert again != 123.0 and json.load(open(record))["seconds"] == again
  # A numbered checkpoint step: the phase was restored, not recomputed.
  os.makedirs(os.path.join(directory, "7"))
  with open(record, "w") as f:
    json.dump({"seconds": 123.0}, f)
  _, restored = run_lib.timed_phase(directory, no_checkpoint)
  assert restored == 123.0


def test_timed_phase_with_a_template_keeps_a_finished_result_of_a_loop_without_checkpoints(tmp_path):
  directory = str(tmp_path / "unlearn-x")
  template = {"params": {"w": np.zeros((2, 3), np.float32)}}
  calls = []

  def no_checkpoint(d):  # L2UL, DLFD: their loops save nothing in d
    calls.append(d)
    return {"params": {"w": np.full((2, 3), float(len(calls)), np.float32)}}, {"steps": 7}

  (first, stats), seconds = run_lib.timed_phase(directory, no_checkpoint, template)
  (again, again_stats), again_seconds = run_lib.timed_phase(
      directory, no_checkpoint, template)
  assert len(calls) == 1  # restored from directory-done, not recomputed
  np.testing.assert_array_equal(again["params"]["w"], first["params"]["w"])
  assert again_stats == stats == {"steps": 7} and again_seconds == seconds
  # Without the saved result (a job killed between record and save, or a
  # record from before): computed again, and kept this time.
  shutil.rmtree(directory + "-done")
  (third, _), _ = run_lib.timed_phase(directory, no_checkpoint, template)
  assert len(calls) == 2 and third["params"]["w"][0, 0] == 2.0
  run_lib.timed_phase(directory, no_checkpoint, template)
  assert len(calls) == 2


def test_notes_say_what_the_table_cannot():
  models = {"original": {"mia_efficacy": 0.9, "mia_efficacy_attack_acc": 0.51,
                         "mia_efficacy_signal": False,
                         "mia_threshold_attack_acc": 0.7, "mia_threshold_signal": True},
            "unlearned": {"mia_efficacy_attack_acc": 0.49, "mia_efficacy_signal": False},
            "retrained": None}
  report = {"method": "dlfd", "models": models,
            "method_stats": {"outcome": "the gate never opened"}}
  notes = run_lib.report_notes(report, unchanged=True)
  assert len(notes) == 3
  assert "unchanged" in notes[0] and notes[1] == "dlfd: the gate never opened"
  assert "mia_efficacy" in notes[2] and "original 0.510, unlearned 0.490" in notes[2]
  assert run_lib.report_notes({"method": "x", "models": {}}) == []
  report["notes"] = notes
  assert run_lib.format_report(dict(report, seed=0, dataset="d",
                                    forget={"size": 1}, runtime_s={})
                               ).endswith("note: " + notes[-1])


def test_trees_equal_is_bitwise():
  import numpy as np
  a = {"params": {"w": np.ones(3, np.float32)}}
  assert run_lib.trees_equal(a, {"params": {"w": np.ones(3, np.float32)}})
  assert not run_lib.trees_equal(a, {"params": {"w": np.nextafter(
      np.ones(3, np.float32), 2)}})
  assert not run_lib.trees_equal(a, {"params": {"v": np.ones(3, np.float32)}})


def test_a_method_brings_the_evaluators_of_its_paper():
  cfg = base_config.get_config()
  assert run_lib.run_evaluators(cfg) == tuple(cfg.eval.evaluators)
  cfg.method = "dlfd"
  assert run_lib.run_evaluators(cfg)[-1] == "forgetting_score"
  cfg.method = "ieu"
  assert run_lib.run_evaluators(cfg)[-1] == "rcd"
  cfg.eval.evaluators = ("accuracy", "rcd")
  assert run_lib.run_evaluators(cfg) == ("accuracy", "rcd")  # not twice
  cfg.eval.method_evaluators = False
  cfg.eval.evaluators = ("accuracy",)
  assert run_lib.run_evaluators(cfg) == ("accuracy",)


def test_a_run_outside_the_methods_setting_says_so():
  report = {"method": "delete", "forget": {"kind": "random"}, "models": {}}
  notes = run_lib.report_notes(report, meant_for=("class",))
  assert notes == ["delete is meant for class forgetting (its paper's settings); "
                   "this run forgets random."]
  assert run_lib.report_notes(dict(report, forget={"kind": "class"}),
                              meant_for=("class",)) == []


def test_the_run_leaves_a_record_of_itself(report, cfg):
  """config.json (every field), metrics.jsonl (one record per epoch),
  report.md with its plot, and manifest.json whose digests are those of the
  forget ids and of the saved weights."""
  import glob
  import hashlib

  import orbax.checkpoint as ocp

  from jaxunlearn import records
  workdir, rep = report
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["delete"] == cfg.delete.to_dict() and saved["seed"] == cfg.seed
  assert set(saved) == set(cfg.to_dict())
  metrics = records.read_metrics(os.path.join(workdir, "metrics.jsonl"))
  assert [m["epoch"] for m in metrics if m["phase"] == "pretrain"] == list(
      range(1, cfg.train.epochs + 1))
  markdown = open(os.path.join(workdir, "report.md")).read()
  assert "forget_acc" in markdown and "| `train.epochs` | `30` | `12` |" in markdown
  assert "![" in markdown and os.path.getsize(os.path.join(workdir, "report.png")) > 0
  with open(os.path.join(workdir, "manifest.json")) as f:
    manifest = json.load(f)
  with open(os.path.join(workdir, "forget_ids.json")) as f:
    ids = sorted(json.load(f)["forget_ids"])
  assert manifest["forget"]["ids_sha256"] == hashlib.sha256(
      json.dumps(ids).encode()).hexdigest()
  (directory,) = glob.glob(os.path.join(workdir, "checkpoints", "unlearn-delete-*[!n]"))
  mngr = ocp.CheckpointManager(directory)
  state = mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]
  saved_unlearned = {"params": state["train"]["params"],
                     "batch_stats": state["train"]["batch_stats"]}
  assert manifest["weights_sha256"]["unlearned"] == records.weights_digest(
      saved_unlearned)
  assert manifest["evidence"]["unlearned"]["forget_acc"] == rep["models"][
      "unlearned"]["forget_acc"]
  assert manifest["versions"]["jax"] == jax.__version__


def test_a_run_repeats_from_its_config_json_alone(report, tmp_path):
  workdir, rep = report
  again = run_lib.run(base_config.from_json(os.path.join(workdir, "config.json")),
                      str(tmp_path), log=lambda *_: None)
  assert again["models"] == rep["models"]


def test_stored_evaluations_are_per_method_only_when_an_evaluator_uses_it(cfg):
  from jaxunlearn.tasks import TASKS
  task = TASKS.get("classification")
  names = {"original": "original-a", "retrained": "retrained-b"}
  models = {"original": {}, "unlearned": {}, "retrained": None}

  def paths(method, evaluators):
    c = cfg.copy_and_resolve_references()
    c.method = method
    return run_lib.evaluation_paths("ck", c, task, evaluators, names, "f", models)
  plain = ("accuracy", "mia_threshold")
  assert list(paths("delete", plain)) == ["original"]  # no retrained model
  assert paths("delete", plain) == paths("finetune", plain)
  assert paths("delete", plain + ("audit",)) != paths("finetune", plain + ("audit",))
  assert paths("delete", plain) != paths("delete", plain + ("zrf",))


def test_a_method_that_returns_nan_weights_is_a_divergence_not_a_crash(
    cfg, report, monkeypatch, tmp_path):
  """Methods with their own loops (L2UL, DLFD) bypass the epoch loop's
  check: NaN weights stop the run with ``Diverged`` naming the method before
  any evaluator sees them (sklearn's SVC would fail on NaN features), and
  logits that overflow on finite weights are caught where they are made."""
  import shutil

  import numpy as np

  from jaxunlearn.errors import Diverged
  from jaxunlearn.methods import METHODS
  from jaxunlearn.metrics import evaluators as evaluators_lib
  workdir = str(tmp_path / "run")
  shutil.copytree(report[0], workdir)
  finetune = METHODS.get("finetune")

  def nan_weights(task, method_cfg, key):
    variables = jax.tree.map(np.array, jax.device_get(task.variables))
    kernel = variables["params"]["head"]["kernel"]
    kernel[0, 0] = np.nan
    return variables, {}
  monkeypatch.setitem(METHODS._items, "finetune", finetune._replace(unlearn=nan_weights))
  other = cfg.copy_and_resolve_references()
  other.method = "finetune"
  evaluated = []
  accuracy = evaluators_lib.EVALUATORS.get("accuracy")
  monkeypatch.setitem(evaluators_lib.EVALUATORS._items, "accuracy", accuracy._replace(
      fn=lambda ctx, role, options: evaluated.append(role) or accuracy.fn(ctx, role, options)))
  with pytest.raises(Diverged, match="finetune returned NaN/inf parameters"):
    run_lib.run(other, workdir, log=lambda *_: None)
  assert evaluated == []

  def huge_weights(task, method_cfg, key):
    variables = jax.tree.map(np.array, jax.device_get(task.variables))
    variables["params"]["head"]["kernel"] *= np.float32(1e38)
    return variables, {}
  monkeypatch.setitem(METHODS._items, "finetune", finetune._replace(unlearn=huge_weights))
  other.finetune.epochs = 2  # another unlearning checkpoint name
  with pytest.raises(Diverged, match="unlearned model's logits on .* are NaN/inf"):
    run_lib.run(other, workdir, log=lambda *_: None)


def test_read_metrics_from_an_offset_returns_only_what_was_appended_after_it(tmp_path):
  """A run sharing a metrics.jsonl reads back its own records by the file's
  size before it started (experiments/fmnist_common.run_cached)."""
  from jaxunlearn import records
  path = str(tmp_path / "metrics.jsonl")
  assert records.read_metrics(path, 0) == []  # no file yet
  with open(path, "w") as f:
    f.write(json.dumps({"phase": "pretrain", "epoch": 1}) + "\n")
  before = os.path.getsize(path)
  with open(path, "a") as f:
    f.write(json.dumps({"phase": "finetune", "epoch": 1}) + "\n")
    f.write(json.dumps({"phase": "finetune", "epoch": 2}) + "\n")
  assert [r["phase"] for r in records.read_metrics(path)] == ["pretrain"] + ["finetune"] * 2
  assert records.read_metrics(path, before) == [{"phase": "finetune", "epoch": 1},
                                                {"phase": "finetune", "epoch": 2}]
  assert records.read_metrics(path, os.path.getsize(path)) == []
