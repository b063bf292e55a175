"""DLFD: distribution-level feature distancing (with an OT-gated fine-tune).

Paper: Choi et al., "Distribution-Level Feature Distancing for Machine
Unlearning: Towards a Better Trade-off Between Model Utility and
Forgetting", AAAI 2025 (arXiv 2409.14747). One pass over D_r; each retain
batch ``x_r`` is paired with a forget batch ``x_f`` of the same size (D_f
cycled in seeded passes). With ``b`` the step and ``w_r(b)`` rising linearly
from ``w_r0`` to ``w_r1`` over the pass:

- Gate: if the current forgetting score FS >= ``forget_threshold``,
  synthesise: ``δ_0 = 0``, ``K`` steps ``δ <- δ + α sign(∇_δ J(δ))`` with
    J(δ) = w_f OT(φ(x̃(δ)), φ(x_f)) - w_r(b) CE(f(x̃(δ)), y_r),
  OT = entropic OT (``jaxunlearn.ot``, ε, uniform marginals) under the cost
  max(0, 1 - cos); then one SGD step (coupled weight decay) on
  ``CE(f(x̃(δ_K)), y_r)``. Otherwise one SGD step on the clean retain batch.
- Selection: among the evaluated steps (after at least one update) whose FS <= ``max_forgetting_score``,
  keep the parameters with the best validation accuracy (if none qualifies,
  the final parameters are returned).

``δ`` lives in normalised-image units (``α`` as the authors give it).

Scope: forgetting a random subset of the training data (the paper's MUFAC
and RAF-DB settings: instances of any class). Class forgetting is outside
it: the forgetting score compares D_f with unseen samples of the same
classes, and pushing features away from a whole class is not what the
method is for. The method stats say what the gate and selection did
(``kept_original``, ``outcome``).

variant="paper" (default): ``x̃(δ) = clip(x + δ·std, 0, 1)`` in pixel space
(a valid image) and OT uses the *perturbed* features, so the perturbation
pushes the retain features away from the forget features; the Sinkhorn
runs to convergence and is differentiated at its fixed point
(``jaxunlearn.ot.sinkhorn``). The model is in training mode at every step
(BatchNorm on batch statistics, dropout on), as when training it; its
running statistics are updated by the model step's forward only. The gate
applies from step 0.
variant="released" (the authors' code, Dasol-Choi/DLFD unlearn/dlfd.py):
``x̃`` is built as ``clamp((x - mean)/std + δ, 0, 1)`` on the *normalised*
image (mapped back to pixels for our models, which normalise inside), and
OT is the authors' early-stopped Sinkhorn (``ot.sinkhorn_released``)
between the *clean* retain features and the forget features: it does not
depend on δ, so ∇_δ J = -w_r ∇_δ CE and synthesis is signed gradient
*descent* on CE. Their score starts at 3, so step 0 always synthesises.
Model mode: their loop receives the model in training mode, and the
evaluation after step 0 calls ``model.eval()`` and nothing calls
``model.train()`` again; so step 0 runs its 3K+1 forwards (per ascent step
perturbed, forget, clean retain; then the model step's) in training mode,
each updating the BatchNorm running statistics (PyTorch: momentum 0.1,
unbiased variance; build the model with ``torch_bn=True`` to match), and
every later step runs in inference mode (running statistics, no dropout,
no statistics updates).

Features ``φ``: "logits" (released) or "features" (penultimate layer).
The forget features (and the clean retain features the released variant
uses) are constants: computed once per synthesis step, before the K ascent
steps (stop_gradient). The K steps run in one ``fori_loop`` on GPU/TPU and
as a host loop of one jitted ascent step on CPU (``device_loop``; XLA:CPU
runs a convolution's gradient several times slower inside a loop).

Gate: the authors' ``MIA(model, retain, forget_test, val)`` after every
step: the forgetting score (``metrics.forgetting``: validation losses then
D_f losses, unbalanced, 10-fold logistic regression) on the validation set
vs all of D_f, and the accuracy on the same validation set. The authors
refit sklearn's logistic regression after every step; here the per-sample
losses come from one jitted pass and the 10 folds are fitted in JAX by
Newton's method (``metrics.forgetting.forgetting_score_jax``), every
``gate_every`` steps. The task carries no validation split, so a seeded
``val_fraction`` of D_t is the validation set (the reported test accuracy
still uses all of D_t: selection has seen part of it; say so when
comparing).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from jaxunlearn import batches, loop, parallel
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.methods import Method, UnlearnTask, register
from jaxunlearn.metrics import forgetting
from jaxunlearn import ot
from jaxunlearn.state import TrainState, apply_eval, gradient_update, sgd
from jaxunlearn.train import for_axis

VARIANTS = ("paper", "released")


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


def perturbed_images(images, delta, mean, std, variant: str):
  """x̃(δ) in pixel space (see the module docstring for the two variants)."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  if variant == "released":
    return jnp.clip((images - mean) / std + delta, 0.0, 1.0) * std + mean
  return jnp.clip(images + delta * std, 0.0, 1.0)


