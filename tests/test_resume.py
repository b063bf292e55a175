"""A killed run resumes from its last checkpoint and ends bit-identical.

The run is the main job (train the original, unlearn with DELETE) in a
subprocess that SIGKILLs itself while writing the unlearning phase's third
checkpoint (orbax saves asynchronously, so the kill lands mid-write); a second
process resumes in the same workdir. Its final parameters must equal, bit for
bit, those of a run that was never interrupted.
"""
import glob
import os
import signal
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

SCRIPT = r"""
import os, signal, sys
import jax
jax.config.update("jax_num_cpu_devices", 2)
from jaxunlearn import checkpoint as ckpt_lib, config, run as run_lib
workdir, kill_at = sys.argv[1], int(sys.argv[2])
saves = []
original_save = ckpt_lib.save
def save(mngr, step, state, meta=None):
  print("save", os.path.basename(str(mngr.directory)).split("-")[0], step, flush=True)
  if "unlearn-" in str(mngr.directory):
    saves.append(step)
    if len(saves) == kill_at:
      # Start the asynchronous write, then die before it is committed.
      mngr.save(step, args=ckpt_lib.ocp.args.Composite(
          state=ckpt_lib.ocp.args.StandardSave(state),
          meta=ckpt_lib.ocp.args.JsonSave(meta or {})))
      os.kill(os.getpid(), signal.SIGKILL)
  original_save(mngr, step, state, meta)
ckpt_lib.save = save
c = config.get_config()
c.data_dir = os.environ["JAXUNLEARN_DATA_DIR"]
c.progress = False
c.train.epochs = 2
c.with_retrained = False
c.delete.epochs = 5
run_lib.run(c, workdir, log=lambda *_: None)
"""


def _run(workdir, kill_at=0):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-c", SCRIPT, workdir, str(kill_at)],
                        env=env, capture_output=True, text=True, timeout=600)


def _final_unlearned(workdir):
  (directory,) = glob.glob(os.path.join(workdir, "checkpoints", "unlearn-delete-*[!n]"))
  mngr = ocp.CheckpointManager(directory)
  step = mngr.latest_step()
  state = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))["state"]
  return step, state


def test_sigkilled_unlearning_resumes_bit_identical(data_dir, tmp_path):
  clean, killed = str(tmp_path / "clean"), str(tmp_path / "killed")
  done = _run(clean)
  assert done.returncode == 0, done.stderr[-2000:]

  died = _run(killed, kill_at=3)
  assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
  assert not os.path.exists(os.path.join(killed, "report.json"))
  resumed = _run(killed)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  # The resumed process trained neither the original again nor the unlearning
  # epochs already committed: it started after the last complete checkpoint.
  saved = [line.split()[1:] for line in resumed.stdout.splitlines()
           if line.startswith("save ")]
  assert saved and all(phase == "unlearn" for phase, _ in saved), saved
  assert int(saved[0][1]) in (2, 3), saved  # epoch 1 (or 2) was the last commit

  step_a, a = _final_unlearned(clean)
  step_b, b = _final_unlearned(killed)
  assert step_a == step_b == 4
  flat_a = dict(zip(*_flatten(a)))
  flat_b = dict(zip(*_flatten(b)))
  assert flat_a.keys() == flat_b.keys() and flat_a
  for name in flat_a:
    np.testing.assert_array_equal(flat_a[name], flat_b[name], err_msg=name)


def _flatten(tree):
  import jax
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return [jax.tree_util.keystr(p) for p, _ in leaves], [np.asarray(v) for _, v in leaves]
