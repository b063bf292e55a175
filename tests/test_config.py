"""The base config: reading it imports no method, and its method sections
are still every method's defaults wherever they are read or overridden."""
import copy
import subprocess
import sys

from jaxunlearn import cli
from jaxunlearn import config as base_config


def test_reading_a_config_imports_no_method_nor_jax():
  code = ("import sys\n"
          "from jaxunlearn.config import get_config\n"
          "c = get_config()\n"
          "assert 'delete' in c and 'rcd' in c.eval\n"
          "loaded = sorted(m for m in sys.modules if m.startswith('jaxunlearn'))\n"
          "assert loaded == ['jaxunlearn', 'jaxunlearn.config'], loaded\n"
          "assert 'jax' not in sys.modules\n"
          "assert c.delete.lr > 0 and 'jaxunlearn.methods' in sys.modules\n")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_every_method_has_its_defaults_as_its_section():
  from jaxunlearn.methods import METHODS
  from jaxunlearn.metrics.evaluators import EVALUATORS
  assert base_config.method_names() == METHODS.names()
  c = base_config.get_config()
  for name in METHODS.names():
    assert c[name] == METHODS.get(name).default_config()
  for name in ("rcd", "audit"):
    assert c.eval[name] == EVALUATORS.get(name).default_config()
  whole = base_config.get_config().to_dict()
  assert set(METHODS.names()) <= set(whole)
  assert whole["ieu"] == METHODS.get("ieu").default_config().to_dict()


def test_sections_are_written_copied_and_compared_as_before():
  from jaxunlearn.methods import METHODS
  c = base_config.get_config()
  c.delete.update(lr=0.5)
  c.ieu.alpha = 3.0
  c["scrub"] = base_config.tuned_section("scrub", "digits")
  assert c.delete.lr == 0.5 and c.delete.epochs == METHODS.get("delete").default_config().epochs
  assert c.scrub == base_config.load_file(
      f"{base_config.CONFIGS_DIR}/scrub_digits.py").scrub
  copied = copy.deepcopy(c)
  assert copied == c and copied.to_dict() == c.to_dict() and copied.ieu.alpha == 3.0
  assert base_config.get_config() == base_config.get_config()
  assert base_config.get_config() != c
  del c["neggrad"]
  assert "neggrad" not in c and "neggrad" not in c.to_dict()


def test_method_fields_are_overridden_on_the_command_line(capsys):
  cfg, _ = cli._load_config(["--config.ieu.alpha=2.5", "--config.eval.rcd.steps=7"])
  assert cfg.ieu.alpha == 2.5 and cfg.eval.rcd.steps == 7
  from jaxunlearn.methods import METHODS
  assert cfg.ieu.epochs == METHODS.get("ieu").default_config().epochs
  assert cli.main(["run", "--config.ieu.no_such_field=1"]) == 2
  assert "no_such_field" in capsys.readouterr().err