def distancing_term(perturbed_features, clean_features, forget_features, mask,
                    variant: str, epsilon: float = 0.01, tol: float = 1e-4,
                    max_iters: int = 5000):
  """OT(φ(x̃), φ(x_f)) with the converged Sinkhorn (paper), or the authors'
  ``compute_ot_loss(φ(x_r), φ(x_f))`` with their early-stopped Sinkhorn
  (released); see ``jaxunlearn.ot``."""
  forget_features = jax.lax.stop_gradient(forget_features)
  if variant == "released":
    return ot.ot_distance_released(clean_features, forget_features, epsilon,
                                   mask_x=mask)
  return ot.ot_distance(perturbed_features, forget_features, epsilon, tol,
                        max_iters, mask_x=mask)


def _forward(model, params, batch_stats, images, mask, key, train: bool = True):
  """(logits, features, batch_stats): training mode (batch statistics, their
  running averages updated, dropout from ``key``) or inference mode (running
  statistics, no dropout, ``batch_stats`` returned unchanged)."""
  variables = {"params": params, "batch_stats": batch_stats}
  if not train:
    logits, features = model.apply(variables, images, train=False, mask=mask)
    return logits, features, batch_stats
  (logits, features), updates = model.apply(
      variables, images, train=True, mask=mask, mutable=["batch_stats"],
      rngs={"dropout": key})
  return logits, features, updates["batch_stats"]


def make_objective_parts(model, cfg, mean, std, axis_name: Optional[str] = None,
                         train: bool = True):
  """(fixed, perturbed): J split into what does not depend on δ and what does.

  ``fixed(params, batch_stats, batch, forget, key) -> (clean φ, forget φ)``:
  the features of the clean retain batch and of the forget batch, gathered
  over ``axis_name`` and held constant (stop_gradient); a synthesis step
  computes them once, as the authors' code does.
  ``perturbed(δ, params, batch_stats, batch, fixed, w_r, key) -> (J, (OT,
  CE, batch_stats))`` with ``J = w_f OT - w_r CE``; ``batch_stats`` after
  the perturbed forward (unchanged in inference mode). ``train``: the
  model's mode in both (see ``make_steps``).

  Under ``shard_map`` (``axis_name``) each device holds a slice of both
  batches: BatchNorm statistics are shared across devices, the CE is the
  device's share of the global mean, and the OT term, which couples every
  pair of samples, is computed on the gathered features by every device and
  counted ``1/devices`` times each, so per-device objectives (and their
  gradients, summed over devices) add up to the single-device ones. Dropout
  draws independent masks per device (the key is folded with the device
  index), so with dropout the numbers match a single device in distribution
  only; without dropout they match exactly.
  """
  net = for_axis(model, axis_name)
  pick = (lambda lg, ft: lg) if cfg.features == "logits" else (lambda lg, ft: ft)
  gather = ((lambda x: x) if axis_name is None else
            (lambda x: lax.all_gather(x, axis_name, axis=0, tiled=True)))

  def keys(key):  # (clean, forget, perturbed)
    if axis_name is not None:
      key = jax.random.fold_in(key, lax.axis_index(axis_name))
    return jax.random.split(key, 3)

  def fixed(params, batch_stats, batch, forget, key):
    k_clean, k_forget, _ = keys(key)
    f_logits, f_feat, _ = _forward(net, params, batch_stats, forget["image"],
                                   forget["mask"], k_forget, train)
    c_logits, c_feat, _ = _forward(net, params, batch_stats, batch["image"],
                                   batch["mask"], k_clean, train)
    return jax.lax.stop_gradient((gather(pick(c_logits, c_feat)),
                                  gather(pick(f_logits, f_feat))))

  def perturbed(delta, params, batch_stats, batch, fixed_features, w_r, key):
    _, _, k_pert = keys(key)
    clean, forget = fixed_features
    x = perturbed_images(batch["image"], delta, mean, std, cfg.variant)
    logits, feat, new_stats = _forward(net, params, batch_stats, x,
                                       batch["mask"], k_pert, train)
    ce = weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"],
                       axis_name)
    ot_cost = distancing_term(gather(pick(logits, feat)), clean, forget,
                              gather(batch["mask"]), cfg.variant, cfg.epsilon,
                              cfg.sinkhorn_tol, cfg.sinkhorn_max_iters)
    if axis_name is not None:
      ot_cost = ot_cost / lax.psum(1, axis_name)
    return cfg.w_f * ot_cost - w_r * ce, (ot_cost, ce, new_stats)
  return fixed, perturbed


