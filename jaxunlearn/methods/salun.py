"""SalUn: saliency-based unlearning (Fan et al., ICLR 2024).

Released code: OPTML-Group/Unlearn-Saliency, Classification/generate_mask.py
(the mask) and Classification/unlearn/RL.py (the update).

1. Saliency: ``g = Σ_b ∇_θ CE_b(D_f)``, the gradients of the mean CE of the
   forget batches (in order, the last one partial), summed, with the original
   model in eval mode. The mask keeps the ``int(fraction · N)`` entries of all
   ``N`` parameters with the largest ``|g|`` (one global ranking across
   tensors; the released ``with_0.5.pt`` is ``fraction = 0.5``). Their
   forget loader is shuffled, so which examples share the partial batch is
   random there; here the batches follow D_f's order (deterministic).
2. Random-label unlearning where only the salient weights move. With PyTorch
   SGD (coupled weight decay ``wd``, momentum ``μ``) and mask ``m``:
   ``d = m ⊙ (∇L + wd θ)``, ``b ← μ b + d``, ``θ ← θ - lr b``. Masking after
   the decay is what the released RL.py does by masking the gradient, then
   restoring the masked-out weights to their values and zeroing their momentum
   after every step: non-salient weights stay bit-identical and their momentum
   stays 0.

``variant="released"`` (default) is RL.py's CIFAR-10/SVHN branch: each epoch
is a pass over D_f, every batch trained toward labels drawn uniformly from all
``C`` classes afresh at every step (the true label included), then a pass over
D_r with its labels; one step per batch, one optimiser throughout.
``variant="paired"``: each D_f batch (fixed random labels different from the
true ones) is paired with a D_r batch and the two mean CEs are summed in one
step, as the paper's objective reads. RL.py's CIFAR-100/Tiny-ImageNet branch
(D_f relabelled once per epoch and shuffled together with D_r) is not
reproduced.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn import loop, optim, parallel
from jaxunlearn.errors import UserError
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.methods import (Method, _common, _stats, epoch_callback,
                                random_label, register)
from jaxunlearn.state import TrainState, apply_train


def default_config():
  # The authors' CIFAR-10 ResNet-18 example (Classification/README.md):
  # --unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013 --mask_path
  # mask/with_0.5.pt; the rest from Classification/arg_parser.py: batch_size
  # 256, momentum 0.9, weight_decay 5e-4; training augmentation on
  # (dataset.py, --no-aug off). decreasing_lr 91,136 never acts in 10 epochs.
  return _common.base_config(lr=0.013, epochs=10, fraction=0.5, batch_size=256,
                             momentum=0.9, weight_decay=5e-4, augment=True,
                             variant="released")


def saliency_mask(gradient, fraction: float):
  """1.0 for the ``int(fraction * N)`` entries with the largest |g|."""
  leaves, treedef = jax.tree.flatten(gradient)
  flat = np.concatenate([np.abs(np.asarray(g)).ravel() for g in leaves])
  keep = int(flat.size * fraction)  # generate_mask.py: int(len * i)
  selected = np.zeros(flat.size, np.float32)
  if keep:
    selected[np.argsort(-flat, kind="stable")[:keep]] = 1.0
  masks, offset = [], 0
  for g in leaves:
    masks.append(selected[offset:offset + g.size].reshape(np.shape(g)))
    offset += g.size
  return jax.tree.unflatten(treedef, masks)


class SalientState(NamedTuple):
  mask: Any


def keep_salient(mask) -> optax.GradientTransformation:
  """Multiplies the updates by ``mask``, kept in the optimiser state (so it is
  an input of the jitted step, not a constant compiled into it)."""
  def init(params):
    del params
    return SalientState(jax.tree.map(jnp.asarray, mask))

  def update(updates, state, params=None):
    del params
    return jax.tree.map(jnp.multiply, updates, state.mask), state
  return optax.GradientTransformation(init, update)


def masked_sgd(cfg: ml_collections.ConfigDict, mask) -> optax.GradientTransformation:
  """PyTorch SGD whose decayed gradient is masked before momentum:
  ``b ← μ b + m ⊙ (g + wd θ)``, ``θ ← θ - lr b`` (RL.py's mask, step and
  restore; see the module docstring)."""
  return optim.for_method(cfg, gradient_transform=keep_salient(mask))


def random_label_loss(num_classes: int):
  """CE toward labels drawn uniformly from all classes with the step's key
  (RL.py: ``torch.randint(0, num_classes, target.shape)`` every batch)."""
  def loss_fn(net, params, batch_stats, frozen, batch, key, axis_name):
    labels = jax.random.randint(key, batch["label"].shape, 0, num_classes)
    logits, _, batch_stats = apply_train(net, params, batch_stats, batch["image"],
                                         batch["mask"])
    loss = weighted_mean(cross_entropy(logits, labels), batch["mask"], axis_name)
    return loss, batch_stats, {}
  return loss_fn


def compute_mask(task, cfg):
  gradient = _stats.summed_batch_gradient(task.model, task.variables,
                                          task.data.forget, cfg.batch_size, task.mesh)
  return saliency_mask(gradient, cfg.fraction)


def _released(task, cfg, key, tx):
  """RL.py's loop; with ``task.checkpoint_dir`` the state is saved after
  every epoch and a later call resumes after the last saved one (each
  phase's key depends only on the epoch, so a resumed run ends bit-identical)."""
  state = _common.MethodState(TrainState.create(task.variables, tx), {})
  mngr, first_epoch = None, 0
  if task.checkpoint_dir:
    mngr = ckpt_lib.manager(task.checkpoint_dir)
    if mngr.latest_step() is not None:
      state, meta = ckpt_lib.restore(mngr, jax.tree.map(loop.ocp_abstract, state))
      first_epoch = int(meta["epoch"]) + 1
  steps = {name: parallel.jit_step(_common.make_step(task.model, tx, loss), task.mesh)
           for name, loss in (("forget", random_label_loss(task.num_classes)),
                              ("retain", random_label.loss_fn))}
  augment = task.augment if cfg.augment else loop.Augment()
  on_epoch_end = epoch_callback(task, lambda s: s.train.variables)
  pass_keys = list(loop.folded_keys(key, 2 * cfg.epochs))
  for epoch in range(first_epoch, cfg.epochs):
    for i, (name, split) in enumerate((("forget", task.data.forget),
                                       ("retain", task.data.retain))):
      state = loop.run_epochs(steps[name], state, split, batch_size=cfg.batch_size,
                              epochs=1, key=pass_keys[2 * epoch + i],
                              mesh=task.mesh, augment=augment,
                              desc=f"salun {name}", progress=task.progress)
    if on_epoch_end is not None:
      on_epoch_end(epoch, state)
    if mngr is not None:
      ckpt_lib.save(mngr, epoch, state, {"epoch": epoch})
  return jax.device_get(state.train.variables), {}


def unlearn(task, cfg, key):
  label_key, run_key = jax.random.split(key)
  tx = masked_sgd(cfg, compute_mask(task, cfg))
  variant = cfg.get("variant", "released")
  if variant == "released":
    return _released(task, cfg, run_key, tx)
  if variant == "paired":
    return _common.run(task, cfg, run_key, random_label.loss_fn,
                       random_label.relabelled_forget_set(task, label_key),
                       paired=task.data.retain, tx=tx, desc="salun")
  raise UserError(f"unknown salun variant {variant!r}; use released or paired")


register(Method("salun", unlearn, default_config,
                "saliency-masked random-label unlearning (Fan et al. 2024)"))
