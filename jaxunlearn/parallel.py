"""Data parallelism: one 1-D device mesh, batch sharded, state replicated.

Every step in the library is written once, as a pure function
``step(state, batch, key) -> (state, metrics)`` with an optional
``axis_name``. It runs two ways with the same numbers:

- ``jit_step``: ``jax.jit`` over a ``Mesh`` with ``NamedSharding`` (the
  default). The batch is sharded along ``"data"``, parameters replicated; XLA
  inserts the collectives, and ``axis_name`` stays ``None``.
- ``shard_map_step``: ``jax.shard_map`` with ``axis_name="data"``: the step
  sees its device's slice, averages gradients with ``lax.psum`` of locally
  weighted sums and BatchNorm statistics with ``lax.pmean`` (the models take
  ``bn_axis_name``). This is the ``pmap`` programming model, kept usable for
  users who write per-device code. ``jax.pmap`` itself works the same way.

Multi-host: call ``initialize_distributed()`` first; batches are assembled
from each process's local slice with ``jax.make_array_from_process_local_data``.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxunlearn.errors import UserError

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Multi-process set-up; ``None`` lets ``jax.distributed.initialize`` read
  the environment (SLURM, TPU VMs, Kubernetes, ``JAX_COORDINATOR_ADDRESS``/
  ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``). A second call is a no-op."""
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def barrier(name: str) -> None:
  """Every process waits here until all arrive (no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def is_primary() -> bool:
  """Process 0 writes the files a run shares (report, records, prepared data)."""
  return jax.process_index() == 0


# Dots and elementwise ops, not reductions: with reductions too the ResNet-18
# step is no faster (0.76x vs 0.75x of PyTorch) and its first update is 3x
# further from the float64 one (3.4e-3 vs 1.2e-3 relative, the default's
# being 1.1e-3; benchmarks/results/cpu_flags.md).
YNN_FUSIONS_FLAG = "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise"
# jaxlib versions [from, to) whose XLA knows the flag: an XLA_FLAGS entry XLA
# does not know aborts the process, so "auto" stays off outside this range
# (the flag is in jaxlib 0.9.0, 0.10.0 and 0.10.2, not in 0.8.0). Extend
# the range once a newer jaxlib is checked.
YNN_FUSIONS_JAXLIB = ((0, 9), (0, 11))


# XLA:CPU's client runs each device's share of a multi-device program as a
# task on one thread pool, sized to the cores unless PJRT_NPROC says
# otherwise. A task that waits (at an all-reduce for its peer device, or for
# the device's in-flight pacing semaphore) holds its thread, so with fewer
# threads than twice the devices one device's tasks can hold them all while
# the peer's launch waits in the queue: a deadlock, which XLA aborts at its
# collective timeout (jaxlib 0.10.2; benchmarks/results/cpu_collectives.md).
CLIENT_THREADS_PER_DEVICE = 2


def host_cores() -> int:
  """Cores this process may use (what XLA sizes its thread pools by)."""
  return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
          else os.cpu_count() or 1)


def reserve_client_threads(devices: int) -> None:
  """Give XLA:CPU's client at least ``CLIENT_THREADS_PER_DEVICE`` threads
  per device (``PJRT_NPROC``; it also sizes the intra-op pool) when the
  cores are fewer; a ``PJRT_NPROC`` or ``NPROC`` the user set stands. It
  must be set before JAX starts its backends."""
  wanted = CLIENT_THREADS_PER_DEVICE * devices
  if devices > 1 and host_cores() < wanted and not (
      "PJRT_NPROC" in os.environ or "NPROC" in os.environ):
    os.environ["PJRT_NPROC"] = str(wanted)


def ynn_fusions_known() -> bool:
  """Whether the installed jaxlib's XLA knows ``YNN_FUSIONS_FLAG``."""
  from jax._src.lib import version as jaxlib_version
  low, high = YNN_FUSIONS_JAXLIB
  return low <= tuple(jaxlib_version[:2]) < high


