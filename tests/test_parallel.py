"""Data parallelism: 2 devices (jit + NamedSharding, or shard_map) = 1 device."""
import os

import chex
import jax
import numpy as np
import pytest

from jaxunlearn import loop, parallel
from jaxunlearn.data.splits import class_forget_split
from jaxunlearn.methods import UnlearnTask
from jaxunlearn.methods import delete
from jaxunlearn.models import get_model
from jaxunlearn.optim import sgd
from jaxunlearn.state import TrainState
from jaxunlearn.models import init_variables


def max_abs_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def task_parts(digits):
  spec, splits = digits
  data = class_forget_split(splits["train"], splits["test"], (3,), spec.num_classes)
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  variables = init_variables(model, spec.image_shape, jax.random.key(0))
  return spec, data, model, variables


def run_delete(task_parts, num_devices):
  spec, data, model, variables = task_parts
  mesh = parallel.make_mesh(num_devices)
  task = UnlearnTask(model=model, variables=variables, data=data, num_classes=10,
                     image_shape=spec.image_shape, mesh=mesh,
                     augment=loop.Augment(spec.crop_padding, spec.flip),
                     train_config=None, progress=False)
  cfg = delete.default_config()
  cfg.epochs = 2  # |D_f| = 135 = 2 x 64 + 7: the last batch is padded
  return delete.unlearn(task, cfg, jax.random.key(1))[0]


def test_delete_run_two_devices_equals_one(task_parts):
  assert len(jax.devices()) >= 2
  one = run_delete(task_parts, 1)
  two = run_delete(task_parts, 2)
  assert max_abs_diff(one, task_parts[3]) > 1e-3  # it did train
  # chex compares the trees' structure and shapes too, not only values.
  chex.assert_trees_all_close(one, two, atol=1e-5, rtol=0)


def test_shard_map_step_equals_jit_step(task_parts):
  """The pmap-style step (axis_name, psum'd gradients, cross-device BatchNorm)
  gives the single-device numbers, also when the devices hold different
  numbers of real examples."""
  spec, data, model, variables = task_parts
  tx = sgd(0.05, 0.9)
  step = delete.make_step(model, tx)
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((8, 8, 8, 1)).astype(np.float32),
           "label": rng.integers(0, 10, 8).astype(np.int32),
           "mask": np.array([1, 1, 1, 1, 1, 1, 0, 0], np.float32)}

  def three_steps(fn, mesh):
    state = parallel.replicate(delete.DeleteState(TrainState.create(variables, tx),
                                                  variables), mesh)
    for _ in range(3):
      state, _ = fn(state, parallel.shard_batch(batch, mesh), jax.random.key(1))
    return jax.device_get(state.train.variables)

  mesh1, mesh2 = parallel.make_mesh(1), parallel.make_mesh(2)
  reference = three_steps(parallel.jit_step(step, mesh1), mesh1)
  mapped = three_steps(parallel.shard_map_step(step, mesh2), mesh2)
  chex.assert_trees_all_close(reference, mapped, atol=1e-5, rtol=0)


def test_pmap_step_equals_jit_step(task_parts):
  """jax.pmap (maintenance mode, still supported) runs the same step."""
  spec, data, model, variables = task_parts
  tx = sgd(0.05, 0.9)
  step = delete.make_step(model, tx)
  rng = np.random.default_rng(1)
  batch = {"image": rng.random((8, 8, 8, 1)).astype(np.float32),
           "label": rng.integers(0, 10, 8).astype(np.int32),
           "mask": np.ones(8, np.float32)}
  mesh1 = parallel.make_mesh(1)
  state = parallel.replicate(delete.DeleteState(TrainState.create(variables, tx),
                                                variables), mesh1)
  reference, _ = parallel.jit_step(step, mesh1, donate=False)(
      state, parallel.shard_batch(batch, mesh1), jax.random.key(1))

  pmapped = jax.pmap(lambda s, b, k: step(s, b, k, axis_name="data"),
                     axis_name="data", in_axes=(None, 0, None), out_axes=None)
  host_state = jax.device_get(state)
  per_device = jax.tree.map(lambda x: x.reshape(2, 4, *x.shape[1:]), batch)
  out, _ = pmapped(host_state, per_device, jax.random.key(1))
  chex.assert_trees_all_close(jax.device_get(reference.train.variables),
                              jax.device_get(out.train.variables), atol=1e-5, rtol=0)


def test_batch_size_must_divide_devices():
  from jaxunlearn.errors import UserError
  with pytest.raises(UserError, match="not divisible"):
    parallel.check_batch_size(7, parallel.make_mesh(2))


