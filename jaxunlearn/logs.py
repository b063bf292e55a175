"""What a run says while it works: one line per epoch, and the same as records.

Every epoch of every phase (pretraining, retraining, the method's epochs,
shadow models) is one ``logging`` record on the ``jaxunlearn`` logger: a line
a batch system's log can hold (phase, epoch, loss, images/s, elapsed, ETA) and
a dict of every step metric the step returned (``record``). ``configure``
sends the lines to stdout (process 0) or to ``WORKDIR/logs/process_<i>.log``
(the other processes) and the records to ``WORKDIR/metrics.jsonl``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from typing import Callable, Optional

LOGGER = logging.getLogger("jaxunlearn")

QUIET, NORMAL, VERBOSE = -1, 0, 1
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


def _seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(round(s))
  return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else \
      f"{s // 60}:{s % 60:02d}"


def epoch_line(record: dict) -> str:
  """``pretrain epoch 3/12 loss 0.4123 1520 img/s elapsed 0:41 eta 2:03``."""
  parts = [f"{record['phase']} epoch {record['epoch']}/{record['epochs']}"]
  if record.get("loss") is not None:
    parts.append(f"loss {record['loss']:.4f}")
  if record.get("images_per_s") is not None:
    parts.append(f"{record['images_per_s']:.0f} img/s")
  parts.append(f"elapsed {_seconds(record['elapsed_s'])}")
  parts.append(f"eta {_seconds(record['eta_s'])}")
  return " ".join(parts)


def epoch(record: dict) -> None:
  """Logs one epoch: its line at INFO, the record for ``metrics.jsonl``."""
  LOGGER.info(epoch_line(record), extra={"record": record})


class JsonLines(logging.Handler):
  """Appends the ``record`` of each log record that has one, one JSON object
  per line, flushed at once (a killed run keeps every finished epoch)."""

  def __init__(self, path: str):
    super().__init__(logging.DEBUG)
    self.path = path

  def emit(self, log_record: logging.LogRecord) -> None:
    record = getattr(log_record, "record", None)
    if record is None:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record, default=float) + "\n")


def configure(workdir: Optional[str], verbosity: int = NORMAL,
              process_index: int = 0) -> Callable[[], None]:
  """Installs the handlers of one run; returns the function removing them.

  Process 0: lines to stdout (INFO, or WARNING when quiet, DEBUG when
  verbose) and records to ``workdir/metrics.jsonl``. Other processes: lines
  to ``workdir/logs/process_<i>.log`` and nothing on stdout."""
  handlers = []
  if process_index == 0:
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(_LEVELS.get(max(QUIET, min(VERBOSE, verbosity))))
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers.append(console)
    if workdir:
      handlers.append(JsonLines(os.path.join(workdir, "metrics.jsonl")))
  elif workdir:
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    to_file = logging.FileHandler(
        os.path.join(workdir, "logs", f"process_{process_index}.log"))
    to_file.setLevel(logging.DEBUG)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handlers.append(to_file)
  previous = LOGGER.level
  LOGGER.setLevel(logging.DEBUG)
  LOGGER.propagate = False
  for h in handlers:
    LOGGER.addHandler(h)

  def remove() -> None:
    for h in handlers:
      LOGGER.removeHandler(h)
      h.close()
    LOGGER.setLevel(previous)
    LOGGER.propagate = True
  return remove


def interactive() -> bool:
  """Progress bars only for a person at a terminal."""
  return sys.stderr.isatty()
