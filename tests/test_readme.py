"""The README's python blocks run as written, and the package docstring
names only things that exist: neither can drift from the code unnoticed."""
import importlib
import os
import re

import pytest

import jaxunlearn

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def python_blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def test_readme_has_the_functional_api_block():
  assert any("METHODS.get(" in block for block in python_blocks())


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, data_dir, capsys):
  """Executed unchanged (the data_dir fixture only points
  $JAXUNLEARN_DATA_DIR at the prepared digits, as a user's environment
  would)."""
  block = python_blocks()[index]
  exec(compile(block, f"README.md python block {index}", "exec"), {})
  out = capsys.readouterr().out
  if "METHODS.get(" in block:
    assert "'unlearned'" in out  # its last line prints the forget accuracies


def resolve(dotted: str):
  """``a.b.c`` under the jaxunlearn package: modules imported, then
  attributes."""
  parts = dotted.removeprefix("jaxunlearn.").split(".")
  obj, module = jaxunlearn, "jaxunlearn"
  for part in parts:
    if not hasattr(obj, part):
      try:
        obj = importlib.import_module(f"{module}.{part}")
        module = f"{module}.{part}"
        continue
      except ModuleNotFoundError:
        raise AssertionError(f"{dotted}: {module} has no {part}") from None
    obj = getattr(obj, part)
    module = f"{module}.{part}"
  return obj


def test_package_docstring_names_things_that_exist():
  """Every ``name.attr...`` the docstring quotes resolves (its leading
  dotted name; what follows is a call's arguments)."""
  literals = re.findall(r"``(.+?)``", jaxunlearn.__doc__, re.S)
  dotted = [m[0] for m in (re.match(r"[A-Za-z_][\w.]*\.\w+", " ".join(l.split()))
                           for l in literals) if m]
  assert len(dotted) >= 5, literals
  for name in dotted:
    assert resolve(name) is not None, name
  with pytest.raises(AssertionError, match="has no evaluate_model"):
    resolve("metrics.evaluators.evaluate_model")  # the check can fail