def make_objective(model, cfg, mean, std, axis_name: Optional[str] = None,
                   train: bool = True):
  """J(δ; params, batch_stats, batch, forget batch, w_r, key) -> (J, (OT,
  CE)), everything computed from the inputs (``make_objective_parts``)."""
  fixed, perturbed = make_objective_parts(model, cfg, mean, std, axis_name, train)

  def objective(delta, params, batch_stats, batch, forget, w_r, key):
    value, (ot_cost, ce, _) = perturbed(
        delta, params, batch_stats, batch,
        fixed(params, batch_stats, batch, forget, key), w_r, key)
    return value, (ot_cost, ce)
  return objective


class Steps(NamedTuple):
  """DLFD's pure, unjitted steps (see ``make_steps``)."""
  synth: Callable     # (state, batch, forget, w_r, key) -> (state, metrics)
  finetune: Callable  # (state, batch, key) -> (state, metrics)
  fixed: Callable     # (state, batch, forget, key) -> features
  ascend: Callable    # (state, batch, forget, features, w_r, key, k, delta,
                      #  batch_stats) -> (delta, batch_stats)
  finish: Callable    # (state, batch, features, w_r, key, delta, batch_stats)
                      #  -> (state, metrics)


def make_steps(model, tx, cfg, mean, std, axis_name: Optional[str] = None,
               train: bool = True) -> Steps:
  """DLFD's steps, pure and unjitted. ``synth(state, batch, forget, w_r,
  key)``: ``fixed`` (the clean retain and forget features, once), then
  ``ascend`` K times from δ = 0 in a ``fori_loop``, then ``finish`` (the SGD
  step on the perturbed batch). ``finetune(state, batch, key)``: the clean
  update. See ``jit_steps`` for the mesh and the host loop.

  ``train``: the model's mode in every forward (``_forward``). In training
  mode the running BatchNorm statistics follow the forwards the authors'
  loop runs: with variant "released", every forward of an ascent step
  (perturbed, forget, clean retain, in that order: 3K) and the model step's
  (1) update them, threaded through ``ascend`` as ``batch_stats``; with
  variant "paper" only the model step's forward does (the ascent forwards
  probe the model, they do not train it).
  """
  fixed_features, objective = make_objective_parts(model, cfg, mean, std,
                                                   axis_name, train)
  net = for_axis(model, axis_name)
  track_stats = train and cfg.variant == "released"

  def ce_update(state, images, batch, key):
    if axis_name is not None:
      key = jax.random.fold_in(key, lax.axis_index(axis_name))

    def loss_fn(params):
      logits, _, batch_stats = _forward(net, params, state.batch_stats, images,
                                        batch["mask"], key, train)
      loss = weighted_mean(cross_entropy(logits, batch["label"]), batch["mask"],
                           axis_name)
      return loss, (batch_stats, {})
    return gradient_update(state, tx, loss_fn, axis_name)

  def fixed(state, batch, forget, key):
    k_delta, _ = jax.random.split(key)
    return fixed_features(state.params, state.batch_stats, batch, forget, k_delta)

  def ascend(state, batch, forget, features, w_r, key, k, delta, batch_stats):
    """Ascent step ``k`` of the synthesis: δ <- δ + α sign(∇_δ J(δ))."""
    k_delta, _ = jax.random.split(key)
    k_step = jax.random.fold_in(k_delta, k)
    params = jax.lax.stop_gradient(state.params)
    grad, (_, _, new_stats) = jax.grad(objective, has_aux=True)(
        delta, params, batch_stats, batch, features, w_r, k_step)
    if track_stats:
      # The authors' loop also runs the forget and clean batches through the
      # model in every ascent step; in training mode they update the stats.
      k_forget, k_clean = jax.random.split(jax.random.fold_in(k_step, 1))
      _, _, new_stats = _forward(net, params, new_stats, forget["image"],
                                 forget["mask"], k_forget, train)
      _, _, new_stats = _forward(net, params, new_stats, batch["image"],
                                 batch["mask"], k_clean, train)
    else:
      new_stats = batch_stats
    return delta + cfg.alpha * jnp.sign(grad), new_stats

  def finish(state, batch, features, w_r, key, delta, batch_stats):
    """The SGD step on CE(f(x̃(δ_K)), y_r) after the K ascent steps."""
    k_delta, k_model = jax.random.split(key)
    images = perturbed_images(batch["image"], delta, mean, std, cfg.variant)
    _, (ot_cost, _, _) = objective(delta, jax.lax.stop_gradient(state.params),
                                   state.batch_stats, batch, features, w_r,
                                   k_delta)
    if axis_name is not None:
      ot_cost = lax.psum(ot_cost, axis_name)
    state, metrics = ce_update(state.replace(batch_stats=batch_stats), images,
                               batch, k_model)
    return state, dict(metrics, ot=ot_cost)

  def synth_step(state, batch, forget, w_r, key):
    features = fixed(state, batch, forget, key)
    delta, batch_stats = jax.lax.fori_loop(
        0, cfg.steps,
        lambda k, c: ascend(state, batch, forget, features, w_r, key, k, *c),
        (jnp.zeros_like(batch["image"]), state.batch_stats))
    return finish(state, batch, features, w_r, key, delta, batch_stats)

  def finetune_step(state, batch, key):
    return ce_update(state, batch["image"], batch, key)

  return Steps(synth_step, finetune_step, fixed, ascend, finish)