def configure_cpu(devices: int = 0, ynn_fusions="auto") -> None:
  """CPU-only speed settings; they must be made before JAX starts its
  backends, and GPU/TPU runs ignore them.

  ``devices`` > 0: that many CPU devices (``jax_num_cpu_devices``), so
  ``make_mesh`` splits each batch over the cores, and XLA's client gets two
  threads per device even on fewer cores (``reserve_client_threads``).
  ``ynn_fusions``: XLA hands dots and elementwise ops, with the convolutions
  next to them, to YNNPACK (the experimental
  ``--xla_cpu_experimental_ynn_fusion_type``, appended to ``XLA_FLAGS``).
  ``"auto"`` (the default) turns it on when JAX has not
  started yet and the jaxlib is one that knows the flag
  (``YNN_FUSIONS_JAXLIB``), and otherwise leaves the process as it is;
  ``True`` insists (a ``UserError`` if it cannot be applied); ``False``
  does not add it. A value of the flag already in ``XLA_FLAGS`` stands.
  Why: faster convolution steps on CPU at float32 rounding-level changes
  (benchmarks/results/cpu_flags.md, step_vs_torch.md).
  """
  if devices < 0:
    raise UserError(f"cpu_devices={devices}; use 0 (JAX's default) or a count")
  if not isinstance(ynn_fusions, bool):  # a config string, e.g. from the CLI
    spelled = str(ynn_fusions).strip().lower()
    if spelled not in ("auto", "true", "false"):
      raise UserError(f"cpu_ynn_fusions={ynn_fusions!r}; use auto, true or false")
    ynn_fusions = {"true": True, "false": False}.get(spelled, "auto")
  from jax._src import xla_bridge  # no public "backends started?" query
  started = xla_bridge.backends_are_initialized()
  if devices and jax.config.jax_num_cpu_devices != devices:
    if started:
      raise UserError(
          f"cpu_devices={devices}: JAX already started its backends with "
          f"{jax.config.jax_num_cpu_devices} CPU device(s); set it before any "
          "JAX operation (a fresh process), or use "
          "XLA_FLAGS=--xla_force_host_platform_device_count=N")
    jax.config.update("jax_num_cpu_devices", devices)
  if not started:
    reserve_client_threads(devices)
  flags = os.environ.get("XLA_FLAGS", "")
  flag_name = YNN_FUSIONS_FLAG.split("=")[0]
  if any(f.split("=")[0] == flag_name for f in flags.split()):
    return  # set by the user (this or another value): theirs stands
  if ynn_fusions == "auto":
    ynn_fusions = not started and ynn_fusions_known()
  elif ynn_fusions and not ynn_fusions_known():
    raise UserError(
        f"cpu_ynn_fusions=True: jaxlib {jax.lib.__version__} is outside the "
        f"versions known to have {flag_name} ({YNN_FUSIONS_JAXLIB}); use auto "
        "or false, or set XLA_FLAGS yourself")
  if ynn_fusions:
    if started:
      raise UserError("cpu_ynn_fusions: JAX already started its backends; set "
                      "it before any JAX operation (a fresh process), or set "
                      f"XLA_FLAGS={YNN_FUSIONS_FLAG}")
    os.environ["XLA_FLAGS"] = f"{flags} {YNN_FUSIONS_FLAG}".strip()


def describe() -> dict:
  """What the numbers of a run depend on besides its config: backend,
  device kind and count, the host's CPU (a float32 result's last bits and
  every wall time depend on it), versions and the XLA flags."""
  return dict(backend=jax.default_backend(), devices=jax.device_count(),
              device_kind=jax.devices()[0].device_kind, host_cpu=host_cpu(),
              processes=jax.process_count(), jax=jax.__version__,
              jaxlib=jax.lib.__version__, xla_flags=os.environ.get("XLA_FLAGS", ""),
              pjrt_nproc=os.environ.get("PJRT_NPROC", ""))


def host_cpu() -> str:
  """The host CPU's model name (/proc/cpuinfo on Linux), and how many cores
  this process may use."""
  name = ""
  try:
    with open("/proc/cpuinfo") as f:
      name = next((line.split(":", 1)[1].strip() for line in f
                   if line.startswith("model name")), "")
  except OSError:
    pass
  return (f"{name or platform.processor() or platform.machine()}, "
          f"{host_cores()} cores")


