"""Test set-up: 2 forced CPU devices and one prepared digits data dir per session."""
import os

import jax

from jaxunlearn import parallel

# Before JAX initialises its backend: every test sees 2 CPU devices, so the
# data-parallel code paths run in the suite, XLA's client gets two threads
# per device (without them the two devices' collectives can deadlock on a
# 2-core machine), and XLA's flags are those `jaxunlearn run` sets by
# default (cpu_ynn_fusions "auto").
parallel.configure_cpu(devices=2)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir with digits prepared once (shared by the whole session)."""
  path = str(tmp_path_factory.mktemp("tfds"))
  os.environ["JAXUNLEARN_DATA_DIR"] = path
  from jaxunlearn.data import load_dataset
  load_dataset("digits", path)
  return path


@pytest.fixture(scope="session")
def digits(data_dir):
  from jaxunlearn.data import load_dataset
  return load_dataset("digits", data_dir)


def _backend_compiles(fn):
  """(fn(), number of XLA compilations while it ran)."""
  events = []
  listener = lambda name, *_, **__: events.append(name)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    out = fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return out, events.count("/jax/core/compile/backend_compile_duration")


@pytest.fixture
def backend_compiles():
  """``backend_compiles(fn) -> (fn(), XLA compilations while it ran)``."""
  return _backend_compiles