def jit_each_step(model, tx, cfg, mean, std, mesh: Mesh,
                  use_shard_map: Optional[bool] = None,
                  train: bool = True) -> Steps:
  """Every function of ``make_steps`` compiled for ``mesh``: the state
  replicated, the retain and forget batches (and δ) sharded along the batch
  axis, the gathered features replicated. ``jax.jit`` partitions the global
  computation, or with ``use_shard_map`` each device runs the ``axis_name``
  form (the pmap style). The steps that return a state donate theirs, and
  ``ascend`` donates δ.

  ``use_shard_map`` default (None): ``shard_map`` on more than one device.
  The OT term couples every pair of samples; partitioned by ``jax.jit`` the
  Sinkhorn iterations of each of the K synthesis steps each carry
  collectives (on 2 CPU devices a synthesis step took 0.83 s against 0.12 s
  on one), while under ``shard_map`` the features are gathered once per
  objective and Sinkhorn runs locally (0.13 s; benchmarks/end_to_end.py)."""
  if use_shard_map is None:
    use_shard_map = mesh.devices.size > 1
  if not use_shard_map:
    rep, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    spec = dict(state=rep, batch=data, features=rep, scalar=rep, delta=data,
                metrics=rep, stats=rep)
    steps = make_steps(model, tx, cfg, mean, std, train=train)

    def compile_(fn, ins, outs, donate):
      return jax.jit(fn, in_shardings=specs(ins), out_shardings=specs(outs),
                     donate_argnums=donate)
  else:
    b = P(parallel.DATA_AXIS)
    spec = dict(state=P(), batch=b, features=P(), scalar=P(), delta=b,
                metrics=P(), stats=P())
    steps = make_steps(model, tx, cfg, mean, std, parallel.DATA_AXIS, train)

    def compile_(fn, ins, outs, donate):
      return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=specs(ins),
                                   out_specs=specs(outs), check_vma=False),
                     donate_argnums=donate)

  def specs(names):  # a name or a tuple of names -> shardings or specs
    return tuple(map(spec.get, names)) if isinstance(names, tuple) else spec[names]
  state_out = ("state", "metrics")
  return Steps(
      synth=compile_(steps.synth, ("state", "batch", "batch", "scalar", "scalar"),
                     state_out, 0),
      finetune=compile_(steps.finetune, ("state", "batch", "scalar"), state_out, 0),
      fixed=compile_(steps.fixed, ("state", "batch", "batch", "scalar"),
                     ("features", "features"), ()),
      ascend=compile_(steps.ascend, ("state", "batch", "batch", "features",
                                     "scalar", "scalar", "scalar", "delta",
                                     "stats"), ("delta", "stats"), (7,)),
      finish=compile_(steps.finish, ("state", "batch", "features", "scalar",
                                     "scalar", "delta", "stats"), state_out, 0))


