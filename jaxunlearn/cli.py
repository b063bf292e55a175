"""The ``jaxunlearn`` command (also ``python -m jaxunlearn``).

``jaxunlearn --help`` lists the commands and the flags they share;
``jaxunlearn COMMAND --help`` a command's own. Mistakes the user can fix
print one line and exit 2.
"""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

COMMON_FLAGS = """\
  --config FILE.py[:ARG]  a get_config() file (FILE.py:ARG: get_config("ARG"));
                          default configs/delete_digits.py: digits, small
                          CNN, forget class 3, DELETE tuned for 8x8 digits
  --config.FIELD=VALUE    set any field, e.g. --config.method=l2ul
                          --config.delete.lr=1e-3 --config.train.epochs=5"""

WORKDIR_FLAG = """\
  --workdir DIR           checkpoints, forget ids and reports
                          (default runs/default; run, seeds and sweep)"""


def _fields_note() -> str:
  return f"""\
Config fields: `jaxunlearn config` prints every field with its value;
{os.path.join(_PACKAGE_DIR, "config.py")} documents the base fields
(dataset, model, forget, train, eval, ...); each method's section,
config.<method>, is its default_config() (in jaxunlearn/methods/, the
authors' published setting); configs/README.md in the source tree
tables every method field against the authors' values."""


# name -> (one line for the command list, usage and what it does).
COMMANDS = {
    "run": ("one job: train, retrain, unlearn, evaluate, report",
            """\
usage: jaxunlearn run [--config FILE.py[:ARG]] [--workdir DIR]
                      [--config.FIELD=VALUE ...] [-v | --quiet]

  -v, --verbose / -q, --quiet   more / less than one line per epoch

Trains (or reuses) the original and the retrained model, unlearns with
config.method, evaluates all three and writes DIR/report.json with
config.json, metrics.jsonl, report.md and manifest.json beside it
(resumable: each phase is checkpointed under DIR/checkpoints; SIGTERM saves
at the next step and exits 143, and the same command resumes)."""),
    "seeds": ("the same config once per seed, then mean ± std of every metric",
              """\
usage: jaxunlearn seeds --seeds N|S1,S2,.. [--config FILE.py[:ARG]]
                        [--workdir DIR] [--config.FIELD=VALUE ...]

  --seeds N | S1,S2,..    N seeds from config.seed on, or an explicit list

Runs each seed in DIR/seed-<s> and writes DIR/summary.md and summary.json
(mean ± std of every metric per model)."""),
    "sweep": ("every point of a grid of config values; one table row per point",
              """\
usage: jaxunlearn sweep --grid FIELD=V1,V2 [--grid ...] [--seeds N|S1,..]
                        [--shard I/N] [--config FILE.py[:ARG]] [--workdir DIR]
                        [--config.FIELD=VALUE ...]

  --grid FIELD=V1,V2      a config field and its values (repeat: the product)
  --seeds N | S1,S2,..    seeds per point (default 1: config.seed)
  --shard I/N             run only points I, I+N, I+2N, ... (0 <= I < N): one
                          shard of an array job; `jaxunlearn collect DIR`
                          merges the N shards' rows into the tables

Writes one row per point (the unlearned model, mean ± std over seeds; the
original and retrained models as reference rows) to DIR/sweep.md, .csv and
.json. All points of a seed share DIR/seed-<s>. A shard runs in
DIR/shard-I-of-N/seed-<s> and writes DIR/sweep-shard-I-of-N.json."""),
    "collect": ("merge the shards of `sweep --shard I/N` into the sweep's tables",
                """\
usage: jaxunlearn collect DIR

Reads DIR/sweep-shard-I-of-N.json for I = 0..N-1 and writes DIR/sweep.md,
.csv and .json, the tables an unsharded sweep writes. Fails with one line
naming any shard that has not finished."""),
    "config": ("print the resolved config (every field) without running",
               """\
usage: jaxunlearn config [--config FILE.py[:ARG]] [--config.FIELD=VALUE ...]
                         [--json]

  --json                  print JSON instead of ml_collections' YAML-like text

Prints the config a `run` with the same flags would use."""),
    "methods": ("list the unlearning methods", "usage: jaxunlearn methods"),
    "datasets": ("list the datasets with their classes, shape and tasks",
                 "usage: jaxunlearn datasets"),
    "models": ("list the models", "usage: jaxunlearn models"),
}
_TAKES_CONFIG = ("run", "seeds", "sweep", "config")


def usage() -> str:
  from jaxunlearn import __version__
  width = max(map(len, COMMANDS))
  lines = [f"usage: jaxunlearn COMMAND [flags]      (jaxunlearn {__version__})",
           "", "Commands:"]
  lines += [f"  {name:<{width}}  {line}" for name, (line, _) in COMMANDS.items()]
  lines += ["", "Flags of run, seeds, sweep and config:", COMMON_FLAGS,
            WORKDIR_FLAG,
            "  -h, --help              this text; after a command, its own flags",
            "  --version               the installed version", "",
            "jaxunlearn COMMAND --help gives a command's own flags.",
            _fields_note()]
  return "\n".join(lines)


