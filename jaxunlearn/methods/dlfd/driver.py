"""DLFD's driver: one pass over D_r, each step gated into a synthesis or a
fine-tune step, and the selection of the model returned.

Each retain batch ``x_r`` is paired with a forget batch ``x_f`` of the same
size (D_f cycled in seeded passes, ``loop.paired_index``). With ``b`` the
step and ``w_r(b)`` rising linearly from ``w_r0`` to ``w_r1`` over the pass:

- Gate (``gate``): if the current forgetting score FS >=
  ``forget_threshold``, a synthesis step (``objective``); otherwise a
  fine-tune step on the clean retain batch. With variant "paper" the gate
  applies from step 0; the authors' score starts at 3, so with variant
  "released" step 0 always synthesises.
- Selection: among the evaluated steps (after at least one update) whose
  FS <= ``max_forgetting_score``, keep the parameters with the best
  validation accuracy (if none qualifies, the final parameters are
  returned).
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import jax
import ml_collections
import numpy as np

from jaxunlearn import batches, loop, parallel
from jaxunlearn.errors import UserError
from jaxunlearn.logs import LOGGER
from jaxunlearn.methods import UnlearnTask
from jaxunlearn.methods.dlfd.gate import gate_sizes, make_gate, score_floor
from jaxunlearn.methods.dlfd.objective import VARIANTS, jit_steps
from jaxunlearn import optim
from jaxunlearn.state import TrainState


def default_config() -> ml_collections.ConfigDict:
  # The authors' MUFAC age setting (Dasol-Choi/DLFD age_cls_experiments.ipynb,
  # the train_dlfd cell; batch size from its data-loader cell; ε from
  # compute_ot_loss in unlearn/dlfd.py). RAF-DB emotion: configs/dlfd_rafdb.py;
  # digits: configs/dlfd_digits.py.
  return ml_collections.ConfigDict(dict(
      variant="paper",
      features="logits",       # "logits" (released) or "features"
      lr=0.008, momentum=0.9, weight_decay=5e-4,
      batch_size=32,
      w_f=3.0, w_r0=0.0, w_r1=1.0,
      steps=15,                # K
      alpha=0.4,               # signed step, normalised-image units
      epsilon=0.01,
      # Paper variant's Sinkhorn: run to this row-marginal L1 error (see
      # jaxunlearn.ot); the released variant uses the authors' solver.
      sinkhorn_tol=1e-4, sinkhorn_max_iters=5000,
      forget_threshold=0.15, max_forgetting_score=0.09,
      gate_every=1,            # evaluate FS / val accuracy every N steps
      val_fraction=0.5,
      eval_batch_size=256,
      device_loop="auto",      # K ascent steps: fori_loop ("device") or host loop
  ))


@jax.jit
def _gate_seed(key):
  return jax.random.randint(jax.random.fold_in(key, 7), (), 0, 2**31 - 1)


def run_keys(key: jax.Array):
  """(gate seed, retain-order key, forget-cycle key) of a run with ``key``;
  the per-step keys are ``fold_in(key, 100 + step)``."""
  seed = int(jax.device_get(_gate_seed(key)))
  return seed, jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def pass_plan(task: UnlearnTask, cfg, key: jax.Array, forget_key: jax.Array,
              order_key: jax.Array) -> dict:
  """Everything the pass over D_r draws, fetched before its first step:
  the retain order, the rows of the forget batch of every step
  (``loop.paired_rows``: D_f cycled in seeded passes), and, on the mesh,
  each step's key and w_r (so the pass sends no Python number to the
  devices)."""
  b, retain, forget = cfg.batch_size, task.data.retain, task.data.forget
  total = batches.num_batches(len(retain), b)
  order = batches.epoch_order(order_key, 0, len(retain))
  forget_rows = jax.device_get(loop.paired_rows(
      forget_key, jax.device_put(np.int32(0)), total, len(forget), b))
  w_r = [cfg.w_r0 + (cfg.w_r1 - cfg.w_r0) * step / max(total - 1, 1)
         for step in range(total)]
  step_keys = parallel.replicate_key(loop.folded_keys(key, total, start=100),
                                     task.mesh)
  return dict(order=order, forget_rows=forget_rows, total=total,
              step_keys=list(step_keys),
              w_r=list(parallel.put_replicated(np.asarray(w_r, np.float32),
                                               task.mesh)))


def floor_warnings(cfg, n_forget: int, n_val: int) -> list[str]:
  """What the gate score's floor (``gate.score_floor``) rules out for
  ``cfg``'s thresholds on these set sizes (empty: nothing)."""
  floor = score_floor(n_forget, n_val)
  sizes = (f"the gate score's floor {floor:.4f} ({n_forget} forgotten against "
           f"{n_val} validation samples, the score of guessing the larger set)")
  fix = ("raise it, or set dlfd.val_fraction so that the two sets are closer "
         "in size")
  warnings = []
  if cfg.forget_threshold <= floor:
    warnings.append(f"forget_threshold {cfg.forget_threshold} is not above {sizes}, "
                    f"so the gate closes only by chance and nearly every step "
                    f"synthesises; {fix}")
  if cfg.max_forgetting_score < floor:
    warnings.append(f"max_forgetting_score {cfg.max_forgetting_score} is under "
                    f"{sizes}, so the selection can hardly keep a model; {fix}")
  return warnings