def host_loop_synth(steps: Steps, num_steps: int) -> Callable:
  """``synth(state, batch, forget, w_r, key)`` as a host loop over the
  jitted pieces of ``jit_each_step``: ``fixed``, ``ascend`` ``num_steps``
  times, ``finish``. The same numbers as ``steps.synth`` (tests/test_dlfd.py)."""
  def synth(state, batch, forget, w_r, key):
    features = steps.fixed(state, batch, forget, key)
    delta, batch_stats = jnp.zeros_like(batch["image"]), state.batch_stats
    for k in range(num_steps):
      delta, batch_stats = steps.ascend(state, batch, forget, features, w_r, key,
                                        np.int32(k), delta, batch_stats)
    return steps.finish(state, batch, features, w_r, key, delta, batch_stats)
  return synth


def jit_steps(model, tx, cfg, mean, std, mesh: Mesh,
              use_shard_map: Optional[bool] = None,
              device_loop: Optional[str] = None, train: bool = True):
  """(synth_step, finetune_step) for ``mesh`` (see ``jit_each_step``), with
  the model in training (``train``) or inference mode (``make_steps``).

  ``device_loop`` (default ``cfg.device_loop``; see
  ``parallel.loop_on_device``): "device" compiles the K ascent steps into
  one program with a ``fori_loop``; "host" (the default on CPU) calls the
  jitted ascent step K times (``host_loop_synth``): the same numbers, and on
  XLA:CPU, where a convolution's weight gradient inside a loop is several
  times slower (jax-ml/jax#12868), faster. ``synth_step(state, batch,
  forget, w_r, key)`` has the same signature either way."""
  steps = jit_each_step(model, tx, cfg, mean, std, mesh, use_shard_map, train)
  on_device = parallel.loop_on_device(
      cfg.device_loop if device_loop is None else device_loop, mesh,
      "dlfd.device_loop")
  synth = steps.synth if on_device else host_loop_synth(steps, cfg.steps)
  return synth, steps.finetune


def _gate_batch(split: Split, index: np.ndarray, batch: int) -> dict:
  """``index`` of ``split`` as one host batch padded to a multiple of
  ``batch`` (``batches.make_batch``). Every row is read: the gate's arrays
  are replicated, while ``make_batch`` decodes only this process's rows of
  lazy images."""
  part = split.take(index)
  part = Split(np.asarray(part.images), part.labels, part.ids)
  return batches.make_batch(part, np.arange(len(index)),
                            batches.num_batches(len(index), batch) * batch)


