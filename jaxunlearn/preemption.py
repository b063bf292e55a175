"""SIGTERM (what SLURM and Kubernetes send before killing a job) as a request
to stop at the next step boundary, after a checkpoint.

``install()`` (the run does it) turns SIGTERM into a flag; the epoch loop asks
``stop_requested()`` after every step and, when it is set, saves its state
with the position in the epoch and raises ``Preempted``. Running the same
command again resumes from that checkpoint and ends with the parameters an
uninterrupted run would have.

Only a loop that checks the flag (``deferring``: ``loop.run_epochs``) may
delay the stop. Anywhere else (data preparation, a method's own loop that
keeps no checkpoint as L2UL's and DLFD's, the evaluation) SIGTERM raises
``Preempted`` at once: nothing there can be saved halfway, the phases that
finished are kept, and a flag nobody reads would leave the job running
until the scheduler kills it. A request that arrives inside a deferring
loop which then ends without a step boundary to stop at is raised when the
loop returns. With several processes the decision must be the
same step everywhere: JAX's preemption sync point (``jax.distributed``
propagates the notice) gives it.
"""
from __future__ import annotations

import functools
import signal
import threading
from typing import Callable, Optional

import jax


class Preempted(Exception):
  """Raised after the state was saved; the message says where."""


_requested = threading.Event()
_steps = [0]  # step boundaries seen by this process (the sync point's ids)


_deferring = [0]  # depth of the deferring loops running in this thread


def _on_sigterm(signum, frame) -> None:
  del signum, frame
  _requested.set()
  if not _deferring[0]:
    raise Preempted(_OUTSIDE_A_LOOP)


_OUTSIDE_A_LOOP = ("a point that keeps no checkpoint (the phases that finished "
                   "are saved)")


def deferring(fn: Callable) -> Callable:
  """Marks a loop that checks ``stop_requested()`` at its step boundaries:
  SIGTERM during ``fn`` waits for that check instead of raising at once."""
  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    _deferring[0] += 1
    try:
      result = fn(*args, **kwargs)
    finally:
      _deferring[0] -= 1
    if not _deferring[0] and _requested.is_set() and jax.process_count() == 1:
      raise Preempted(_OUTSIDE_A_LOOP)
    return result
  return wrapper


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
