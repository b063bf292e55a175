"""DLFD's synthesis: the objective J(δ) and the steps that ascend it.

A synthesis step starts from ``δ_0 = 0``, takes ``K`` steps
``δ <- δ + α sign(∇_δ J(δ))`` with
    J(δ) = w_f OT(φ(x̃(δ)), φ(x_f)) - w_r CE(f(x̃(δ)), y_r),
OT = entropic OT (``jaxunlearn.ot``, ε, uniform marginals) under the cost
max(0, 1 - cos), then one SGD step (coupled weight decay) on
``CE(f(x̃(δ_K)), y_r)``; a fine-tune step is the SGD step on the clean
retain batch. ``δ`` lives in normalised-image units (``α`` as the authors
give it).

variant="paper" (default): ``x̃(δ) = clip(x + δ·std, 0, 1)`` in pixel space
(a valid image) and OT uses the *perturbed* features, so the perturbation
pushes the retain features away from the forget features; the Sinkhorn
runs to convergence and is differentiated at its fixed point
(``jaxunlearn.ot.sinkhorn``). The model is in training mode at every step
(BatchNorm on batch statistics, dropout on), as when training it; its
running statistics are updated by the model step's forward only.
variant="released" (the authors' code, Dasol-Choi/DLFD unlearn/dlfd.py):
``x̃`` is built as ``clamp((x - mean)/std + δ, 0, 1)`` on the *normalised*
image (mapped back to pixels for our models, which normalise inside), and
OT is the authors' early-stopped Sinkhorn (``ot.sinkhorn_released``)
between the *clean* retain features and the forget features: it does not
depend on δ, so ∇_δ J = -w_r ∇_δ CE and synthesis is signed gradient
*descent* on CE. Model mode: their loop receives the model in training
mode, and the evaluation after step 0 calls ``model.eval()`` and nothing
calls ``model.train()`` again; so step 0 runs its 3K+1 forwards (per ascent
step perturbed, forget, clean retain; then the model step's) in training
mode, each updating the BatchNorm running statistics (PyTorch: momentum
0.1, unbiased variance; build the model with ``torch_bn=True`` to match),
and every later step runs in inference mode (running statistics, no
dropout, no statistics updates): ``make_steps(train=...)``.

Features ``φ``: "logits" (released) or "features" (penultimate layer).
The forget features (and the clean retain features the released variant
uses) are constants: computed once per synthesis step, before the K ascent
steps (stop_gradient). The K steps run in one ``fori_loop`` on GPU/TPU and
as a host loop of one jitted ascent step on CPU (``device_loop``; XLA:CPU
runs a convolution's gradient several times slower inside a loop).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from jaxunlearn import ot, parallel
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.state import gradient_update
from jaxunlearn.models import for_axis

VARIANTS = ("paper", "released")


def perturbed_images(images, delta, mean, std, variant: str):
  """x̃(δ) in pixel space (see this module's docstring for the two variants).
  float32 whatever the model's dtype, as every attack's perturbation: K
  signed steps of α·std must add up, not round away at bfloat16's 2^-8."""
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
  The OT term couples every pair of samples; partitioned by ``jax.jit``
  every Sinkhorn iteration of each of the K ascent steps carries
  collectives, while under ``shard_map`` the features are gathered once per
  objective and Sinkhorn runs locally."""
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


def host_loop_synth(steps: Steps, num_steps: int,
                    mesh: Optional[Mesh] = None) -> Callable:
  """``synth(state, batch, forget, w_r, key)`` as a host loop over the
  jitted pieces of ``jit_each_step``: ``fixed``, ``ascend`` ``num_steps``
  times, ``finish``. The same numbers as ``steps.synth`` (tests/test_dlfd.py).
  With ``mesh`` the step numbers k are placed on it once, and δ_0 is made
  there, so that the loop sends no Python number to the devices."""
  ks, zeros = [np.int32(k) for k in range(num_steps)], jnp.zeros_like
  if mesh is not None:
    ks = parallel.put_replicated(ks, mesh)
    zeros = jax.jit(jnp.zeros_like, out_shardings=parallel.batch_sharded(mesh))

  def synth(state, batch, forget, w_r, key):
    features = steps.fixed(state, batch, forget, key)
    delta, batch_stats = zeros(batch["image"]), state.batch_stats
    for k in ks:
      delta, batch_stats = steps.ascend(state, batch, forget, features, w_r, key,
                                        k, delta, batch_stats)
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
  synth = steps.synth if on_device else host_loop_synth(steps, cfg.steps, mesh)
  return synth, steps.finetune