def gate_sets(data, cfg, seed: int):
  """The gate's samples: (test split = D_t,f + D_t,r, validation indices
  into it (a seeded ``val_fraction``, in test order), MIA labels: 0 = the
  validation samples, 1 = all of D_f in its order). As in the authors' loop
  (``MIA(model, retain, forget_test, val)``), the validation set is both the
  unseen set of the forgetting score and the set of the selection accuracy."""
  test = batches.concat([data.test_forget, data.test_retain])
  rng = np.random.default_rng(seed)
  n_val = int(round(cfg.val_fraction * len(test)))
  val_idx = np.sort(rng.permutation(len(test))[:n_val])
  if n_val < 10 or len(data.forget) < 10:
    raise UserError("dlfd: need >= 10 forget and validation (test) samples; "
                    "raise dlfd.val_fraction or enlarge the forget set")
  _, labels = forgetting.authors_samples(np.zeros(len(data.forget)),
                                         np.zeros(n_val))
  return test, val_idx, labels


class GateInputs(NamedTuple):
  """The gate's host arrays (``gate_inputs``)."""
  forget: dict       # D_f: image, label, mask, padded to eval_batch_size
  val: dict          # the validation samples, likewise
  labels: np.ndarray       # MIA labels of [validation losses, D_f losses]
  train_index: np.ndarray  # the 10 folds (``forgetting.cv_splits``)
  test_index: np.ndarray


def gate_inputs(data, cfg, seed: int) -> GateInputs:
  """The samples of ``gate_sets`` as padded batches, with the MIA labels and
  the folds of the forgetting score."""
  test, val_idx, labels = gate_sets(data, cfg, seed)
  train_index, test_index = forgetting.cv_splits(labels)
  b = cfg.eval_batch_size
  return GateInputs(_gate_batch(data.forget, np.arange(len(data.forget)), b),
                    _gate_batch(test, val_idx, b), labels, train_index, test_index)


def losses_and_correct(model, variables, images, labels, batch_size: int):
  """Per-sample cross-entropy and correctness in inference mode, over
  ``images`` in chunks of ``batch_size`` (``lax.map``: one program whatever
  the number of samples)."""
  def chunk(args):
    img, lab = args
    logits, _ = apply_eval(model, variables, img)
    return cross_entropy(logits, lab), jnp.argmax(logits, -1) == lab
  shape = images.shape
  loss, correct = jax.lax.map(chunk, (images.reshape(-1, batch_size, *shape[1:]),
                                      labels.reshape(-1, batch_size)))
  return loss.reshape(-1), correct.reshape(-1)


def make_gate(model, data, cfg, seed: int, mesh: Optional[Mesh] = None):
  """gate(variables) -> (FS, val accuracy) on device; one jitted call (its
  arrays replicated on ``mesh``). FS follows the authors' MIA() protocol
  (``metrics.forgetting``) on the validation set vs D_f, with the 10-fold
  logistic regression fitted in JAX (``forgetting.forgetting_score_jax``;
  ``benchmarks/dlfd_gate.py`` times it against the authors' sklearn refit)."""
  inputs = gate_inputs(data, cfg, seed)
  b = cfg.eval_batch_size
  nf, nv = int(inputs.forget["mask"].sum()), int(inputs.val["mask"].sum())
  consts = jax.device_put(
      dict(f=(inputs.forget["image"], inputs.forget["label"]),
           v=(inputs.val["image"], inputs.val["label"]), labels=inputs.labels,
           tr=inputs.train_index, te=inputs.test_index),
      parallel.replicated(mesh) if mesh is not None else None)

  @jax.jit
  def gate(variables, c):
    f_loss, _ = losses_and_correct(model, variables, *c["f"], b)
    v_loss, v_correct = losses_and_correct(model, variables, *c["v"], b)
    losses = jnp.concatenate([v_loss[:nv], f_loss[:nf]])
    score = forgetting.forgetting_score_jax(losses, c["labels"], c["tr"], c["te"])
    return score, jnp.mean(v_correct[:nv])

  return lambda variables: gate(variables, consts)


