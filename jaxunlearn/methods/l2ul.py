"""L2UL: instance-wise unlearning with adversarial examples and weight importance.

Paper: Cha et al., "Learning to Unlearn: Instance-wise Unlearning for
Pre-trained Classifiers", AAAI 2024. Uses the original model and the forget
instances only.

1. Adversarial examples, once, on the original model (inference mode):
   ``n_adv`` targeted L2 PGD examples per forget sample toward random other
   classes (``attacks.pgd_l2_targeted``, advertorch's L2PGDAttack); each
   keeps its *target* label.
2. MAS weight importance on D_f in batches of 32 (training mode):
   ``Ω = Σ_b B_b |G_b| / k``, ``G_b`` the gradient of the batch mean of
   ``||f_θ(x_i)||₂`` accumulated over batches as released
   (``mas_importance``), min-max normalised per tensor and inverted,
   ``Ω̂ = 1 - (Ω - min)/(max - min)``; a tensor with max = min gets Ω̂ = 1
   (the released code divides by zero there).
3. Update, on forget batch ``s mod ceil(k/32)`` and adversarial batch
   ``s mod ceil(N_a/256)`` at step s (the released sequential loaders,
   ``loader_batch``): ``L = -(B_f/(B_f+B_a)) CE(f(x_f), y_f) + (B_a/(B_f+B_a))
   CE(f(x_a), t_a) + λ Σ Ω̂ (θ - θ0)² / 2``; two training-mode forward passes
   (BatchNorm statistics update twice per step, as released); SGD lr 1e-3,
   momentum 0.9, coupled weight decay 1e-4.
4. Stop: after every step, the forget samples in inference mode; stop when
   none is classified as its label, at most ``max_iter + 1`` passes over the
   adversarial examples (``max_steps``). On GPU/TPU the whole loop is one
   jitted ``lax.while_loop`` (no host sync per step); on CPU a host loop of
   jitted steps is faster (``on_device_loop``).

Released code: csm9493/L2UL main_unlearn_cifar10_mixed_label_resnet18.py
and utils.py; ``default_config()`` is its CIFAR-10 setting.

Data-parallel: each step's two batches (and the stop set) are split over
the mesh and the step runs under ``shard_map`` with cross-device BatchNorm
statistics and psum'd gradients; 1 and 2 devices give the same numbers
(tests/test_l2ul.py).
``continual`` applies a sequence of deletion requests, each stop rule
covering all samples forgotten so far.

``variant``: "ga" (-CE only), "adv" (+ adversarial term), "full" (+
importance); ``ga`` checks the stop rule after each pass over D_f and
counts ``max_iter`` in those passes, as the released ``naive_train`` loop.
``relabel >= 0``: train the forget instances toward that label instead of
away from their own (the paper's relabelling objective). ``run`` also
returns the number of steps, the budget and whether the stop rule held.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxunlearn import batches, optim, parallel
from jaxunlearn.attacks import pgd_l2_targeted, random_targets
from jaxunlearn.batches import Split
from jaxunlearn.errors import UserError
from jaxunlearn.losses import cross_entropy, weighted_mean
from jaxunlearn.methods import Method, register
from jaxunlearn.metrics.predict import accuracy as predict_accuracy, make_predict_fn
from jaxunlearn.state import apply_eval, apply_train
from jaxunlearn.models import for_axis


def default_config():
  # The authors' CIFAR-10 setting: csm9493/L2UL run_unlearn_cifar_imagenet.sh
  # (--num-adv-images 20 --pgd-eps 4.0 --unlearn-lr 0.001 --reg-lamb 1.0) on
  # main_unlearn_cifar10_mixed_label_resnet18.py (PGD step 0.1 and 100 steps
  # by default there; SGD momentum 0.9, weight decay 1e-4; forget loader
  # batch 32, adversarial loader batch 256; max_iter 1000 passes). The values
  # for the embedded 8x8 digits are in configs/l2ul_digits.py.
  return ml_collections.ConfigDict(dict(
      variant="full", n_adv=20, epsilon=4.0, pgd_step_size=0.1, pgd_steps=100,
      lr=1e-3, momentum=0.9, weight_decay=1e-4, lam=1.0, max_iter=1000,
      forget_batch_size=32, adv_batch_size=256, importance="released",
      relabel=-1, device_loop="auto"))


def mas_importance(model, variables, images, batch_size: int,
                   importance: str = "released"):
  """MAS importance Ω on D_f in batches of ``batch_size`` (training mode).

  Per sequential batch b of ``B_b`` samples (the last one partial):
  ``g_b = ∇_θ mean_{i∈b} ||f_θ(x_i)||₂``, with BatchNorm statistics of that
  batch. ``importance="released"``: ``Ω = Σ_b B_b |G_b| / k`` with
  ``G_b = Σ_{c≤b} g_c``: the released code calls ``zero_grad`` on the
  optimiser of the model being unlearned, not of the deep copy it
  differentiates, so the copy's gradients accumulate over the batches
  (csm9493/L2UL utils.py ``estimate_parameter_importance``; that is how
  every published number with k > 32 was computed). ``"per_batch"``:
  ``G_b = g_b``, MAS as the paper describes it. The two agree for
  k ≤ ``batch_size`` (one batch). The authors divide by
  ``(k // B + 1) · B`` instead of k; the min-max normalisation cancels it.
  """
  if importance not in ("released", "per_batch"):
    raise UserError(f"unknown l2ul.importance {importance!r}; use released or "
                    "per_batch")
  count = images.shape[0]
  batch_size = min(batch_size, count)
  batches = -(-count // batch_size)
  padded = jnp.concatenate([images, jnp.zeros(
      (batches * batch_size - count, *images.shape[1:]), images.dtype)])
  masks = (jnp.arange(batches * batch_size) < count).astype(jnp.float32)

  def batch_gradient(params, x, mask):
    def objective(params):
      # float32 logits and gradients (the parameters' dtype): Ω's min-max
      # normalisation spreads them over [0, 1].
      logits, _, _ = apply_train(model, params, variables["batch_stats"], x, mask)
      return weighted_mean(jnp.sqrt(jnp.sum(logits ** 2, -1)), mask)
    return jax.grad(objective)(params)

  def one_batch(carry, batch):
    gradient, omega = carry
    x, mask = batch
    g = batch_gradient(variables["params"], x, mask)
    gradient = (jax.tree.map(jnp.add, gradient, g) if importance == "released"
                else g)
    size = jnp.sum(mask)
    omega = jax.tree.map(lambda o, a: o + size * jnp.abs(a), omega, gradient)
    return (gradient, omega), None

  zeros = jax.tree.map(jnp.zeros_like, variables["params"])
  (_, omega), _ = lax.scan(one_batch, (zeros, zeros), (
      padded.reshape(batches, batch_size, *images.shape[1:]),
      masks.reshape(batches, batch_size)))
  return jax.tree.map(lambda o: o / count, omega)


def normalise_inverted(importance):
  """Ω̂ = 1 - (Ω - min)/(max - min) per tensor; 1 where max == min."""
  def one(x):
    lo, hi = jnp.min(x), jnp.max(x)
    span = hi - lo
    return jnp.where(span > 0, 1.0 - (x - lo) / jnp.where(span > 0, span, 1.0), 1.0)
  return jax.tree.map(one, importance)


# Module-level jitted (the model static): one compilation per model and
# shape in a process. MAS run eagerly compiled ~250 single ops (9.9 s cold
# on the digits CNN, against 1.7 s for this one program). The loop's
# programs are jitted per run; across runs jax's persistent compilation
# cache (on in ``jaxunlearn run``) serves them: memoising them here as well
# saved 0.1 s of a 3.7 s repeated run.
@functools.partial(jax.jit, static_argnums=0,
                   static_argnames=("batch_size", "importance"))
def normalised_importance(model, variables, images, *, batch_size: int,
                          importance: str = "released"):
  """Ω̂ = ``normalise_inverted(mas_importance(...))`` in one program."""
  return normalise_inverted(mas_importance(model, variables, images, batch_size,
                                           importance))


@functools.partial(jax.jit, static_argnums=0,
                   static_argnames=("epsilon", "step_size", "steps"))
def adversarial_examples(model, variables, sources, targets, key, *, epsilon,
                         step_size, steps):
  """``attacks.pgd_l2_targeted`` compiled once per model and shape."""
  return pgd_l2_targeted(model, variables, sources, targets, key,
                         epsilon=epsilon, step_size=step_size, steps=steps)


def adversarial_sources(images, targets):
  """(source images, targets) of the adversarial examples in the released
  order: round r = 0..n_adv-1, then the forget samples in order, so example
  ``r k + j`` attacks sample j with target ``targets[j, r]`` (``targets``:
  [k, n_adv]). The first-commit ``adv_attack`` loops ``for i in
  range(n_adv): for batch in forget_loader`` (csm9493/L2UL utils.py at
  b8b335b, the version the CIFAR-10 script's call matches; the later one
  loops batches first, which differs for k > 32); the sequential
  adversarial batches of 256 depend on this order."""
  n_adv = targets.shape[1]
  return (jnp.tile(images, (n_adv,) + (1,) * (images.ndim - 1)),
          targets.T.reshape(-1))


def l2ul_loss(params, batch_stats, model, batch, theta0, omega, lam,
              variant: str, relabel: int, axis_name=None):
  """(loss, new batch_stats). Formula in the module docstring.

  ``batch``: ``forget_x, forget_y, forget_mask`` (a forget batch and its
  padding mask) and
  ``adv_x, adv_t, adv_mask`` (an adversarial batch and its targets). Under
  ``shard_map`` with ``axis_name`` each device holds a shard; the means are
  global (``weighted_mean`` sums the denominators over devices) and the
  penalty is split over the devices, so the psum of the per-device gradients
  is the single-device gradient.
  """
  forget_mask, adv_mask = batch["forget_mask"], batch["adv_mask"]
  logits_f, _, batch_stats = apply_train(model, params, batch_stats,
                                         batch["forget_x"], forget_mask)
  labels = (jnp.full_like(batch["forget_y"], relabel) if relabel >= 0
            else batch["forget_y"])
  forget_ce = weighted_mean(cross_entropy(logits_f, labels), forget_mask, axis_name)
  forget_term = forget_ce if relabel >= 0 else -forget_ce
  if variant == "ga":
    return forget_term, batch_stats
  logits_a, _, batch_stats = apply_train(model, params, batch_stats,
                                         batch["adv_x"], adv_mask)
  adv_term = weighted_mean(cross_entropy(logits_a, batch["adv_t"]), adv_mask, axis_name)
  b_f, b_a = _global_sum(forget_mask, axis_name), _global_sum(adv_mask, axis_name)
  loss = (b_f * forget_term + b_a * adv_term) / (b_f + b_a)
  if variant == "full":
    penalty = sum(jnp.sum(o * (p - p0) ** 2) for p, p0, o in zip(
        jax.tree.leaves(params), jax.tree.leaves(theta0), jax.tree.leaves(omega)))
    devices = 1 if axis_name is None else lax.psum(1, axis_name)
    loss = loss + lam * penalty / 2.0 / devices
  return loss, batch_stats


def _global_sum(mask, axis_name):
  total = jnp.sum(mask.astype(jnp.float32))
  return total if axis_name is None else lax.psum(total, axis_name)


def loader_batch(step, count: int, batch_size: int):
  """Rows of the batch a sequential loader gives at ``step``: ``(rows, mask)``.

  A ``DataLoader`` without shuffling, last partial batch kept, restarted
  (or ``itertools.cycle``d) at its end: batch ``step mod ceil(count / B)``,
  rows ``[b B, min((b+1) B, count))``; ``rows`` has ``B = min(batch_size,
  count)`` entries, padding rows (index 0) masked out.
  """
  batch_size = min(batch_size, count)
  batches = -(-count // batch_size)
  rows = (step % batches) * batch_size + jnp.arange(batch_size)
  mask = rows < count
  return jnp.where(mask, rows, 0), mask.astype(jnp.float32)


def _batches(count: int, batch_size: int) -> int:
  return -(-count // min(batch_size, count))


def steps_per_pass(cfg, forget_count: int, adv_count: int) -> int:
  """Steps in one pass of the loop ``max_iter`` counts: over the
  adversarial loader (``adv``/``full``: the authors zip it with the cycled
  forget loader, so a pass ends with the adversarial examples) or over the
  forget loader (``ga``: their ``naive_train`` epoch)."""
  if cfg.variant == "ga":
    return _batches(forget_count, cfg.forget_batch_size)
  return _batches(adv_count, cfg.adv_batch_size)


def max_steps(cfg, forget_count: int, adv_count: int) -> int:
  """The step budget: ``max_iter + 1`` passes. The released loop increments
  the pass counter ``j`` after each pass and breaks on ``max_iter < j``, so
  it runs passes j = 0..max_iter (at k = 16, 20 examples each, batches of
  256: 1001 x 2 = 2002 steps)."""
  return (int(cfg.max_iter) + 1) * steps_per_pass(cfg, forget_count, adv_count)


def _my_share(rows, mask, axis_name):
  """This device's slice of a batch's ``rows`` (padded to a multiple of the
  device count, the padding masked out); the whole batch on one device."""
  if axis_name is None:
    return rows, mask
  devices, device = lax.psum(1, axis_name), lax.axis_index(axis_name)
  per_device = -(-rows.shape[0] // devices)
  pad = per_device * devices - rows.shape[0]
  rows, mask = jnp.pad(rows, (0, pad)), jnp.pad(mask, (0, pad))
  return (lax.dynamic_slice(rows, (device * per_device,), (per_device,)),
          lax.dynamic_slice(mask, (device * per_device,), (per_device,)))


def make_loop(model, tx, cfg, *, relabel: int):
  """``(cond, body)`` of the L2UL loop over ``carry = (step, params,
  batch_stats, opt_state)``; each takes ``(carry, data, theta0, omega, key,
  axis_name=None)``.

  The released loop (csm9493/L2UL main_unlearn_cifar10_mixed_label_resnet18.py):
  ``for (adv, forget) in zip(adv_loader, cycle(forget_loader))`` inside
  ``while``, both loaders sequential (no shuffle, last partial batch kept),
  the cycle made once, so step s trains on forget batch
  ``s mod ceil(k/32)`` and adversarial batch ``s mod ceil(N_a/256)``
  (``loader_batch``); ``ga`` trains on forget batch ``s mod ceil(k/32)``.
  ``cond`` is "not stopped": fewer than ``max_steps`` steps and some sample
  of the stop set still classified as its label, checked after every step
  (``ga``: after every pass over D_f, as ``naive_train`` runs whole epochs).

  ``data``: ``forget_x/y``, ``adv_x``, ``adv_t`` (every forget sample and
  adversarial example) replicated; ``stop_x/y/mask`` (the samples the stop
  rule checks: D_f and, in continual unlearning, the earlier requests')
  sharded over the batch axis under ``shard_map``. Device ``i`` trains on
  its slice of each batch, so the numbers do not depend on the device count.
  ``key`` is unused (the loaders are deterministic); it stays in the
  signature every loop function shares.
  """

  def forgotten(net, params, batch_stats, data, axis_name):
    logits, _ = apply_eval(net, {"params": params, "batch_stats": batch_stats},
                           data["stop_x"])
    target = (jnp.full_like(data["stop_y"], relabel) if relabel >= 0
              else data["stop_y"])
    hits = _global_sum(data["stop_mask"] * (jnp.argmax(logits, -1) == target),
                       axis_name)
    return (hits == _global_sum(data["stop_mask"], axis_name) if relabel >= 0
            else hits == 0)

  def cond(carry, data, theta0, omega, key, axis_name=None):
    step, params, batch_stats, _ = carry
    net = for_axis(model, axis_name)
    forget_count, adv_count = data["forget_x"].shape[0], data["adv_x"].shape[0]
    # ga checks at the end of each pass over D_f, the others after every step.
    check = (step % _batches(forget_count, cfg.forget_batch_size) == 0
             if cfg.variant == "ga" else True)
    return (step < max_steps(cfg, forget_count, adv_count)) & ~(
        check & forgotten(net, params, batch_stats, data, axis_name))

  def body(carry, data, theta0, omega, key, axis_name=None):
    step, params, batch_stats, opt_state = carry
    net = for_axis(model, axis_name)
    f_rows, f_mask = _my_share(*loader_batch(
        step, data["forget_x"].shape[0], cfg.forget_batch_size), axis_name)
    a_rows, a_mask = _my_share(*loader_batch(
        step, data["adv_x"].shape[0], cfg.adv_batch_size), axis_name)
    batch = dict(forget_x=data["forget_x"][f_rows], forget_y=data["forget_y"][f_rows],
                 forget_mask=f_mask, adv_x=data["adv_x"][a_rows],
                 adv_t=data["adv_t"][a_rows], adv_mask=a_mask)
    grads, batch_stats = jax.grad(l2ul_loss, has_aux=True)(
        params, batch_stats, net, batch, theta0, omega, cfg.lam, cfg.variant,
        relabel, axis_name)
    if axis_name is not None:
      grads = lax.psum(grads, axis_name)
    updates, opt_state = tx.update(grads, opt_state, params)
    return step + 1, optax.apply_updates(params, updates), batch_stats, opt_state

  return cond, body


def on_device_loop(mesh, cfg) -> bool:
  """Whether the step loop runs as one ``lax.while_loop`` on the device
  (``cfg.device_loop``: see ``parallel.loop_on_device``)."""
  return parallel.loop_on_device(cfg.device_loop, mesh, "l2ul.device_loop")


def stop_batch(stop: Split, devices: int) -> dict:
  """The samples the stop rule checks as one host batch (``make_batch``:
  image in [0, 1], label, mask), padded to a multiple of ``devices`` so that
  it shards over the mesh."""
  n = len(stop)
  return batches.make_batch(stop, np.arange(n),
                            max(devices, batches.num_batches(n, devices) * devices))


def prepare_loop(tx, mesh, variables, omega, key, forget, stop, adv_x, adv_t):
  """What ``run``'s loop starts from on ``mesh``: (jit_fn, carry, args).

  ``jit_fn(fn, donate=False)`` jits ``fn(carry, data, theta0, omega, key,
  axis_name=None)`` (from ``make_loop``), under ``shard_map`` when the mesh
  has several devices (the stop samples sharded, everything else
  replicated: each step picks its batches from all of D_f and the
  adversarial examples); ``donate``: the carry, which the step replaces.
  ``carry`` = (steps, params, batch_stats, optimiser state) and ``args`` =
  (data, theta0, omega, key) are placed on the mesh once, explicitly, as
  every later carry comes out (so no call transfers them again or compiles
  again), the carry in buffers of its own (it is donated; theta0 starts
  equal to its parameters). ``forget``: (images in [0, 1], labels) on the
  host; ``stop``: the stop samples as one padded host batch (``stop_batch``).
  """
  devices = mesh.devices.size
  data = dict(stop_x=stop["image"], stop_y=stop["label"], stop_mask=stop["mask"])
  replicated = dict(forget_x=np.asarray(forget[0], np.float32),
                    forget_y=np.asarray(forget[1], np.int32), adv_x=adv_x,
                    adv_t=adv_t)
  spec = dict({k: P(parallel.DATA_AXIS) for k in data},
              **{k: P() for k in replicated})
  params = variables["params"]
  carry = parallel.replicate((jnp.zeros((), jnp.int32), params,
                              variables["batch_stats"], tx.init(params)), mesh)
  data = parallel.shard_batch(data, mesh)
  params, omega, replicated = jax.device_put((params, omega, replicated),
                                             parallel.replicated(mesh))
  key = parallel.replicate_key(key, mesh)
  args = (dict(data, **replicated), params, omega, key)

  def jit_fn(fn, donate=False):
    if devices > 1:
      fn = jax.shard_map(functools.partial(fn, axis_name=parallel.DATA_AXIS),
                         mesh=mesh, in_specs=(P(), spec, P(), P(), P()),
                         out_specs=P(), check_vma=False)
    return jax.jit(fn, donate_argnums=(0,) if donate else ())
  return jit_fn, carry, args


def host_loop(cond_fn, body_fn, carry, args):
  """``while cond_fn(carry, *args): carry = body_fn(carry, *args)`` with
  jitted pieces: the stop rule's verdict is fetched after every step (the
  loop's one host sync per step, as the rule is checked after every step)."""
  while bool(jax.device_get(cond_fn(carry, *args))):
    carry = body_fn(carry, *args)
  return carry


def run(task, cfg, key, keep=None):
  """L2UL from ``task.variables`` on ``task.data.forget``: (variables, info).

  ``keep`` (optional ``Split``): samples forgotten by earlier requests; the
  stop rule then also requires none of them to be classified as its label
  (continual unlearning); no gradient flows on them. ``info``: ``steps``
  taken, ``max_steps`` (the budget, ``max_steps``) and ``stopped`` (the stop
  rule held; False when the budget ran out).
  The adversarial examples are in the released order
  (``adversarial_sources``).
  """
  model, forget, mesh = task.model, task.data.forget, task.mesh
  if len(forget.labels) == 0:
    raise UserError("l2ul: the forget set is empty")
  if cfg.variant not in ("ga", "adv", "full"):
    raise UserError(f"unknown l2ul.variant {cfg.variant!r}; use ga, adv or full")
  x_f = jnp.asarray(forget.images, jnp.float32) / 255.0
  y_f = jnp.asarray(forget.labels, jnp.int32)
  target_key, pgd_key, loop_key = jax.random.split(key, 3)
  variables = task.variables

  if cfg.variant != "ga":
    sources, targets = adversarial_sources(
        x_f, random_targets(target_key, y_f, task.num_classes, cfg.n_adv))
    attack_vars = variables
    if mesh.devices.size > 1 and len(sources) % mesh.devices.size == 0:
      # Every device attacks its share of the examples (the random starts
      # are drawn as on one device: jax's partitionable threefry).
      sources, targets = jax.device_put((sources, targets),
                                        parallel.batch_sharded(mesh))
      attack_vars = jax.device_put(variables, parallel.replicated(mesh))
    adv_x = adversarial_examples(
        model, attack_vars, sources, targets, pgd_key, epsilon=float(cfg.epsilon),
        step_size=float(cfg.pgd_step_size), steps=int(cfg.pgd_steps))
  else:
    adv_x, targets = x_f[:1], y_f[:1]  # unused
  omega = (normalised_importance(model, variables, x_f,
                                  batch_size=int(cfg.forget_batch_size),
                                  importance=cfg.importance)
           if cfg.variant == "full" else jax.tree.map(jnp.zeros_like, variables["params"]))
  tx = optim.for_method(cfg)
  cond, body = make_loop(model, tx, cfg, relabel=int(cfg.relabel))
  budget = max_steps(cfg, len(forget.labels), adv_x.shape[0])

  stop = (batches.concat([forget, keep]) if keep is not None and len(keep.labels)
          else forget)
  jit_fn, carry, args = prepare_loop(
      tx, mesh, variables, omega, loop_key,
      (np.asarray(forget.images, np.float32) / 255.0, forget.labels),
      stop_batch(stop, mesh.devices.size), adv_x, targets)
  if on_device_loop(mesh, cfg):
    def whole(carry, *args, axis_name=None):
      return lax.while_loop(
          lambda c: cond(c, *args, axis_name=axis_name),
          lambda c: body(c, *args, axis_name=axis_name), carry)
    carry = jit_fn(whole, donate=True)(carry, *args)
  else:
    carry = host_loop(jit_fn(cond), jit_fn(body, donate=True), carry, args)
  steps, params, batch_stats, _ = carry
  steps, out = jax.device_get((steps, {"params": params, "batch_stats": batch_stats}))
  steps = int(steps)
  return out, dict(steps=steps, max_steps=budget, stopped=steps < budget or _stop_holds(
      model, out, stop, int(cfg.relabel)))


@functools.partial(jax.jit, static_argnums=0)
def _predicted(model, variables, pixels):
  return jnp.argmax(apply_eval(model, variables, pixels / 255.0)[0], -1)


def _stop_holds(model, variables, stop: Split, relabel) -> bool:
  """Whether the stop rule holds for ``variables`` on the samples of ``stop``."""
  pixels = np.asarray(stop.images, np.float32)
  predicted = jax.device_get(_predicted(model, *jax.device_put((variables, pixels))))
  return bool(np.all(predicted == relabel) if relabel >= 0
              else np.all(predicted != np.asarray(stop.labels)))


def unlearn(task, cfg, key):
  """``run`` for the method registry: (variables, {steps, max_steps,
  stopped, outcome})."""
  variables, stats = run(task, cfg, key)
  return variables, dict(steps=int(stats["steps"]), max_steps=int(stats["max_steps"]),
                         stopped=bool(stats["stopped"]), outcome=outcome(stats, cfg))


def outcome(stats: dict, cfg) -> str:
  """One sentence for the report: where the stop rule left the run."""
  goal = (f"every forget sample is classified as {cfg.relabel}" if cfg.relabel >= 0
          else "no forget sample keeps its label")
  if stats["stopped"]:
    return f"stopped after {int(stats['steps'])} steps: {goal}."
  return (f"the budget of {int(stats['max_steps'])} steps ran out before the "
          f"stop rule held ({goal} is not reached).")


def continual(task, cfg, key, requests):
  """Continual unlearning: deletion requests applied one after another.

  ``requests``: a sequence of training-set id arrays, each request its own
  forget set (ids from D_f or D_r of ``task.data``). Request i starts from the
  model request i-1 left and runs L2UL on its own samples; its stop rule also
  covers every sample forgotten by earlier requests. Returns (variables,
  one dict per request: ``steps``, ``stopped``, ``test_acc``,
  ``forgotten_so_far_acc``: accuracy on all samples forgotten so far).
  """
  data = task.data
  train = Split(*(np.concatenate([a, b]) for a, b in zip(data.forget, data.retain)))
  test = Split(*(np.concatenate([a, b]) for a, b in zip(data.test_forget,
                                                         data.test_retain)))
  predict_fn = make_predict_fn(task.model, task.mesh)
  accuracy = lambda v, split: predict_accuracy(
      predict_fn, v, split, 32 * task.mesh.devices.size, task.mesh)
  variables, seen, report = task.variables, np.zeros(len(train.ids), bool), []
  for number, ids in enumerate(requests):
    mine = np.isin(train.ids, np.asarray(ids))
    if not mine.any():
      raise UserError(f"l2ul continual request {number}: none of its ids is a "
                      "training sample")
    request = Split(*(a[mine] for a in train))
    variables, info = run(
        task._replace(variables=variables, data=data._replace(forget=request)),
        cfg, jax.random.fold_in(key, number),
        keep=Split(*(a[seen] for a in train)))
    seen |= mine
    report.append(dict(request=number, size=int(mine.sum()), **info,
                       test_acc=accuracy(variables, test),
                       forgotten_so_far_acc=accuracy(
                           variables, Split(*(a[seen] for a in train)))))
  return variables, report


register(Method("l2ul", unlearn, default_config,
                "adversarial-example retention + weight importance (Cha et al. 2024)",
                forget_kinds=("random", "ids")))
