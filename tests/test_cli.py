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


# The flags each command's --help must name (what a user needs to run it).
COMMAND_FLAGS = {
    "run": ("--config", "--config.FIELD=VALUE", "--workdir"),
    "seeds": ("--seeds", "--config", "--workdir"),
    "sweep": ("--grid", "--seeds", "--shard", "--config", "--workdir"),
    "collect": ("DIR",),
    "config": ("--config", "--config.FIELD=VALUE", "--json"),
    "methods": (), "datasets": (), "models": (),
}


def test_every_command_has_help():
  assert set(COMMAND_FLAGS) == set(cli.COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
def test_command_help(capsys, tmp_path, monkeypatch, command, flag):
  """Exit 0, the command's usage and flags, where the config fields are
  documented; nothing runs (no workdir appears)."""
  monkeypatch.chdir(tmp_path)
  code, out, err = run_cli(capsys, command, flag)
  assert code == 0 and err == ""
  assert out.startswith(f"usage: jaxunlearn {command}")
  for name in COMMAND_FLAGS[command]:
    assert name in out, name
  if "--config" in COMMAND_FLAGS[command]:
    assert "config.py" in out and "configs/README.md" in out
  assert os.listdir(tmp_path) == []
  # After other flags too, and as `jaxunlearn help COMMAND`.
  assert run_cli(capsys, command, "--config.seed=1", flag) == (0, out, "")
  assert run_cli(capsys, "help", command) == (0, out, "")


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["help"]])
def test_top_level_help_lists_commands_flags_and_field_docs(capsys, args):
  code, out, _ = run_cli(capsys, *args)
  assert code == 0
  for command in cli.COMMANDS:
    assert f"\n  {command} " in out, command
  for text in ("--config FILE.py", "--config.FIELD=VALUE", "--workdir",
               "--version", "config.py", "configs/README.md"):
    assert text in out, text


def test_version(capsys):
  import importlib.metadata
  import jaxunlearn
  code, out, _ = run_cli(capsys, "--version")
  assert code == 0 and out.strip() == f"jaxunlearn {jaxunlearn.__version__}"
  assert jaxunlearn.__version__ == importlib.metadata.version("jaxunlearn")


