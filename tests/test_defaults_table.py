"""configs/README.md's table of defaults matches the code: every field of
every method's default_config() has a row, and its "ours" cell is the value."""
import ast
import math
import os

import pytest

from jaxunlearn.methods import METHODS

TABLE = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "README.md")


def _rows() -> dict[tuple[str, str], str]:
  """(method, field) -> the 'ours' cell, from the table's rows."""
  rows = {}
  with open(TABLE, encoding="utf-8") as f:
    for line in f:
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if len(cells) >= 4 and cells[0].strip("`") in METHODS:
        key = (cells[0].strip("`"), cells[1].strip("`"))
        assert key not in rows, f"two rows for {key}"
        rows[key] = cells[2]
  return rows


def _same(cell: str, value) -> bool:
  documented = ast.literal_eval(cell.strip("`"))
  if isinstance(value, float) or isinstance(documented, float):
    return math.isclose(float(documented), float(value), rel_tol=1e-12)
  return documented == value or (isinstance(value, tuple) and list(value) == documented)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_default_is_in_the_table_with_its_value(method):
  rows = _rows()
  defaults = METHODS.get(method).default_config().to_dict()
  missing = sorted(set(defaults) - {f for m, f in rows if m == method})
  assert not missing, f"configs/README.md has no row for {method}.{missing}"
  for field, value in defaults.items():
    assert _same(rows[(method, field)], value), (
        f"{method}.{field}: the table says {rows[(method, field)]}, the code {value!r}")
  stale = sorted(f for m, f in rows if m == method and f not in defaults)
  assert not stale, f"configs/README.md documents fields that do not exist: {stale}"
