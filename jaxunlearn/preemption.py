"""SIGTERM (what SLURM and Kubernetes send before killing a job) as a request
to stop at the next step boundary, after a checkpoint.

``install()`` (the run does it) turns SIGTERM into a flag; the epoch loop asks
``stop_requested()`` after every step and, when it is set, saves its state
with the position in the epoch and raises ``Preempted``. Running the same
command again resumes from that checkpoint and ends with the parameters an
uninterrupted run would have. With several processes the decision must be the
same step everywhere: JAX's preemption sync point (``jax.distributed``
propagates the notice) gives it.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

import jax


class Preempted(Exception):
  """Raised after the state was saved; the message says where."""


_requested = threading.Event()
_steps = [0]  # step boundaries seen by this process (the sync point's ids)


def _on_sigterm(signum, frame) -> None:
  del signum, frame
  _requested.set()


def install() -> Optional[object]:
  """Turns SIGTERM into a stop request (main thread only); returns the
  previous handler, for ``uninstall``."""
  if threading.current_thread() is not threading.main_thread():
    return None
  return signal.signal(signal.SIGTERM, _on_sigterm)


def uninstall(previous) -> None:
  if previous is not None and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, previous)


def request() -> None:
  """As if SIGTERM had arrived (tests, or a caller's own notice)."""
  _requested.set()


def clear() -> None:
  _requested.clear()


def stop_requested() -> bool:
  """Called once per step by every process: whether to save and stop now."""
  _steps[0] += 1
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    try:
      return bool(multihost_utils.reached_preemption_sync_point(_steps[0]))
    except RuntimeError:  # the preemption service is off
      return False
  return _requested.is_set()
