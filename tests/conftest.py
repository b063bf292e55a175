"""Test set-up: 2 forced CPU devices and one prepared digits data dir per session."""
import os

# Before JAX initialises its backend: every test sees 2 CPU devices, so the
# data-parallel code paths run in the suite.
import jax

jax.config.update("jax_num_cpu_devices", 2)

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