def make_mesh(num_devices: Optional[int] = None) -> Mesh:
  """A 1-D mesh over the first ``num_devices`` devices (all by default)."""
  devices = jax.devices()
  if num_devices is not None and num_devices > 0:
    if num_devices > len(devices):
      raise UserError(
          f"num_devices={num_devices} but only {len(devices)} devices exist; "
          "on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise UserError(f"batch size {batch_size} is not divisible by the {n} "
                    f"devices; choose a multiple of {n}")


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree on every device of the mesh, as fresh buffers.

  Steps donate their state, so two leaves of a state (say the student's
  parameters and the frozen teacher's, both copies of the original model)
  must never share a buffer. A tree already replicated on the mesh (the
  state one loop hands the next) is copied on the devices; any other tree
  goes through host memory once (``device_put`` from one device to several
  may alias the first device's buffer with the source).
  """
  sharding = replicated(mesh)
  leaves = jax.tree.leaves(tree)
  if leaves and all(isinstance(x, jax.Array)
                    and x.sharding.is_equivalent_to(sharding, x.ndim)
                    for x in leaves):
    return jax.device_put(tree, sharding, may_alias=False)
  return jax.device_put(jax.device_get(tree), sharding)


def put_replicated(value: Any, mesh: Mesh) -> Any:
  """Host values (NumPy arrays or scalars, the same in every process) on
  every device of the mesh: an explicit transfer, without the equality check
  across processes that ``jax.device_put`` runs for a global sharding."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      value)


def replicate_key(key: jax.Array, mesh: Mesh) -> jax.Array:
  """A PRNG key array (the same in every process) replicated on the mesh,
  placed explicitly through its data (``jax.device_put`` takes no typed key
  to a sharding that spans several processes)."""
  sharding = replicated(mesh)
  if key.sharding.is_equivalent_to(sharding, key.ndim):
    return key
  data = jax.device_put(jax.random.key_data(key), sharding)
  return jax.random.wrap_key_data(data, impl=jax.random.key_impl(key))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places a global host batch on the mesh, sharded along the batch axis.

  Every process computes the same global batch (same keys, same order); with
  several processes each one hands over only its contiguous slice of rows,
  which matches ``jax.devices()`` being ordered by process.
  """
  sharding = batch_sharded(mesh)
  count, index = jax.process_count(), jax.process_index()

  def put(x):
    x = np.asarray(x)
    if count == 1:
      return jax.make_array_from_process_local_data(sharding, x)
    rows = x.shape[0] // count
    local = x[index * rows:(index + 1) * rows]
    return jax.make_array_from_process_local_data(sharding, local, x.shape)
  return jax.tree.map(put, batch)


def to_host(x: Any) -> Any:
  """A (possibly multi-host) global array as one NumPy array on every host."""
  if jax.process_count() == 1:
    return jax.device_get(x)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(x, tiled=True)


def loop_on_device(setting: str, mesh: Optional[Mesh] = None,
                   name: str = "device_loop") -> bool:
  """Whether a loop of model steps runs inside one jitted ``lax`` loop.

  ``setting``: "device", "host" or "auto" (on the device except on CPU).
  On XLA:CPU a convolution's weight gradient inside a ``while``/``scan``/
  ``fori_loop`` runs many times slower than the same op outside one
  (jax-ml/jax#12868), so on CPU the loop runs on the
  host, one jitted step per iteration, where a device sync costs nothing.
  Both ways compute the same numbers (tests of L2UL, RCD and DLFD).
  """
  if setting not in ("auto", "device", "host"):
    raise UserError(f"unknown {name} {setting!r}; use auto, device or host")
  if setting == "auto":
    device = mesh.devices.flat[0] if mesh is not None else jax.devices()[0]
    return device.platform != "cpu"
  return setting == "device"


def jit_step(step: Callable, mesh: Mesh, donate: bool = True) -> Callable:
  """jit-compiles ``step(state, batch, key)`` with the batch sharded."""
  rep, data = replicated(mesh), batch_sharded(mesh)
  return jax.jit(step, in_shardings=(rep, data, rep), out_shardings=(rep, rep),
                 donate_argnums=(0,) if donate else ())


def shard_map_step(step_with_axis: Callable, mesh: Mesh,
                   donate: bool = True) -> Callable:
  """Runs ``step_with_axis(state, batch, key, axis_name=...)`` per device.

  The pmap-style alternative to ``jit_step``; the state is replicated and the
  step must reduce over ``axis_name`` itself. Like ``jit_step`` it donates
  the state it replaces.
  """
  def per_device(state, batch, key):
    return step_with_axis(state, batch, key, axis_name=DATA_AXIS)
  mapped = jax.shard_map(per_device, mesh=mesh,
                         in_specs=(P(), P(DATA_AXIS), P()),
                         out_specs=(P(), P()), check_vma=False)
  return jax.jit(mapped, donate_argnums=(0,) if donate else ())
