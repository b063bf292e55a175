"""The main job as a batch system runs it: several processes, SIGTERM, logs
without a terminal, a locked workdir, damaged checkpoints."""
import glob
import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn import cli
from jaxunlearn import run as run_lib
from jaxunlearn.errors import UserError

# A short job: 2 pretraining epochs (and 2 of retraining), 3 of DELETE.
TINY = ["--config.progress=False", "--config.train.epochs=2",
        "--config.delete.epochs=3", "--config.compilation_cache_dir="]


def _env(data_dir, devices=1):
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAXUNLEARN_DATA_DIR=data_dir,
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  return env


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _numbers(report):
  """Every number of every model's metrics, flattened (for tolerances)."""
  out = {}
  for role, metrics in report["models"].items():
    for key, value in (metrics or {}).items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        out[(role, key)] = float(value)
  return out


def test_two_processes_finish_write_one_report_and_match_one_process(
    data_dir, tmp_path):
  """2 local CPU processes (coordinator on 127.0.0.1, one device each) run
  the main job: both exit 0, only process 0 writes the shared files (one
  report), process 1 logs to logs/process_1.log, and the numbers equal those
  of one process with 2 devices (the same global mesh) to float tolerance."""
  workdir = str(tmp_path / "two")
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "jaxunlearn.cli", "run", "--workdir", workdir, *TINY,
       "--config.distributed=True", f"--config.coordinator_address=127.0.0.1:{port}",
       "--config.num_processes=2", f"--config.process_id={i}"],
      env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
  assert "method=delete" in outs[0][0] and "method=delete" not in outs[1][0]
  assert not glob.glob(os.path.join(workdir, "*.tmp"))
  with open(os.path.join(workdir, "report.json")) as f:
    two = json.load(f)
  assert two["platform"]["processes"] == 2 and two["platform"]["devices"] == 2
  assert os.path.exists(os.path.join(workdir, "logs", "process_1.log"))

  # One process with this session's 2 CPU devices (conftest), same config.
  from jaxunlearn import config as config_lib
  cfg = config_lib.from_json(os.path.join(workdir, "config.json"))
  cfg.distributed, cfg.process_id, cfg.num_processes = False, -1, 0
  cfg.coordinator_address, cfg.data_dir = "", data_dir
  one = run_lib.run(cfg, str(tmp_path / "one"), log=lambda *_: None)
  assert one["platform"]["processes"] == 1 and one["platform"]["devices"] == 2
  a, b = _numbers(one), _numbers(two)
  assert a.keys() == b.keys()
  for key in a:
    assert abs(a[key] - b[key]) <= 2e-3, (key, a[key], b[key])


SIGTERM_SCRIPT = r"""
import os, signal, sys
from jaxunlearn import cli, loop
workdir, term_at = sys.argv[1], int(sys.argv[2])
calls, phase = [], [None]
accumulate, run_epochs = loop._accumulate, loop.run_epochs
def counted(*args):  # after each step; DELETE's steps only
  if phase[0] == "delete":
    calls.append(1)
    if len(calls) == term_at:
      os.kill(os.getpid(), signal.SIGTERM)  # lands before the step's end check
  return accumulate(*args)
def tracked(*args, **kwargs):
  phase[0] = kwargs.get("desc")
  return run_epochs(*args, **kwargs)
loop._accumulate, loop.run_epochs = counted, tracked
sys.exit(cli.main(["run", "--workdir", workdir] + sys.argv[3:]))
"""


def _unlearned_params(workdir):
  (directory,) = glob.glob(os.path.join(workdir, "checkpoints", "unlearn-delete-*[!n]"))
  mngr = ocp.CheckpointManager(directory)
  return mngr.restore(mngr.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]


def _check_epoch_lines(done, workdir):
  """Without a terminal: no progress bars, one line per epoch of each phase,
  and the same epochs as records in metrics.jsonl."""
  assert "\r" not in done.stdout + done.stderr
  lines = done.stdout.splitlines()
  for phase, epochs in (("pretrain", 2), ("retrain", 2), ("delete", 3)):
    mine = [line for line in lines if line.startswith(f"{phase} epoch ")]
    assert [line.split()[2] for line in mine] == [f"{e}/{epochs}" for e in
                                                  range(1, epochs + 1)], mine
    assert all(" loss " in line and " img/s " in line and " eta " in line
               for line in mine)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  assert [(r["phase"], r["epoch"]) for r in records] == [
      ("pretrain", 1), ("pretrain", 2), ("retrain", 1), ("retrain", 2),
      ("delete", 1), ("delete", 2), ("delete", 3)]
  assert all(np.isfinite(r["loss"]) and r["lr"] >= 0 for r in records)