def outcome(cfg, trace, synth_steps: int, total: int,
            best_step: Optional[int], kept_original: bool,
            warnings: Sequence[str] = ()) -> str:
  """One sentence on what the gate and the selection did (method stats),
  after ``warnings`` (``floor_warnings``)."""
  start_score = trace[0][1] if trace else float("nan")
  parts = list(warnings)
  if total == 0:
    parts.append("there was no retain batch to train on")
  elif synth_steps == 0:
    parts.append(f"the forgetting score {start_score:.4f} was already below "
                 f"forget_threshold {cfg.forget_threshold} at the start, so no "
                 f"step synthesised ({total} fine-tune steps on D_r)")
  else:
    parts.append(f"{synth_steps} of {total} steps synthesised (forgetting score "
                 f"{start_score:.4f} at the start, threshold {cfg.forget_threshold})")
  if best_step is not None:
    score, acc = next((s, a) for t, s, a in trace if t == best_step)
    parts.append(f"the model after step {best_step} (forgetting score "
                 f"{score:.4f}, validation accuracy {acc:.4f}) is returned")
  else:
    parts.append(f"no evaluated model reached max_forgetting_score "
                 f"{cfg.max_forgetting_score}, so the final model (forgetting "
                 f"score {trace[-1][1]:.4f}) is returned")
  if kept_original:
    parts.append("it is the original model, unchanged")
  return "; ".join(parts) + "."


def unlearn(task: UnlearnTask, cfg: ml_collections.ConfigDict, key: jax.Array
            ) -> tuple[dict, dict]:
  """Runs DLFD on ``task.mesh``: (variables, stats), the stats holding wall
  times, the gate trace and the outcome."""
  if cfg.variant not in VARIANTS:
    raise UserError(f"unknown dlfd.variant {cfg.variant!r}; use paper or released")
  if cfg.features not in ("logits", "features"):
    raise UserError(f"unknown dlfd.features {cfg.features!r}; use logits or features")
  if len(task.data.retain) == 0 or len(task.data.forget) == 0:
    raise UserError("dlfd needs non-empty forget and retain sets")
  start = time.perf_counter()
  model, mesh = task.model, task.mesh
  b = cfg.batch_size
  parallel.check_batch_size(b, mesh)
  tx = optim.for_method(cfg)
  # Fresh buffers: the steps donate the state, never the caller's arrays.
  state = parallel.replicate(TrainState.create(jax.device_get(task.variables), tx),
                             mesh)
  synth_step, finetune_step = jit_steps(model, tx, cfg, model.mean, model.std, mesh)
  if cfg.variant == "released":
    # The authors' loop starts in training mode; its first evaluation puts
    # the model in inference mode and nothing switches it back, so step 0
    # trains with batch statistics (and dropout) and every later step with
    # the running statistics (no dropout).
    first_synth, _ = jit_steps(model, tx, cfg, model.mean, model.std, mesh,
                               train=True)
    synth_step, finetune_step = jit_steps(model, tx, cfg, model.mean, model.std,
                                          mesh, train=False)
  else:
    first_synth = synth_step
  seed, order_key, forget_key = run_keys(key)
  gate = make_gate(model, task.data, cfg, seed, mesh)
  warnings = floor_warnings(cfg, *gate_sizes(task.data, cfg))
  for warning in warnings:  # before a pass that may take long
    LOGGER.warning("dlfd: %s", warning)
  retain, forget = task.data.retain, task.data.forget
  plan = pass_plan(task, cfg, key, forget_key, order_key)
  total = plan["total"]
  gate_time, gate_calls, synth, trace = 0.0, 0, 0, []
  best_acc, best_vars, best_step = -1.0, None, None
  score = None
  retain_batches = batches.prefetch(batches.iterate(retain, b, plan["order"]))

  def check(state, step):
    """The gate at ``step``: records it and keeps the model if it is the best
    candidate so far (step 0 is the original model itself: never one). The
    gate's verdict is the pass's host sync; the candidate stays on the
    devices (a copy: the steps donate the state)."""
    nonlocal gate_time, gate_calls, best_acc, best_vars, best_step
    # The previous step runs asynchronously: wait for it, so that its time
    # is not counted as the gate's.
    jax.block_until_ready(state)
    t = time.perf_counter()
    score, val_acc = (float(v) for v in jax.device_get(gate(state.variables)))
    gate_time += time.perf_counter() - t
    gate_calls += 1
    trace.append((step, score, val_acc))
    if step > 0 and score <= cfg.max_forgetting_score and val_acc > best_acc:
      best_acc, best_step = val_acc, step
      best_vars = parallel.replicate(state.variables, mesh)
    return score

  for step, host_batch in enumerate(retain_batches):
    if step % cfg.gate_every == 0:
      score = check(state, step)
    forget_batch = parallel.shard_batch(
        batches.make_batch(forget, plan["forget_rows"][step], b), mesh)
    batch = parallel.shard_batch(host_batch, mesh)
    step_key = plan["step_keys"][step]
    # The authors' score starts at 3, so their step 0 always synthesises.
    released_start = step == 0 and cfg.variant == "released"
    if released_start or score >= cfg.forget_threshold:
      state, _ = (first_synth if step == 0 else synth_step)(
          state, batch, forget_batch, plan["w_r"][step], step_key)
      synth += 1
    else:
      state, _ = finetune_step(state, batch, step_key)
  check(state, total)
  chosen = jax.device_get(best_vars if best_vars is not None else state.variables)
  kept_original = all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(x, y)), chosen,
      jax.device_get(task.variables))))
  wall_time = time.perf_counter() - start
  stats = dict(wall_time=wall_time, gate_time=gate_time,
               gate_calls=gate_calls, synth_steps=synth, steps=total,
               selected=best_vars is not None, best_val_acc=best_acc, trace=trace,
               kept_original=kept_original,
               outcome=outcome(cfg, trace, synth, total, best_step, kept_original,
                               warnings))
  return chosen, stats