def run_keys(key: jax.Array):
  """(gate seed, retain-order key, forget-cycle key) of a run with ``key``;
  the per-step keys are ``fold_in(key, 100 + step)``."""
  seed = int(jax.random.randint(jax.random.fold_in(key, 7), (), 0, 2**31 - 1))
  return seed, jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def outcome(cfg, trace, synth_steps: int, total: int,
            best_step: Optional[int], kept_original: bool) -> str:
  """One sentence on what the gate and the selection did (method stats)."""
  start_score = trace[0][1] if trace else float("nan")
  parts = []
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
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
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
  retain, forget = task.data.retain, task.data.forget
  order = batches.epoch_order(order_key, 0, len(retain))
  total = batches.num_batches(len(retain), b)
  replicated = parallel.replicated(mesh)
  gate_time, gate_calls, synth, trace = 0.0, 0, 0, []
  best_acc, best_vars, best_step = -1.0, None, None
  score = None
  retain_batches = batches.prefetch(batches.iterate(retain, b, order))
  for step, host_batch in enumerate(retain_batches):
    if step % cfg.gate_every == 0:
      # The previous step runs asynchronously: wait for it, so that its time
      # is not counted as the gate's.
      jax.block_until_ready(state)
      t = time.perf_counter()
      score, val_acc = (float(v) for v in gate(state.variables))
      gate_time += time.perf_counter() - t
      gate_calls += 1
      trace.append((step, score, val_acc))
      # Step 0 is the original model itself: never a candidate.
      if step > 0 and score <= cfg.max_forgetting_score and val_acc > best_acc:
        best_acc, best_vars, best_step = (val_acc, jax.device_get(state.variables),
                                          step)
    f_index = loop.paired_index(len(forget), b, forget_key, step)
    forget_batch = parallel.shard_batch(batches.make_batch(forget, f_index, b), mesh)
    batch = parallel.shard_batch(host_batch, mesh)
    step_key = jax.device_put(jax.random.fold_in(key, 100 + step), replicated)
    w_r = cfg.w_r0 + (cfg.w_r1 - cfg.w_r0) * step / max(total - 1, 1)
    # The authors' score starts at 3, so their step 0 always synthesises.
    released_start = step == 0 and cfg.variant == "released"
    if released_start or score >= cfg.forget_threshold:
      state, _ = (first_synth if step == 0 else synth_step)(
          state, batch, forget_batch, jax.device_put(jnp.float32(w_r), replicated),
          step_key)
      synth += 1
    else:
      state, _ = finetune_step(state, batch, step_key)
  jax.block_until_ready(state)
  t = time.perf_counter()
  score, val_acc = (float(v) for v in gate(state.variables))
  gate_time += time.perf_counter() - t
  gate_calls += 1
  trace.append((total, score, val_acc))
  if score <= cfg.max_forgetting_score and val_acc > best_acc:
    best_acc, best_vars, best_step = val_acc, jax.device_get(state.variables), total
  chosen = best_vars if best_vars is not None else jax.device_get(state.variables)
  kept_original = all(jax.tree.leaves(jax.tree.map(
      lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))),
      chosen, jax.device_get(task.variables))))
  wall_time = time.perf_counter() - start
  stats = dict(wall_time=wall_time, gate_time=gate_time,
               gate_calls=gate_calls, synth_steps=synth, steps=total,
               selected=best_vars is not None, best_val_acc=best_acc, trace=trace,
               kept_original=kept_original,
               outcome=outcome(cfg, trace, synth, total, best_step, kept_original))
  return chosen, stats


register(Method("dlfd", unlearn, default_config,
                "distribution-level feature distancing with OT (Choi et al., AAAI 2025)",
                forget_kinds=("random", "ids"), evaluators=("forgetting_score",)))
