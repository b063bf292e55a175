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
                                           ("models", "small_cnn")])
def test_lists_names(capsys, kind, expected):
  code, out, _ = run_cli(capsys, kind)
  names = out.split()
  assert code == 0 and expected in names and names == sorted(names)


def test_lists_every_dataset_with_its_shape_and_tasks(capsys):
  """The registered datasets and those a task reads itself (segmentation's
  shapes and VOC, the face task's generated identities), sorted."""
  from jaxunlearn.data import DATASETS
  code, out, _ = run_cli(capsys, "datasets")
  rows = [line.split() for line in out.splitlines()[1:]]
  names = [r[0] for r in rows]
  assert code == 0 and names == sorted(names)
  assert set(DATASETS.names()) | {"shapes", "voc2012", "synthetic_faces"} == set(names)
  by_name = {r[0]: r for r in rows}
  assert by_name["digits"][1:4] == ["10", "8x8x1", "classification,"]
  assert by_name["shapes"][3] == "segmentation"
  assert by_name["synthetic_faces"][3] == "face"


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
