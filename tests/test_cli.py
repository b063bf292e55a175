"""The command line: names, and one-line errors (exit 2) for fixable mistakes."""
import os
import subprocess
import sys

import pytest

from jaxunlearn import cli


def run_cli(capsys, *args):
  code = cli.main(list(args))
  out = capsys.readouterr()
  return code, out.out, out.err


@pytest.mark.parametrize("kind,expected", [("methods", "delete"),
                                           ("datasets", "digits"),
                                           ("models", "small_cnn")])
def test_lists_names(capsys, kind, expected):
  code, out, _ = run_cli(capsys, kind)
  names = out.split()
  assert code == 0 and expected in names and names == sorted(names)


@pytest.mark.parametrize("override,message", [
    ("--config.method=nonsense", "unknown method 'nonsense'"),
    ("--config.dataset=nonsense", "unknown dataset 'nonsense'"),
    ("--config.forget.classes=(12,)", "forget class 12 is out of range"),
    ("--config.forget.classes=()", "forget.classes is empty"),
    ("--config.forget.kind=random --config.forget.fraction=0.0001",
     "the forget set is empty"),
    ("--config.model.name=nonsense", "unknown model"),
    ("--config.no_such_field=1", ""),
])
def test_user_errors_are_one_line(capsys, tmp_path, data_dir, override, message):
  code, out, err = run_cli(capsys, "run", "--workdir", str(tmp_path),
                           f"--config.data_dir={data_dir}",
                           "--config.progress=False", *override.split())
  assert code == 2
  assert len(err.strip().splitlines()) == 1 and err.startswith("jaxunlearn: error:")
  assert message in err


def test_unprepared_dataset_fails_fast_offline(tmp_path):
  """Nothing prepared, no archive, no network: one line that names the file
  and the directory, from a fresh process (no traceback)."""
  env = dict(os.environ, JAXUNLEARN_DATA_DIR=str(tmp_path))
  result = subprocess.run(
      [sys.executable, "-m", "jaxunlearn.cli", "run", "--workdir",
       str(tmp_path / "w"), "--config.dataset=cifar10", "--config.progress=False"],
      capture_output=True, text=True, env=env, timeout=120)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert "cifar-10-python.tar.gz" in lines[0] and str(tmp_path) in lines[0]


@pytest.mark.parametrize("path", ["configs/dlfd_digits.py",
                                  "configs/ieu_paper.py:cifar100,class30"])
def test_load_file_gives_the_config_the_cli_loads(path):
  """``config.load_file`` (the experiments' and benchmarks' loader) and
  ``--config`` give the same config, ``file.py:arg`` included."""
  from jaxunlearn.config import load_file
  root = os.path.join(os.path.dirname(__file__), os.pardir)
  path = os.path.join(root, path)
  ours = load_file(path).to_dict()
  cli_cfg, _ = cli._load_config(["--config", path])
  assert ours == cli_cfg.to_dict()
  assert ours != load_file(os.path.join(root, "configs", "baselines_digits.py")).to_dict()


def test_fashion_mnist_configs_pick_up_each_methods_tuning():
  """configs/fashion_mnist.py:<method> takes the method's section from
  configs/<method>_fashion_mnist.py (which itself starts from the base file,
  so the two must not load each other in a loop), else the authors' one."""
  import os
  from jaxunlearn.config import load_file
  from jaxunlearn.methods import METHODS
  configs = os.path.join(os.path.dirname(__file__), os.pardir, "configs")
  l2ul = load_file(os.path.join(configs, "fashion_mnist.py:l2ul"))
  assert (l2ul.dataset, l2ul.model.name) == ("fashion_mnist", "cnn28")
  assert l2ul.l2ul.epsilon == 2.0
  own = load_file(os.path.join(configs, "l2ul_fashion_mnist.py:64"))
  assert own.forget.count == 64 and own.train.to_dict() == l2ul.train.to_dict()
  delete = load_file(os.path.join(configs, "fashion_mnist.py"))
  assert delete.delete.to_dict() == METHODS.get("delete").default_config().to_dict()