def command_help(command: str) -> str:
  _, text = COMMANDS[command]
  parts = [text, ""]
  if command in _TAKES_CONFIG:
    parts += ["Common flags:", COMMON_FLAGS]
    if command != "config":
      parts.append(WORKDIR_FLAG)
    parts += ["", _fields_note()]
  return "\n".join(parts).rstrip()


def _print_names(kind: str) -> None:
  if kind == "methods":
    from jaxunlearn.methods import METHODS as registry
  elif kind == "datasets":
    print(_datasets_table())
    return
  else:
    from jaxunlearn.models import MODELS as registry
  print("\n".join(registry.names()))


def _datasets_table() -> str:
  """Every dataset a run can name: the registered ones (classification,
  backdoor; identity sets for the face task) and those a task reads itself."""
  from jaxunlearn.data import DATASETS
  from jaxunlearn.tasks import TASKS
  rows = []
  for name in DATASETS.names():
    spec = DATASETS.get(name)
    identities = spec.num_classes == 0
    rows.append((name, "per data" if identities else str(spec.num_classes),
                 "x".join(str(d) for d in spec.image_shape),
                 "face" if identities else "classification, backdoor",
                 ", ".join(f"{k}={v}" for k, v in spec.options)))
  for task_name in TASKS.names():
    for name, classes, shape, note in TASKS.get(task_name).datasets:
      rows.append((name, str(classes), shape, task_name, note))
  header = ("dataset", "classes", "shape", "tasks", "options / notes")
  widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
  line = lambda r: "  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths)) + "  " + r[4]
  return "\n".join([line(header)] + [line(r) for r in sorted(rows)]).rstrip()


def _load_config(argv: list[str]):
  """(config, workdir) from ``--config``/``--workdir``/``--config.X=V`` flags."""
  from absl import flags
  from ml_collections import config_flags

  import jaxunlearn.config as base_config

  flag_values = flags.FlagValues()
  flags.DEFINE_string("workdir", os.path.join("runs", "default"),
                      "Where checkpoints, forget ids and report.json go.",
                      flag_values=flag_values)
  try:
    # sys_argv: the --config.FIELD overrides are read from it (else sys.argv).
    if not os.path.isfile(base_config.DEFAULT_RUN) and not any(
        a == "--config" or a.startswith("--config=") for a in argv):
      raise _UsageError(f"the default run's config {base_config.DEFAULT_RUN} "
                        "ships with the source tree, not with this install; "
                        "pass --config FILE.py")
    config_flags.DEFINE_config_file("config", base_config.DEFAULT_RUN,
                                    "A get_config() file.",
                                    flag_values=flag_values, lock_config=True,
                                    sys_argv=["jaxunlearn run"] + argv)
    flag_values(["jaxunlearn run"] + argv)
    cfg = flag_values.config
    cfg.method  # a config file that failed to load raises only when used
  except OSError as error:
    raise _UsageError(f"could not load the config file: "
                      f"{' '.join(str(error).split())}") from None
  except (KeyError, AttributeError) as error:
    raise _UsageError(f"unknown config field {error}; see jaxunlearn/config.py "
                      "for the fields that exist") from None
  except (flags.Error, SystemExit, Exception) as error:  # noqa: BLE001
    # absl wraps the cause; its last line is the informative one.
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
      cause = cause.__cause__ or cause.__context__
    text = " ".join(str(cause).split()) or repr(cause)
    raise _UsageError(text) from None
  return cfg, flag_values.workdir


PREEMPTED_EXIT = 143  # 128 + SIGTERM: stopped, not finished; rerun to resume


def _verbosity(argv: list[str]) -> tuple[int, list[str]]:
  """-v/--verbose and -q/--quiet pulled out of argv."""
  from jaxunlearn import logs
  verbose = {"-v", "--verbose"}
  quiet = {"-q", "--quiet"}
  level = logs.NORMAL
  if any(a in verbose for a in argv):
    level = logs.VERBOSE
  if any(a in quiet for a in argv):
    level = logs.QUIET
  return level, [a for a in argv if a not in verbose | quiet]


def _run(argv: list[str]) -> None:
  import jax

  from jaxunlearn import run as run_lib
  verbosity, argv = _verbosity(argv)
  cfg, workdir = _load_config(argv)
  report = run_lib.run(cfg, workdir, verbosity=verbosity)
  if jax.process_index() == 0:
    print(run_lib.format_report(report))
    print(f"report: {os.path.join(workdir, 'report.json')}")


def _split_flags(argv: list[str], names: tuple[str, ...]):
  """Pulls ``--name V`` / ``--name=V`` (repeatable) out of argv."""
  found, rest = {n: [] for n in names}, []
  args = iter(argv)
  for arg in args:
    name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
    if name in found:
      value = arg.split("=", 1)[1] if "=" in arg else next(args, None)
      if value is None:
        raise _UsageError(f"--{name} needs a value")
      found[name].append(value)
    else:
      rest.append(arg)
  return found, rest


