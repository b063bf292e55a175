"""The ``jaxunlearn`` command.

  jaxunlearn run [--config FILE.py[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]
  jaxunlearn methods | datasets | models

With no ``--config`` the embedded default runs (digits, small CNN, forget
class 3, DELETE). Mistakes the user can fix print one line and exit 2.
"""
from __future__ import annotations

import os
import sys

USAGE = __doc__


def _print_names(kind: str) -> None:
  if kind == "methods":
    from jaxunlearn.methods import METHODS as registry
  elif kind == "datasets":
    from jaxunlearn.data import DATASETS as registry
  else:
    from jaxunlearn.models import MODELS as registry
  print("\n".join(registry.names()))


def _run(argv: list[str]) -> None:
  from absl import flags
  from ml_collections import config_flags

  import jaxunlearn.config as base_config
  from jaxunlearn import run as run_lib

  flag_values = flags.FlagValues()
  flags.DEFINE_string("workdir", os.path.join("runs", "default"),
                      "Where checkpoints, forget ids and report.json go.",
                      flag_values=flag_values)
  try:
    # sys_argv: the --config.FIELD overrides are read from it (else sys.argv).
    config_flags.DEFINE_config_file("config", base_config.__file__,
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
  report = run_lib.run(cfg, flag_values.workdir)
  print(run_lib.format_report(report))
  print(f"report: {os.path.join(flag_values.workdir, 'report.json')}")


class _UsageError(Exception):
  pass


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(USAGE)
    return 0
  command, rest = argv[0], argv[1:]
  from jaxunlearn.errors import UserError
  try:
    if command in ("methods", "datasets", "models"):
      _print_names(command)
    elif command == "run":
      _run(rest)
    else:
      raise UserError(f"unknown command {command!r}; use run, methods, datasets "
                      "or models")
  except (UserError, _UsageError) as error:
    print(f"jaxunlearn: error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
