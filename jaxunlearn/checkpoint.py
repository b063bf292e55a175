"""Orbax checkpoints: atomic saves, resume from the latest step, clear errors."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxunlearn.errors import UserError

logging.getLogger("absl").setLevel(logging.ERROR)


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))


def save(mngr: ocp.CheckpointManager, step: int, state: Any,
         meta: Optional[dict] = None) -> None:
  """Saves ``state`` (and JSON ``meta``) at ``step``; orbax commits atomically."""
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      meta=ocp.args.JsonSave(meta or {})))
  mngr.wait_until_finished()


def _describe_mismatch(saved: Any, target: Any) -> str:
  saved_flat = {jax.tree_util.keystr(p): v for p, v in
                jax.tree_util.tree_flatten_with_path(saved)[0]}
  target_flat = {jax.tree_util.keystr(p): v for p, v in
                 jax.tree_util.tree_flatten_with_path(target)[0]}
  for name in sorted(set(saved_flat) | set(target_flat)):
    if name not in saved_flat:
      return f"parameter {name} is missing from the checkpoint"
    if name not in target_flat:
      return f"the checkpoint has parameter {name} that the model does not"
    s, t = np.shape(saved_flat[name]), np.shape(target_flat[name])
    if s != t:
      return f"parameter {name} has shape {s} in the checkpoint but {t} in the model"
  return "the structures differ"


def restore(mngr: ocp.CheckpointManager, abstract_state: Any,
            step: Optional[int] = None) -> tuple[Any, dict]:
  """Restores ``(state, meta)`` of ``step`` (default: the latest readable one).

  A checkpoint of another architecture is a UserError. A damaged latest
  checkpoint (a truncated or corrupted file) is deleted with a warning and the
  previous one restored; when none is readable, a UserError names the
  directory to delete."""
  if step is not None:
    return _restore_step(mngr, abstract_state, step)
  steps = sorted(mngr.all_steps(), reverse=True)
  for i, candidate in enumerate(steps):
    try:
      return _restore_step(mngr, abstract_state, candidate)
    except UserError:
      raise
    except Exception as error:  # noqa: BLE001  (orbax/tensorstore raise many kinds)
      reason = _first_line(error)
      if i + 1 == len(steps):
        raise UserError(
            f"the checkpoint in {mngr.directory} is damaged (step {candidate}: "
            f"{reason}) and no earlier one is readable; delete that directory "
            "to run this phase again") from None
      logging.getLogger("jaxunlearn").warning(
          "checkpoint %s/%s is damaged (%s); deleting it and resuming from step %s",
          mngr.directory, candidate, reason, steps[i + 1])
      mngr.delete(candidate)
  raise UserError(f"no checkpoint in {mngr.directory}")


def latest_meta(directory: str) -> dict:
  """The JSON meta of the latest step saved in ``directory``; ``{}`` when
  there is none or it cannot be read (the state's restore reports why)."""
  if not os.path.isdir(directory) or not any(
      name.isdigit() for name in os.listdir(directory)):
    return {}
  mngr = ocp.CheckpointManager(os.path.abspath(directory))
  try:
    step = mngr.latest_step()
    if step is None:
      return {}
    return dict(mngr.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))["meta"] or {})
  except Exception:  # noqa: BLE001  a damaged step: restore() deals with it
    return {}
  finally:
    mngr.close()


def _first_line(error: BaseException) -> str:
  text = " ".join(str(error).split()) or type(error).__name__
  return text[:200]


def _restore_step(mngr: ocp.CheckpointManager, abstract_state: Any,
                  step: int) -> tuple[Any, dict]:
  meta = mngr.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))["meta"]
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))["state"]
  except (ValueError, KeyError, TypeError) as error:
    try:
      raw = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore()))["state"]
    except Exception:  # noqa: BLE001  unreadable, not another architecture
      raise error from None
    raise UserError(
        f"checkpoint {mngr.directory}/{step} does not fit this model: "
        f"{_describe_mismatch(raw, abstract_state)}; use the model it was "
        "saved with or another workdir") from error
  return restored, meta


def load_result(directory: str, template: Any) -> Optional[Any]:
  """The finished result ``save_result`` kept in ``directory``, or None.
  For phases whose loops keep no checkpoint of their own (L2UL, DLFD), so
  a resumed job does not compute a finished one again."""
  if not os.path.isdir(directory):  # the manager would create it
    return None
  mngr = manager(directory, max_to_keep=1)
  if mngr.latest_step() is None:
    return None
  return restore(mngr, template)[0]


def save_result(directory: str, result: Any) -> None:
  """Keeps a finished ``result`` in ``directory`` (atomic, as every save)."""
  save(manager(directory, max_to_keep=1), 0, result)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def write_json(path: str, payload: Any, indent: Optional[int] = 2) -> None:
  """Writes JSON atomically (temp file + rename): never half-written.
  ``indent=None``: one line, for long number lists."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=indent)
  os.replace(tmp, path)