def _seeds(argv: list[str]) -> None:
  from jaxunlearn import aggregate
  from jaxunlearn import run as run_lib
  found, rest = _split_flags(argv, ("seeds",))
  if not found["seeds"]:
    raise _UsageError("seeds needs --seeds N (a count) or --seeds 0,4,7 (a list)")
  cfg, workdir = _load_config(rest)
  seeds = aggregate.parse_seeds(found["seeds"][-1], int(cfg.seed))
  summary = aggregate.run_seeds(cfg, workdir, seeds, run_lib.run)
  with open(os.path.join(workdir, "summary.md")) as f:
    print(f.read())
  print(f"summary: {os.path.join(workdir, 'summary.json')} "
        f"({len(summary['seeds'])} seeds)")


def _sweep(argv: list[str]) -> None:
  from jaxunlearn import aggregate
  from jaxunlearn import run as run_lib
  found, rest = _split_flags(argv, ("seeds", "grid", "shard"))
  shard = aggregate.parse_shard(found["shard"][-1]) if found["shard"] else None
  cfg, workdir = _load_config(rest)
  grid = aggregate.parse_grid(found["grid"], cfg)
  seeds = aggregate.parse_seeds((found["seeds"] or ["1"])[-1], int(cfg.seed))
  rows = aggregate.run_sweep(cfg, workdir, grid, seeds, run_lib.run, shard=shard)
  if shard is not None:
    print(f"shard {shard[0]}/{shard[1]}: {len(rows)} point(s) in "
          f"{aggregate.shard_file(workdir, shard)}; once all {shard[1]} "
          f"shards finish: jaxunlearn collect {workdir}")
    return
  with open(os.path.join(workdir, "sweep.md")) as f:
    print(f.read())
  print(f"sweep: {os.path.join(workdir, 'sweep.json')}")


def _collect(argv: list[str]) -> None:
  from jaxunlearn import aggregate
  if len(argv) != 1 or argv[0].startswith("-"):
    raise _UsageError("collect takes one argument: the sweep's workdir")
  aggregate.collect(argv[0])
  with open(os.path.join(argv[0], "sweep.md")) as f:
    print(f.read())
  print(f"sweep: {os.path.join(argv[0], 'sweep.json')}")


def _config(argv: list[str]) -> None:
  found = [a for a in argv if a == "--json"]
  rest = [a for a in argv if a != "--json"]
  if any(a == "--workdir" or a.startswith("--workdir=") for a in rest):
    raise _UsageError("config takes no --workdir (it runs nothing)")
  cfg, _ = _load_config(rest)
  if found:
    print(cfg.to_json_best_effort(indent=2))
  else:
    print(str(cfg).rstrip())


class _UsageError(Exception):
  pass


def _wants_help(args: list[str]) -> bool:
  """-h/--help given as a flag (not as the value of --workdir etc.)."""
  return any(a in ("-h", "--help") for a in args)


def main(argv: list[str] | None = None) -> int:
  try:
    return _main(sys.argv[1:] if argv is None else argv)
  except BrokenPipeError:
    # `jaxunlearn config | head`: the reader left; nothing is wrong here.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def _main(argv: list[str]) -> int:
  if not argv or argv[0] in ("-h", "--help"):
    print(usage())
    return 0
  if argv[0] == "--version":
    from jaxunlearn import __version__
    print(f"jaxunlearn {__version__}")
    return 0
  if argv[0] == "help":
    if len(argv) > 1 and argv[1] in COMMANDS:
      print(command_help(argv[1]))
    else:
      print(usage())
    return 0
  command, rest = argv[0], argv[1:]
  if command in COMMANDS and _wants_help(rest):
    print(command_help(command))
    return 0
  from jaxunlearn.errors import UserError
  from jaxunlearn.preemption import Preempted
  try:
    if command in ("methods", "datasets", "models"):
      if rest:
        raise _UsageError(f"{command} takes no arguments")
      _print_names(command)
    elif command == "run":
      _run(rest)
    elif command == "seeds":
      _seeds(rest)
    elif command == "sweep":
      _sweep(rest)
    elif command == "collect":
      _collect(rest)
    elif command == "config":
      _config(rest)
    else:
      raise UserError(f"unknown command {command!r}; use "
                      f"{', '.join(COMMANDS)} (jaxunlearn --help)")
  except (UserError, _UsageError) as error:
    print(f"jaxunlearn: error: {error}", file=sys.stderr)
    return 2
  except Preempted as stop:
    print(f"jaxunlearn: stopped by SIGTERM at {stop}; run the same command "
          "again to resume", file=sys.stderr)
    return PREEMPTED_EXIT
  return 0


if __name__ == "__main__":
  sys.exit(main())