def test_configure_cpu_in_a_fresh_process():
  """cpu_devices / cpu_ynn_fusions take effect before JAX starts (the
  devices exist, the flag is in XLA_FLAGS and a convolution's gradient
  compiles and runs under it; on fewer than 6 cores XLA's client pools get
  the 6 threads PJRT_NPROC asks for); repeating them is a no-op; changing
  the device count afterwards is a one-line error naming the fix."""
  import subprocess
  import sys
  code = """
import os, jax, jax.numpy as jnp
from jaxunlearn import parallel
from jaxunlearn.errors import UserError
parallel.configure_cpu(3)  # ynn_fusions "auto": on where the jaxlib knows it
assert len(jax.devices()) == 3, jax.devices()
if parallel.host_cores() < 6:
  assert os.environ["PJRT_NPROC"] == "6", os.environ.get("PJRT_NPROC")
  names = [open(f"/proc/self/task/{t}/comm").read().strip()
           for t in os.listdir("/proc/self/task")]
  assert names.count("tf_XLAEigen") == 6, sorted(set(names))
else:
  assert "PJRT_NPROC" not in os.environ
assert ((parallel.YNN_FUSIONS_FLAG in os.environ.get("XLA_FLAGS", "").split())
        == parallel.ynn_fusions_known())
x = jnp.ones((2, 8, 8, 4))
g = jax.grad(lambda w: jnp.sum(jax.lax.conv_general_dilated(
    x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))))(
    jnp.ones((3, 3, 4, 5)))
assert float(g[1, 1, 0, 0]) == 2 * 8 * 8, float(g[1, 1, 0, 0])
parallel.configure_cpu(3, parallel.ynn_fusions_known())
try:
  parallel.configure_cpu(2)
except UserError as e:
  assert "cpu_devices=2" in str(e) and "fresh process" in str(e), e
else:
  raise AssertionError("no error")
print("ok")
"""
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC")}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_client_threads_reserved_only_when_cores_are_fewer(monkeypatch):
  """Two client threads per device when the cores are fewer; enough cores,
  one device, or a PJRT_NPROC/NPROC the user set leave the process alone."""
  for var in ("PJRT_NPROC", "NPROC"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setattr(parallel, "host_cores", lambda: 2)
  parallel.reserve_client_threads(1)
  assert "PJRT_NPROC" not in os.environ
  parallel.reserve_client_threads(3)
  assert os.environ["PJRT_NPROC"] == "6"
  monkeypatch.setenv("PJRT_NPROC", "5")
  parallel.reserve_client_threads(4)
  assert os.environ["PJRT_NPROC"] == "5"
  monkeypatch.delenv("PJRT_NPROC")
  monkeypatch.setenv("NPROC", "3")
  parallel.reserve_client_threads(4)
  assert "PJRT_NPROC" not in os.environ
  monkeypatch.delenv("NPROC")
  monkeypatch.setattr(parallel, "host_cores", lambda: 8)
  parallel.reserve_client_threads(4)
  assert "PJRT_NPROC" not in os.environ


def test_ynn_fusions_auto_never_fails_and_true_needs_a_known_jaxlib(monkeypatch):
  """JAX has started here: "auto" leaves the process alone; True
  with a jaxlib outside the known versions is an error naming the fix, as
  is a spelling that is neither; command-line spellings of the three work;
  a value of the flag the user set is kept."""
  from jaxunlearn.errors import UserError
  jax.devices()  # JAX has started, whichever tests ran before
  flags = os.environ.get("XLA_FLAGS", "")
  parallel.configure_cpu(0, "auto")
  parallel.configure_cpu(0, "False")
  assert os.environ.get("XLA_FLAGS", "") == flags
  if parallel.YNN_FUSIONS_FLAG in flags.split():
    parallel.configure_cpu(0, "true")  # already on: nothing to do
  monkeypatch.setenv("XLA_FLAGS", "")
  if parallel.ynn_fusions_known():
    with pytest.raises(UserError, match="already started"):
      parallel.configure_cpu(0, "True")
  monkeypatch.setattr(parallel, "YNN_FUSIONS_JAXLIB", ((9, 0), (9, 1)))
  assert not parallel.ynn_fusions_known()
  parallel.configure_cpu(0, "auto")
  with pytest.raises(UserError, match="outside the versions known"):
    parallel.configure_cpu(0, True)
  with pytest.raises(UserError, match="use auto, true or false"):
    parallel.configure_cpu(0, "yes")
  assert os.environ["XLA_FLAGS"] == ""
  # A value the user set stands, whatever the setting.
  monkeypatch.setattr(parallel, "YNN_FUSIONS_JAXLIB", ((0, 0), (99, 0)))
  mine = "--xla_cpu_experimental_ynn_fusion_type=dot"
  monkeypatch.setenv("XLA_FLAGS", mine)
  for setting in ("auto", True, False):
    parallel.configure_cpu(0, setting)
    assert os.environ["XLA_FLAGS"] == mine


def test_run_applies_the_cpu_settings():
  """``run`` applies cpu_devices first: here JAX already runs with 2 CPU
  devices, so asking for 3 fails before any work, naming the fix."""
  from jaxunlearn import config as base_config
  from jaxunlearn.errors import UserError
  from jaxunlearn.run import run
  jax.devices()  # JAX has started, whichever tests ran before
  cfg = base_config.get_config()
  cfg.compilation_cache_dir = ""
  cfg.cpu_devices = 3
  with pytest.raises(UserError, match="cpu_devices=3"):
    run(cfg, "/nonexistent/never-written")
