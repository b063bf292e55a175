"""The epoch loop every trainer and method shares: shuffle, pad, shard, augment,
step, checkpoint, resume.

Randomness is a pure function of (key, epoch, batch number), so a run killed
mid-way and resumed from its last checkpoint (saved at epoch ends) repeats the
interrupted epoch exactly and ends with bit-identical parameters.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn import parallel
from jaxunlearn import batches
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError


@dataclasses.dataclass(frozen=True)
class Augment:
  crop_padding: int = 0
  flip: bool = False

  @property
  def active(self) -> bool:
    return bool(self.crop_padding or self.flip)


def batch_keys(key: jax.Array, epoch: int, batch: int) -> tuple[jax.Array, jax.Array]:
  """(augmentation key, step key) for one batch."""
  k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, 1), epoch), batch)
  return tuple(jax.random.split(k))


def order_key(key: jax.Array) -> jax.Array:
  return jax.random.fold_in(key, 0)


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
  return jax.jit(fn, in_shardings=(parallel.replicated(mesh),
                                   parallel.batch_sharded(mesh)),
                 out_shardings=parallel.batch_sharded(mesh))


def check_finite(worst_loss, state, where: str) -> None:
  """Raises if a step's loss or the state became NaN/inf (one sync per epoch)."""
  loss_ok = worst_loss is None or bool(np.isfinite(float(worst_loss)))
  if not (loss_ok and bool(_state_finite(state))):
    value = float(worst_loss) if not loss_ok else "NaN/inf in the parameters"
    raise UserError(f"the loss became {value} in {where}; lower the "
                    "learning rate (or check the data for NaNs)")


@jax.jit
def _state_finite(state):
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(state)
            if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


@jax.jit
def _track_nonfinite(worst, loss):
  """Keeps the first non-finite loss seen (on device: no sync per step)."""
  return jnp.where(jnp.isfinite(worst), loss, worst)


def run_epochs(step: Callable, state: Any, split: Split, *, batch_size: int,
               epochs: int, key: jax.Array, mesh: Mesh,
               augment: Augment = Augment(), shuffle: bool = True,
               drop_remainder: bool = False, checkpoint_dir: Optional[str] = None,
               checkpoint_every: int = 1, meta: Optional[dict] = None,
               desc: str = "", progress: bool = True,
               on_epoch_end: Optional[Callable[[int, Any], None]] = None,
               paired: Optional[Split] = None,
               paired_batch_size: Optional[int] = None) -> Any:
  """Runs ``epochs`` passes of the jitted ``step`` over ``split``.

  ``step(state, batch, key) -> (state, metrics)`` must already be compiled for
  the mesh (``parallel.jit_step``). With ``checkpoint_dir`` the state is saved
  every ``checkpoint_every`` epochs and at the end, and a later call resumes
  from the latest saved epoch (returning at once if training had finished).

  ``paired``: a second split (e.g. D_f next to D_r) cycled alongside the
  epoch; each batch then carries ``batch["paired"]`` (image, label, mask) of
  ``paired_batch_size`` examples, drawn in a seeded order that restarts when
  the paired split is used up.
  """
  if len(split) == 0:
    raise UserError(f"{desc or 'training'}: the data set is empty")
  parallel.check_batch_size(batch_size, mesh)
  start_epoch = 0
  mngr = None
  if checkpoint_dir:
    mngr = ckpt_lib.manager(checkpoint_dir)
    if mngr.latest_step() is not None:
      abstract = jax.tree.map(ocp_abstract, state)
      state, saved_meta = ckpt_lib.restore(mngr, abstract)
      start_epoch = int(saved_meta["epoch"]) + 1
  state = parallel.replicate(state, mesh)
  steps_per_epoch = batches.num_batches(len(split), batch_size, drop_remainder)
  if start_epoch >= epochs:
    return state
  bar = _progress(desc, (epochs - start_epoch) * steps_per_epoch, progress)
  augmenter = _augmenter(mesh, augment) if augment.active else None
  metrics = {}
  for epoch in range(start_epoch, epochs):
    worst = jnp.zeros((), jnp.float32)
    order = batches.epoch_order(order_key(key), epoch, len(split), shuffle)

    def host_batches(epoch=epoch, order=order):  # read ahead in a thread
      for b, host_batch in enumerate(batches.iterate(split, batch_size, order,
                                                      drop_remainder)):
        if paired is not None:
          host_batch["paired"] = _paired_batch(
              paired, paired_batch_size or batch_size, key,
              epoch * steps_per_epoch + b)
        yield host_batch
    for b, host_batch in enumerate(batches.prefetch(host_batches())):
      aug_key, step_key = batch_keys(key, epoch, b)
      batch = parallel.shard_batch(host_batch, mesh)
      if augmenter is not None:
        batch = augmenter(aug_key, batch)
      state, metrics = step(state, batch, step_key)
      if "loss" in metrics:
        worst = _track_nonfinite(worst, metrics["loss"])
      if bar is not None:
        bar.update(1)
    check_finite(worst, state, desc or "training")  # one host sync per epoch
    if bar is not None:
      bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", refresh=False)
    if on_epoch_end is not None:
      on_epoch_end(epoch, state)
    if mngr is not None and ((epoch + 1) % checkpoint_every == 0
                             or epoch + 1 == epochs):
      ckpt_lib.save(mngr, epoch, state, dict(meta or {}, epoch=epoch))
  if bar is not None:
    bar.close()
  return state


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
  if not enabled:
    return None
  from tqdm.auto import tqdm
  return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True,
              mininterval=0.5)
