"""The ``jaxunlearn`` command.

  jaxunlearn run [--config FILE.py[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]
  jaxunlearn seeds --seeds N|S1,S2,.. [--config ...] [--workdir DIR] [--config.FIELD=VALUE ...]
  jaxunlearn sweep --grid FIELD=V1,V2 [--grid ...] [--seeds N|S1,..] [--config ...] [--workdir DIR]
  jaxunlearn methods | datasets | models

``sweep`` runs every point of the grid (per seed) and writes one row per point
to DIR/sweep.md, .csv and .json. ``seeds`` runs the config once per seed (DIR/seed-<s>) and writes
DIR/summary.md and DIR/summary.json (mean ± std of every metric).

With no ``--config`` the embedded default runs: ``configs/delete_digits.py``
(digits, small CNN, forget class 3, DELETE tuned for 8x8 digits). Mistakes the user can fix print one line and exit 2.
"""
from __future__ import annotations

import os
import sys

USAGE = __doc__


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
  found, rest = _split_flags(argv, ("seeds", "grid"))
  cfg, workdir = _load_config(rest)
  grid = aggregate.parse_grid(found["grid"], cfg)
  seeds = aggregate.parse_seeds((found["seeds"] or ["1"])[-1], int(cfg.seed))
  aggregate.run_sweep(cfg, workdir, grid, seeds, run_lib.run)
  with open(os.path.join(workdir, "sweep.md")) as f:
    print(f.read())
  print(f"sweep: {os.path.join(workdir, 'sweep.json')}")


class _UsageError(Exception):
  pass


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(USAGE)
    return 0
  command, rest = argv[0], argv[1:]
  from jaxunlearn.errors import UserError
  from jaxunlearn.preemption import Preempted
  try:
    if command in ("methods", "datasets", "models"):
      _print_names(command)
    elif command == "run":
      _run(rest)
    elif command == "seeds":
      _seeds(rest)
    elif command == "sweep":
      _sweep(rest)
    else:
      raise UserError(f"unknown command {command!r}; use run, seeds, sweep, "
                      "methods, datasets or models")
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