def test_python_m_jaxunlearn():
  result = subprocess.run([sys.executable, "-m", "jaxunlearn", "--help"],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("usage: jaxunlearn COMMAND")
  result = subprocess.run([sys.executable, "-m", "jaxunlearn", "nonsense"],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and "unknown command" in result.stderr


def test_config_prints_the_resolved_config(capsys):
  """Every field of the default run with the overrides applied, as
  ml_collections prints it or as JSON."""
  import json
  from jaxunlearn.config import DEFAULT_RUN, load_file
  code, out, _ = run_cli(capsys, "config", "--config.delete.lr=0.125",
                         "--config.forget.classes=(1,5)")
  assert code == 0
  assert "\ndelete:\n" in out and "  lr: 0.125\n" in out
  code, out, _ = run_cli(capsys, "config", "--json", "--config.delete.lr=0.125")
  assert code == 0
  expected = load_file(DEFAULT_RUN)
  expected.delete.lr = 0.125
  assert json.loads(out) == json.loads(expected.to_json_best_effort())
  code, _, err = run_cli(capsys, "config", "--config.delete.nope=1")
  assert code == 2 and len(err.strip().splitlines()) == 1


def fake_run(calls):
  """A stand-in for run.run: a report that depends on the point and seed
  (a real run is covered by test_run.py; here the sweep's plumbing)."""
  def run(c, workdir, log=print):
    calls.append(workdir)
    return {"seed": c.seed, "method": c.method, "dataset": c.dataset,
            "rte": 2.0 + c.delete.epochs,
            "models": {"original": {"forget_acc": 1.0 - 0.01 * c.seed},
                       "unlearned": {"forget_acc": c.delete.lr * c.delete.epochs
                                     + 0.003 * c.seed,
                                     "test_acc": 0.9 - c.delete.lr / 7},
                       "retrained": {"forget_acc": 0.01 * c.seed}}}
  return run


def test_sharded_sweep_and_collect_equal_the_unsharded_sweep(
    capsys, tmp_path, monkeypatch):
  """2 shards of a 3 x 2 grid (2 seeds), then collect: the same
  sweep.json/.md/.csv as one unsharded sweep; the shards run in disjoint
  directories and each point runs once."""
  from jaxunlearn import run as run_lib
  calls = []
  monkeypatch.setattr(run_lib, "run", fake_run(calls))
  grid = ["--grid", "delete.lr=0.1,0.2,0.3", "--grid", "delete.epochs=1,2",
          "--seeds", "2"]
  whole, parts = tmp_path / "whole", tmp_path / "parts"
  code, _, err = run_cli(capsys, "sweep", "--workdir", str(whole), *grid)
  assert code == 0, err
  assert len(calls) == 12
  shard_calls = []
  for i in (1, 0):  # any order
    calls.clear()
    code, out, err = run_cli(capsys, "sweep", "--workdir", str(parts),
                             "--shard", f"{i}/2", *grid)
    assert code == 0, err
    assert f"jaxunlearn collect {parts}" in out
    assert len(calls) == 6
    shard_calls.append(set(calls))
    assert not (parts / "sweep.json").exists()
  assert not shard_calls[0] & shard_calls[1]
  code, out, err = run_cli(capsys, "collect", str(parts))
  assert code == 0, err
  for name in ("sweep.json", "sweep.md", "sweep.csv"):
    assert (parts / name).read_text() == (whole / name).read_text(), name
  assert "| 0.3 | 2 |" in out


def test_collect_refuses_missing_or_foreign_shards(capsys, tmp_path, monkeypatch):
  from jaxunlearn import run as run_lib
  monkeypatch.setattr(run_lib, "run", fake_run([]))
  sweep = lambda grid, shard: run_cli(capsys, "sweep", "--workdir", str(tmp_path),
                                      "--grid", grid, "--shard", shard)
  assert sweep("delete.lr=0.1,0.2,0.3", "0/3")[0] == 0
  assert sweep("delete.lr=0.1,0.2,0.3", "2/3")[0] == 0
  code, _, err = run_cli(capsys, "collect", str(tmp_path))
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "shard(s) 1 of 3 have not finished" in err
  assert sweep("delete.lr=0.1,0.2,0.5", "1/3")[0] == 0
  code, _, err = run_cli(capsys, "collect", str(tmp_path))
  assert code == 2 and "differ in grid" in err
  assert not (tmp_path / "sweep.json").exists()


@pytest.mark.parametrize("shard", ["2/2", "-1/2", "1/0", "a/b", "1", "0/2/3"])
def test_bad_shard_is_one_line(capsys, shard):
  code, _, err = run_cli(capsys, "sweep", "--grid", "delete.lr=0.1",
                         "--shard", shard)
  assert code == 2 and len(err.strip().splitlines()) == 1
  assert "write I/N with 0 <= I < N" in err


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
  for method in ("neggrad", "ieu", "dlfd"):
    tuned = load_file(os.path.join(configs, f"{method}_fashion_mnist.py"))
    picked = load_file(os.path.join(configs, f"fashion_mnist.py:{method}"))
    assert picked[method].to_dict() == tuned[method].to_dict()
    assert tuned[method].to_dict() != METHODS.get(method).default_config().to_dict()


def test_a_tuning_file_per_forget_kind_gives_each_kind_its_own_section():
  """configs/neggrad*_fashion_mnist.py and ieu_*.py hold a random-forgetting
  and a class-forgetting section (FORGET_KINDS); tuned_section picks by the kind
  asked for, and a file without FORGET_KINDS ignores the kind."""
  import os
  import pytest
  from jaxunlearn.config import load_file, tuned_section
  configs = os.path.join(os.path.dirname(__file__), os.pardir, "configs")
  for method in ("neggrad", "neggrad_plus"):
    path = os.path.join(configs, f"{method}_fashion_mnist.py")
    random_kind = tuned_section(method, "fashion_mnist", "random")
    class_kind = tuned_section(method, "fashion_mnist", "class")
    assert class_kind.to_dict() == load_file(f"{path}:class")[method].to_dict()
    assert class_kind.to_dict() != random_kind.to_dict()
    assert tuned_section(method, "fashion_mnist").to_dict() == random_kind.to_dict()
    assert load_file(f"{path}:class").forget.kind == "class"
    with pytest.raises(ValueError, match="forget kind"):
      load_file(f"{path}:ids")
  assert (tuned_section("l2ul", "fashion_mnist", "class").to_dict()
          == tuned_section("l2ul", "fashion_mnist").to_dict())
  # IEU's files tune random forgetting; on class forgetting they give the
  # method's defaults, its authors' class setting.
  from jaxunlearn.methods import METHODS
  for dataset in ("digits", "fashion_mnist"):
    path = os.path.join(configs, f"ieu_{dataset}.py")
    assert (tuned_section("ieu", dataset, "class").to_dict()
            == METHODS.get("ieu").default_config().to_dict())
    assert (tuned_section("ieu", dataset, "random").to_dict()
            == load_file(path).ieu.to_dict()
            != METHODS.get("ieu").default_config().to_dict())
    assert load_file(f"{path}:class").forget.kind == "class"
