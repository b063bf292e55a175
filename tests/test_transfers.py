"""No hidden host round trips: every method's loop runs under
``jax.transfer_guard("disallow")`` and waits for the devices only where its
design says: ``loop.run_epochs`` once per epoch (the fetch of the epoch's
metrics, finiteness check and next orders) and once before its first step;
L2UL after each step (its stop rule); DLFD at each gate; RCD's curve once.

The guard is set for every thread (the batches are read ahead in another
one). On CPU it catches implicit host-to-device transfers (a NumPy array or
a Python number handed to a jitted function or a jnp op); implicit reads of
a device value are free there (a CPU array's memory is the host's), so the
watch also fails ``float``/``int``/``bool``/``tolist`` of a device array
outside ``jax.device_get``, as an accelerator would. (``np.asarray`` of a
CPU array reads through the buffer protocol, which no hook here sees.)

The tasks are the tiny ones of tests/test_baselines.py, on its 2 devices.
"""
import contextlib

import jax
import ml_collections
import numpy as np
import pytest
from jax._src import array as jax_array  # the hook for implicit reads
from jax._src.lib import guard_lib

from jaxunlearn import batches, loop, parallel
from jaxunlearn.methods import METHODS, l2ul
from jaxunlearn.methods.dlfd import driver
from jaxunlearn.metrics import rcd

import test_baselines
from test_baselines import task_for

small = test_baselines.small  # the fixture, shared


class Watch:
  """Records the host's waits for the devices ("G": a ``jax.device_get``
  holding a device array, "W": ``jax.block_until_ready``) and the loops'
  steps ("S"); inside ``on()`` implicit transfers raise, in every thread."""

  def __init__(self, monkeypatch):
    self.events, self.active = [], 0
    get, wait = jax.device_get, jax.block_until_ready

    def counted_get(tree):
      if any(isinstance(x, jax.Array) for x in jax.tree.leaves(tree)):
        self.events.append("G")
      return get(tree)

    def counted_wait(tree):
      self.events.append("W")
      return wait(tree)
    monkeypatch.setattr(jax, "device_get", counted_get)
    monkeypatch.setattr(jax, "block_until_ready", counted_wait)
    value = jax_array.ArrayImpl._value

    def explicit_reads_only(array):
      if self.active and not guard_lib.thread_local_state().explicit_device_get:
        raise AssertionError("implicit device-to-host transfer")
      return value.fget(array)
    monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(explicit_reads_only))

  @contextlib.contextmanager
  def on(self):
    previous = jax.config.jax_transfer_guard
    jax.config.update("jax_transfer_guard", "disallow")
    self.active += 1
    try:
      yield
    finally:
      self.active -= 1
      jax.config.update("jax_transfer_guard", previous)

  def step(self, fn):
    def counted(*args, **kwargs):
      self.events.append("S")
      return fn(*args, **kwargs)
    return counted

  def since(self, start: int) -> str:
    return "".join(self.events[start:])


@pytest.fixture
def host_small(small):
  """``small`` with the original model on the host, as ``run`` hands it over."""
  spec, data, model, variables = small
  return spec, data, model, jax.device_get(variables)


def _config(name):
  cfg = METHODS.get(name).default_config()
  for field, value in (("epochs", 2), ("batch_size", 32), ("msteps", 1),
                       ("forget_batch_size", 32), ("n_adv", 2), ("pgd_steps", 3),
                       ("noise_steps", 3), ("max_iter", 1), ("steps", 2)):
    if field in cfg:
      cfg[field] = value
  if name == "dlfd":
    cfg.gate_every = 1
  return cfg


# Methods whose loop is loop.run_epochs; SCRUB and SalUn also run their own
# loop of passes around it (checked from their first pass to their result).
EPOCH_LOOPS = ("bad_teacher", "boundary_expand", "boundary_shrink", "delete",
               "finetune", "ieu", "l1_sparse", "neggrad", "neggrad_plus",
               "random_label", "retrain", "salun", "scrub", "unsir")
PASS_LOOPS = ("salun", "scrub")


def test_every_loop_is_covered():
  without_loop = {"fisher", "ssd"}  # a gradient statistic, then no training
  assert set(EPOCH_LOOPS) | {"l2ul", "dlfd"} | without_loop == set(METHODS.names())


