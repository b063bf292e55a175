"""The epoch loop every trainer and method shares: shuffle, pad, shard, augment,
step, log, checkpoint, resume.

Randomness is a pure function of (key, epoch, batch number), so a run killed
mid-way and resumed from its last checkpoint (saved at epoch ends, or at the
step where SIGTERM stopped it) repeats exactly what the uninterrupted run did
and ends with bit-identical parameters.

No implicit transfers (tests/test_transfers.py runs every method under
``jax.transfer_guard("disallow")``): batches go to the devices with
``parallel.shard_batch``, each epoch's keys and example orders are computed
on the devices in one program each, and the host waits for the devices once
per epoch, where one ``jax.device_get`` brings the epoch's metrics, the
finiteness check and the next epoch's example orders.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxunlearn import batches, logs, parallel, preemption
from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn.batches import Split
from jaxunlearn.errors import Diverged, UserError


@dataclasses.dataclass(frozen=True)
class Augment:
  crop_padding: int = 0
  flip: bool = False

  @property
  def active(self) -> bool:
    return bool(self.crop_padding or self.flip)


def batch_keys(key: jax.Array, epoch, batch) -> tuple[jax.Array, jax.Array]:
  """(augmentation key, step key) for one batch."""
  k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 1), epoch), batch)
  return tuple(jax.random.split(k))


@functools.partial(jax.jit, static_argnums=2)
def _epoch_keys(key, epoch, count):
  return jax.vmap(lambda b: jnp.stack(batch_keys(key, epoch, b)), out_axes=1)(
      jnp.arange(count))


def epoch_keys(key: jax.Array, epoch: jax.Array, count: int
               ) -> tuple[list, list]:
  """(augmentation keys, step keys) of batches 0..count-1 of ``epoch`` (a
  device scalar): ``batch_keys`` for each, in one program, as lists."""
  augment, step = _epoch_keys(key, epoch, count)
  return list(augment), list(step)


def order_key(key: jax.Array) -> jax.Array:
  return jax.random.fold_in(key, 0)


def paired_key(key: jax.Array) -> jax.Array:
  return jax.random.fold_in(key, 2)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _folded(key, start, count):
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(count))


def folded_keys(key: jax.Array, count: int, start: int = 0) -> jax.Array:
  """``[fold_in(key, i) for i in range(start, start + count)]`` as one key
  array from one program (iterate it, or ``list`` it): a ``fold_in`` per
  iteration of a host loop would send each Python int to the device."""
  return _folded(key, start, count)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def paired_rows(key: jax.Array, first_batch, count: int, n: int,
                batch_size: int) -> jax.Array:
  """``[paired_index(n, batch_size, key, first_batch + i) for i in
  range(count)]`` as one [count, batch_size] array, computed on the device
  (jittable; ``first_batch`` may be traced): every pass a batch touches is
  permuted once, ``(count * batch_size - 1) // n + 2`` passes at most."""
  positions = first_batch * batch_size + jnp.arange(count * batch_size)
  first_pass = (first_batch * batch_size) // n
  passes = first_pass + jnp.arange((count * batch_size - 1) // n + 2)
  orders = jax.vmap(lambda p: jax.random.permutation(jax.random.fold_in(key, p), n))(
      passes)
  return orders[positions // n - first_pass, positions % n].reshape(count, batch_size)


@functools.partial(jax.jit, static_argnames=("n", "shuffle", "steps", "paired_n",
                                             "paired_batch_size"))
def _epoch_plan(key, epoch, *, n, shuffle, steps, paired_n, paired_batch_size):
  """The example order of ``epoch`` (``batches.epoch_order`` with
  ``order_key``) and, with a paired split, its rows for the epoch's batches
  (``_paired_batch``'s)."""
  order = (jax.random.permutation(jax.random.fold_in(order_key(key), epoch), n)
           if shuffle else jnp.arange(n))
  plan = {"order": order}
  if paired_n:
    plan["paired"] = paired_rows(paired_key(key), epoch * steps, steps, paired_n,
                                 paired_batch_size)
  return plan


@functools.lru_cache(maxsize=None)
def _augmenter(mesh: Mesh, augment: Augment) -> Callable:
  def fn(key, batch):
    key, paired_key = jax.random.split(key)
    out = dict(batch, image=batches.augment_images(
        key, batch["image"], augment.crop_padding, augment.flip))
    if "paired" in batch:
      out["paired"] = dict(batch["paired"], image=batches.augment_images(
          paired_key, batch["paired"]["image"], augment.crop_padding, augment.flip))
    return out
  # The augmented batch replaces the one given: donated.
  return jax.jit(fn, in_shardings=(parallel.replicated(mesh),
                                   parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh), donate_argnums=1)


def check_finite(worst_loss, finite: bool, where: str) -> None:
  """Raises if a step's loss or the state became NaN/inf."""
  loss_ok = worst_loss is None or bool(np.isfinite(float(worst_loss)))
  if not (loss_ok and bool(finite)):
    value = float(worst_loss) if not loss_ok else "NaN/inf in the parameters"
    raise Diverged(f"the loss became {value} in {where}; lower the "
                    "learning rate (or check the data for NaNs)")


@jax.jit
def all_finite(state):
  """Whether every floating leaf of ``state`` is finite (one device bool)."""
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


@jax.jit
def _accumulate(totals, worst, metrics):
  """Per-epoch sums of the scalar step metrics, and the last loss, or the
  first non-finite one seen (on device: no sync per step)."""
  scalars = {k: v.astype(jnp.float32) for k, v in metrics.items()
             if jnp.ndim(v) == 0}
  totals = scalars if totals is None else jax.tree.map(jnp.add, totals, scalars)
  if "loss" in metrics:
    loss = metrics["loss"].astype(jnp.float32)
    worst = loss if worst is None else jnp.where(jnp.isfinite(worst), loss, worst)
  return totals, worst


@preemption.deferring
def run_epochs(step: Callable, state: Any, split: Split, *, batch_size: int,
               epochs: int, key: jax.Array, mesh: Mesh,
               augment: Augment = Augment(), shuffle: bool = True,
               drop_remainder: bool = False, checkpoint_dir: Optional[str] = None,
               checkpoint_every: int = 1, meta: Optional[dict] = None,
               desc: str = "", progress: bool = True,
               on_epoch_end: Optional[Callable[[int, Any], None]] = None,
               paired: Optional[Split] = None,
               paired_batch_size: Optional[int] = None,
               learning_rate: Union[None, float, Callable[[int], Any]] = None
               ) -> Any:
  """Runs ``epochs`` passes of the jitted ``step`` over ``split``.

  ``step(state, batch, key) -> (state, metrics)`` must already be compiled for
  the mesh (``parallel.jit_step``). With ``checkpoint_dir`` the state is saved
  every ``checkpoint_every`` epochs and at the end, and a later call resumes
  from the latest saved position (returning at once if training had
  finished); each save's meta holds ``seconds``, the loop's wall time up to
  it summed over every process that ran it (``run.timed_phase`` adds it to
  a resumed phase's time). SIGTERM (``preemption``) saves at the next step
  boundary and raises ``preemption.Preempted``.

  ``paired``: a second split (e.g. D_f next to D_r) cycled alongside the
  epoch; each batch then carries ``batch["paired"]`` (image, label, mask) of
  ``paired_batch_size`` examples, drawn in a seeded order that restarts when
  the paired split is used up.

  Each epoch is logged (``logs.epoch``): the mean of every scalar step
  metric, ``learning_rate`` (a number, or a function of the optimizer step
  count, evaluated on the device) when given, images/s, elapsed time and
  ETA. Fetching them, the finiteness check and the next epoch's example
  orders is the epoch's one host sync; before the first step the host waits
  once more, for the first epoch's orders (and for a state that is not yet
  on the mesh: ``parallel.replicate``).
  """
  if len(split) == 0:
    raise UserError(f"{desc or 'training'}: the data set is empty")
  parallel.check_batch_size(batch_size, mesh)
  entered = time.perf_counter()
  start_epoch, start_batch, prior_seconds = 0, 0, 0.0
  mngr = None
  if checkpoint_dir:
    mngr = ckpt_lib.manager(checkpoint_dir)
    if mngr.latest_step() is not None:
      abstract = jax.tree.map(ocp_abstract, state)
      state, saved_meta = ckpt_lib.restore(mngr, abstract)
      start_epoch = int(saved_meta["epoch"]) + 1
      prior_seconds = float(saved_meta.get("seconds", 0.0))
      if "batch" in saved_meta:  # stopped inside that epoch
        start_epoch, start_batch = start_epoch - 1, int(saved_meta["batch"]) + 1
  state = parallel.replicate(state, mesh)
  steps_per_epoch = batches.num_batches(len(split), batch_size, drop_remainder)
  if start_batch >= steps_per_epoch:
    start_epoch, start_batch = start_epoch + 1, 0
  if start_epoch >= epochs:
    return state
  bar = _progress(desc, (epochs - start_epoch) * steps_per_epoch - start_batch,
                  progress)
  augmenter = _augmenter(mesh, augment) if augment.active else None
  key = parallel.replicate_key(key, mesh)
  on_device = lambda number: parallel.put_replicated(np.int32(number), mesh)
  plan_of = functools.partial(
      _epoch_plan, key, n=len(split), shuffle=shuffle, steps=steps_per_epoch,
      paired_n=0 if paired is None else len(paired),
      paired_batch_size=paired_batch_size or batch_size)
  if paired is not None and len(paired) == 0:
    raise UserError("the paired data set is empty")
  lr_of = jax.jit(learning_rate) if callable(learning_rate) else None
  plan = jax.device_get(plan_of(on_device(start_epoch)))
  run_start = time.perf_counter()
  done_steps = 0
  for epoch in range(start_epoch, epochs):
    epoch_start = time.perf_counter()
    first = start_batch if epoch == start_epoch else 0
    totals, worst = None, None
    aug_keys, step_keys = epoch_keys(key, on_device(epoch), steps_per_epoch)

    def host_batches(plan=plan, first=first):  # read ahead
      for b, host_batch in enumerate(batches.iterate(
          split, batch_size, plan["order"], drop_remainder, first), start=first):
        if paired is not None:
          host_batch["paired"] = batches.make_batch(
              paired, plan["paired"][b], paired_batch_size or batch_size)
        yield host_batch
    for b, host_batch in enumerate(batches.prefetch(host_batches()), start=first):
      batch = parallel.shard_batch(host_batch, mesh)
      if augmenter is not None:
        batch = augmenter(aug_keys[b], batch)
      state, metrics = step(state, batch, step_keys[b])
      totals, worst = _accumulate(totals, worst, metrics)
      if bar is not None:
        bar.update(1)
      if preemption.stop_requested():
        where = f"{desc or 'training'} epoch {epoch + 1} step {b + 1}"
        if mngr is None:
          raise preemption.Preempted(f"{where}: this phase keeps no checkpoint "
                                     "and restarts when the run is resumed")
        # Saved under the epoch's number; the epoch's end replaces it.
        if mngr.latest_step() == epoch:  # stopped inside this epoch before
          mngr.delete(epoch)
        ckpt_lib.save(mngr, epoch, state, dict(
            meta or {}, epoch=epoch, batch=b,
            seconds=prior_seconds + time.perf_counter() - entered))
        raise preemption.Preempted(f"{where}: saved in {checkpoint_dir}")
    count = steps_per_epoch - first
    step_count = _optimizer_steps(state)
    lr = (learning_rate if lr_of is None
          else None if step_count is None else lr_of(step_count))
    next_plan = plan_of(on_device(epoch + 1)) if epoch + 1 < epochs else None
    worst, finite, totals, lr, plan = jax.device_get(  # the one host sync
        (worst, all_finite(state), totals, lr, next_plan))
    check_finite(worst, finite, desc or "training")
    done_steps += count
    _log_epoch(desc, epoch, epochs, totals, count, batch_size, lr,
               epoch_start, run_start, done_steps,
               (epochs - epoch - 1) * steps_per_epoch)
    if bar is not None and totals and "loss" in totals:
      bar.set_postfix(loss=f"{totals['loss'] / count:.4f}", refresh=False)
    if on_epoch_end is not None:
      on_epoch_end(epoch, state)
    if mngr is not None and ((epoch + 1) % checkpoint_every == 0
                             or epoch + 1 == epochs):
      if mngr.latest_step() == epoch:  # the save of a stop inside this epoch
        mngr.delete(epoch)
      ckpt_lib.save(mngr, epoch, state, dict(
          meta or {}, epoch=epoch,
          seconds=prior_seconds + time.perf_counter() - entered))
  if bar is not None:
    bar.close()
  return state


def _log_epoch(desc, epoch, epochs, totals, count, batch_size, learning_rate,
               epoch_start, run_start, done_steps, steps_left):
  now = time.perf_counter()
  record = {"phase": desc or "training", "epoch": epoch + 1, "epochs": epochs}
  record.update({k: float(v) / count for k, v in (totals or {}).items()})
  if learning_rate is not None:
    record["lr"] = float(learning_rate)
  seconds = now - epoch_start
  record["images_per_s"] = count * batch_size / seconds if seconds > 0 else None
  record["elapsed_s"] = now - run_start
  record["eta_s"] = (now - run_start) / done_steps * steps_left
  logs.epoch(record)


def _optimizer_steps(state):
  """The optimizer step count of a TrainState (or of a method state holding
  one as ``train``); None for a state without one."""
  train = getattr(state, "train", state)
  return getattr(train, "step", None)


def paired_index(n: int, batch_size: int, key: jax.Array,
                 global_batch: int) -> np.ndarray:
  """Indices of batch number ``global_batch`` of ``n`` examples cycled in
  seeded passes: pass ``p`` is in the order ``batches.epoch_order(key, p,
  n)``, and a batch that straddles two passes takes the end of one and the
  start of the next (no padding: indices wrap around)."""
  if n == 0:
    raise UserError("the paired data set is empty")
  start = global_batch * batch_size
  positions = np.arange(start, start + batch_size)
  passes = positions // n
  index = np.empty(batch_size, np.int64)
  for p in np.unique(passes):
    order = batches.epoch_order(key, int(p), n)
    sel = passes == p
    index[sel] = order[positions[sel] % n]
  return index


def _paired_batch(split: Split, batch_size: int, key: jax.Array,
                  global_batch: int) -> dict:
  """Batch number ``global_batch`` of ``split`` cycled in seeded passes
  (``paired_index`` with the loop's paired key)."""
  index = paired_index(len(split), batch_size, jax.random.fold_in(key, 2),
                       global_batch)
  return batches.make_batch(split, index, batch_size)


def ocp_abstract(x):
  return jax.ShapeDtypeStruct(np.shape(x), x.dtype) if hasattr(x, "dtype") else x


def _progress(desc: str, total: int, enabled: bool):
  """A progress bar for a person at a terminal; batch logs get the epoch
  lines only."""
  if not enabled or not logs.interactive() or jax.process_index() != 0:
    return None
  from tqdm.auto import tqdm
  return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True,
              mininterval=0.5)