def test_sigterm_saves_at_the_next_step_and_resumes_bit_identical(data_dir, tmp_path):
  """SIGTERM inside DELETE's second epoch: exit 143 with one line saying
  where it stopped; the same command resumes from that step and ends with
  the parameters of a run that was never stopped. The uninterrupted run's
  log (no terminal) has one line per epoch; --quiet has none."""
  env = _env(data_dir)
  run = lambda workdir, term_at, *extra: subprocess.run(
      [sys.executable, "-c", SIGTERM_SCRIPT, workdir, str(term_at), *TINY, *extra],
      env=env, capture_output=True, text=True, timeout=600)
  clean = run(str(tmp_path / "clean"), 0)
  assert clean.returncode == 0, clean.stderr[-2000:]
  _check_epoch_lines(clean, str(tmp_path / "clean"))
  quiet = run(str(tmp_path / "clean"), 0, "--quiet")  # reuses every phase
  assert quiet.returncode == 0 and " epoch " not in quiet.stdout
  # |D_f| = 135 in batches of 64: 3 steps per epoch; the 5th is epoch 2's 2nd.
  stopped = run(str(tmp_path / "stopped"), 5)
  assert stopped.returncode == cli.PREEMPTED_EXIT, stopped.stderr[-2000:]
  (said,) = [line for line in stopped.stderr.splitlines()
             if line.startswith("jaxunlearn: stopped by SIGTERM")]
  assert said.startswith("jaxunlearn: stopped by SIGTERM at delete epoch 2 step 2")
  assert said.endswith("run the same command again to resume")
  assert not os.path.exists(tmp_path / "stopped" / "report.json")
  resumed = run(str(tmp_path / "stopped"), 0)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  # Only the rest of DELETE ran: epoch 2 from its third step, then epoch 3.
  phases = [line.split()[:3] for line in resumed.stdout.splitlines()
            if " epoch " in line and line.split()[1] == "epoch"]
  assert phases == [["delete", "epoch", "2/3"], ["delete", "epoch", "3/3"]], phases
  for a, b in zip(jax.tree.leaves(_unlearned_params(str(tmp_path / "clean"))),
                  jax.tree.leaves(_unlearned_params(str(tmp_path / "stopped")))):
    np.testing.assert_array_equal(a, b)


def test_a_second_run_on_a_held_workdir_fails_at_once(tmp_path, capsys):
  with run_lib.workdir_lock(str(tmp_path)):
    code = cli.main(["run", "--workdir", str(tmp_path), *TINY])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1
  assert f"workdir {tmp_path} is in use by a running job (pid {os.getpid()}" in err
  with run_lib.workdir_lock(str(tmp_path)):  # released: can be taken again
    pass


def _truncate_arrays(step_dir):
  """Cuts every array file of a saved step in half (a disk that filled up)."""
  files = [p for p in glob.glob(os.path.join(step_dir, "state", "**", "*"),
                                recursive=True)
           if os.path.isfile(p) and os.path.getsize(p) > 64
           and "d/" in p.replace(os.sep, "/")]
  assert files, os.listdir(os.path.join(step_dir, "state"))
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)


def test_a_damaged_latest_checkpoint_falls_back_or_names_the_directory(
    tmp_path, caplog):
  state = {"w": np.arange(4096, dtype=np.float32)}
  directory = str(tmp_path / "ckpt")
  mngr = ckpt_lib.manager(directory)
  ckpt_lib.save(mngr, 0, state, {"epoch": 0})
  ckpt_lib.save(mngr, 1, {"w": state["w"] + 1}, {"epoch": 1})
  _truncate_arrays(os.path.join(directory, "1"))
  abstract = {"w": jax.ShapeDtypeStruct((4096,), np.float32)}
  with caplog.at_level("WARNING", logger="jaxunlearn"):
    restored, meta = ckpt_lib.restore(ckpt_lib.manager(directory), abstract)
  assert meta == {"epoch": 0}
  np.testing.assert_array_equal(restored["w"], state["w"])
  assert "checkpoint" in caplog.text and "is damaged" in caplog.text
  assert ckpt_lib.manager(directory).all_steps() == [0]  # the bad one is gone

  _truncate_arrays(os.path.join(directory, "0"))
  with pytest.raises(UserError, match="delete that directory") as error:
    ckpt_lib.restore(ckpt_lib.manager(directory), abstract)
  assert directory in str(error.value) and "\n" not in str(error.value)


def test_sigterm_outside_a_saving_loop_stops_at_once_and_inside_one_waits():
  """Only a loop that checks the flag at its step boundaries may delay the
  stop; elsewhere (L2UL's and DLFD's loops, the evaluation) SIGTERM raises
  Preempted at once instead of being swallowed, and a request that a
  deferring loop never reached a boundary for is raised when it returns."""
  from jaxunlearn import preemption
  previous = preemption.install()
  try:
    with pytest.raises(preemption.Preempted, match="keeps no checkpoint"):
      os.kill(os.getpid(), signal.SIGTERM)
      for _ in range(10**6):  # the handler runs between bytecodes
        pass
    preemption.clear()

    seen = []
    @preemption.deferring
    def loop():
      os.kill(os.getpid(), signal.SIGTERM)
      for _ in range(10**5):
        pass
      seen.append(preemption.stop_requested())  # the step boundary's check
      return "finished"
    with pytest.raises(preemption.Preempted):
      loop()
    assert seen == [True]  # the loop ran on to its boundary first
  finally:
    preemption.clear()
    preemption.uninstall(previous)