@pytest.mark.parametrize("name", EPOCH_LOOPS)
def test_epoch_loops_transfer_nothing_implicitly_and_sync_once_per_epoch(
    host_small, monkeypatch, name):
  watch, calls, whole, first = Watch(monkeypatch), [], contextlib.ExitStack(), []
  run_epochs = loop.run_epochs

  def watched(step, state, split, **kw):
    replicated = parallel.replicated(kw["mesh"])
    leaves = jax.tree.leaves(state)
    on_mesh = all(isinstance(x, jax.Array) and
                  x.sharding.is_equivalent_to(replicated, x.ndim) for x in leaves)
    # Before the first step: the first epoch's orders, and the state's copy
    # through the host when it is not on the mesh yet (parallel.replicate).
    before = 1 + (not on_mesh and any(isinstance(x, jax.Array) for x in leaves))
    steps = batches.num_batches(len(split), kw["batch_size"],
                                kw.get("drop_remainder", False))
    if name in PASS_LOOPS and not calls:
      whole.enter_context(watch.on())
      first.append(len(watch.events))
    start = len(watch.events)
    with watch.on():
      out = run_epochs(watch.step(step), state, split, **kw)
    calls.append(watch.since(start))
    assert calls[-1] == "G" * before + ("S" * steps + "G") * kw["epochs"], (
        kw.get("desc"), calls[-1])
    return out
  monkeypatch.setattr(loop, "run_epochs", watched)
  task = task_for(host_small)
  task = task._replace(train_config=ml_collections.ConfigDict(
      dict(task.train_config.to_dict(), epochs=2)))
  with whole:
    out, _ = METHODS.get(name).unlearn(task, _config(name), jax.random.key(5))
  assert calls
  if name in PASS_LOOPS:  # between passes nothing; then the result's fetch
    assert watch.since(first[0]) == "".join(calls) + "G"
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out))


def test_l2ul_fetches_only_its_stop_rule(host_small, monkeypatch):
  watch, whole, start = Watch(monkeypatch), contextlib.ExitStack(), []
  host_loop = l2ul.host_loop

  def watched(cond_fn, body_fn, carry, args):
    start.append(len(watch.events))
    whole.enter_context(watch.on())  # from the first step to the result
    return host_loop(cond_fn, watch.step(body_fn), carry, args)
  monkeypatch.setattr(l2ul, "host_loop", watched)
  cfg = _config("l2ul")
  # Toward label 0 from a random model, 5 steps a pass: several steps.
  cfg.update(device_loop="host", relabel=0, adv_batch_size=16)
  with whole:
    _, stats = METHODS.get("l2ul").unlearn(task_for(host_small), cfg,
                                           jax.random.key(5))
  steps = stats["steps"]
  assert steps > 1
  # A stop check before every step and after the last, then the result; a
  # run whose budget ran out also checks the rule on the result.
  assert watch.since(start[0]) == "GS" * steps + "G" + "G" + "G" * (
      steps == stats["max_steps"])


def test_dlfd_waits_only_at_its_gate(host_small, monkeypatch):
  watch, whole, started = Watch(monkeypatch), contextlib.ExitStack(), []
  make_gate, jit_steps = driver.make_gate, driver.jit_steps

  def watched_gate(*args, **kwargs):
    gate = make_gate(*args, **kwargs)

    def first_on(variables):
      if not started:  # from the first gate to the result
        started.append(len(watch.events))
        whole.enter_context(watch.on())
      return gate(variables)
    return first_on

  def watched_steps(*args, **kwargs):
    return tuple(watch.step(fn) for fn in jit_steps(*args, **kwargs))
  monkeypatch.setattr(driver, "make_gate", watched_gate)
  monkeypatch.setattr(driver, "jit_steps", watched_steps)
  with whole:
    _, stats = METHODS.get("dlfd").unlearn(task_for(host_small), _config("dlfd"),
                                           jax.random.key(5))
  total = stats["steps"]
  assert total > 1 and stats["gate_calls"] == total + 1
  # Each gate: wait for the step (to time the gate alone), fetch its
  # verdict; then one step. The last gate, then the chosen model's fetch.
  # (The watch starts inside the first gate, just after its wait.)
  assert watch.since(started[0] - 1) == "WGS" * total + "WG" + "G"


def test_rcd_curve_is_fetched_once(host_small, monkeypatch):
  spec, data, model, variables = host_small
  watch, whole, start = Watch(monkeypatch), contextlib.ExitStack(), []
  host_curve = rcd._host_curve

  def watched(*args):
    start.append(len(watch.events))
    whole.enter_context(watch.on())
    return host_curve(*args)
  monkeypatch.setattr(rcd, "_host_curve", watched)
  monkeypatch.setattr(rcd, "_host_step", watch.step(rcd._host_step))
  with whole:
    accs, dists = rcd.relearning_curve(model, variables, data.forget, lr=0.01,
                                       momentum=0.9, batch_size=16, steps=4,
                                       seed=0, device_loop="host")
  assert watch.since(start[0]) == "S" * 4 + "G"
  assert accs.shape == dists.shape == (5,)


def test_the_watch_catches_implicit_transfers(monkeypatch):
  """What the tests above rely on: the watch fails a NumPy array handed to a
  jitted function and a device value read with float() or bool()."""
  watch = Watch(monkeypatch)
  double = jax.jit(lambda x: 2 * x)
  on_device = double(jax.device_put(np.float32(1.0)))
  with watch.on():
    with pytest.raises(Exception, match="host-to-device"):
      double(np.float32(1.0))
    with pytest.raises(AssertionError, match="device-to-host"):
      float(on_device)
    with pytest.raises(AssertionError, match="device-to-host"):
      bool(on_device)
    assert float(jax.device_get(on_device)) == 2.0
  assert watch.since(0) == "G"
