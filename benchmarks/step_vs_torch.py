"""Per-step throughput of our jitted steps against faithful PyTorch steps (not a test).

For each (method step, model, batch, devices): our step as the method jits
it and the same step written in PyTorch (``torch_models``), timed in the
same process, alternating blocks of steps; medians over the blocks after a
warm-up. ``batch`` is B, the size of each batch a step reads; ``images``
counts every image the step reads (images/s uses it for both frameworks).

Steps:
- ``finetune``: CE + SGD (momentum 0.9, coupled weight decay 5e-4), BN in
  training mode; the plain reference. B images.
- ``delete``: teacher forward in inference mode, student forward in training
  mode, masked-KL loss, SGD momentum 0.9. B images.
- ``ieu``: CE gradient on a retain batch and on a forget batch of the same
  size (two training-mode forwards), the forget gradient clipped to global
  norm 5, ``θ ← (1 − ηλ)θ − η(g_r − α g_f) + σ ξ`` (our definition of IEU,
  ``ieu.default_config()``). 2B images.
- ``l2ul``: one iteration of L2UL's stop-rule loop as ``l2ul.run`` runs it
  on CPU (a host loop of two jitted functions from ``l2ul.make_loop``,
  ``l2ul.default_config()``, full variant): the stop check (an
  inference-mode pass over the k = B forget samples, read on the host every
  step as the method does, its answer ignored here so the loop keeps going)
  and the update (training-mode forwards of the k forget samples and of B
  adversarial examples drawn from 20 per forget sample, the MAS-weighted
  penalty, SGD). The adversarial examples (PGD) and the importance are made
  once before the loop and are not part of the step. 2B images. PyTorch:
  ``torch_l2ul_forgotten`` + ``torch_l2ul_step``.
- ``dlfd``: the synthesis step of ``dlfd.jit_steps`` (``dlfd.default_config()``:
  paper variant, K = 15 signed steps on δ through a 300-iteration Sinkhorn,
  then one SGD step) on a retain and a forget batch, as the method runs it
  on CPU: a host loop of jitted functions (the clean and forget features
  once, K ascent steps, the update); ``--dlfd-loop device`` times the
  one-program ``fori_loop`` form instead. 2B images. PyTorch:
  ``torch_dlfd_synthesis`` + ``torch_finetune_step``. Both do the same
  work: the forget logits once per step, K forward+backward passes of the
  perturbed batch, one update.

Columns besides images/s and ratio = ours / theirs:
- ``compile_s``: our first call (compilation + one step); ``compiles``: the
  most compiled executables of any of the step's jitted functions after all
  calls (1 = no recompilation after the first step; ``l2ul`` on several
  devices showed 2 until ``l2ul.prepare_loop`` replicated the initial carry).
- ``max_abs_diff_vs_1dev``: the steps' first 3 calls (compile + warm-up) run
  from the same initial state on every device count; the largest parameter
  difference from the 1-device run after them (None without a 1-device
  row). ``dlfd`` differs by ~1e-4 per step with K = 15 (~1e-8 with K <= 3):
  its signed steps turn last-bit differences of ∇δ near zero into ±α.
- ``gflop``: the step's FLOPs, XLA's cost analysis of the 1-device program
  (the same work on every device count; XLA counts only the multiply-adds
  that do not fall in the padding). For ``dlfd`` the K - 1 further ascent
  steps are added (``Ours.uncounted_flops``; XLA counts a loop body once);
  Sinkhorn's iterations are still counted once per solve (elementwise
  log-sum-exp over B x B: an undercount that matters for the small CNN
  only). GFLOP/s = gflop / step time for both frameworks (they do the same
  work); ``pct_of_peak`` against the best measured 2048x2048 f32 matmul of
  the machine (jax and torch, in ``meta``).
- ``ours_peak_mb``: per device, XLA's memory analysis (arguments + outputs -
  donated + temporaries); ``theirs_peak_mb``: tensors live before the step
  + the peak of the step's allocations as ``torch.profiler`` records them
  (``_timing.torch_peak_bytes``).

Devices: 1, 2, 4 forced CPU devices (``jax_num_cpu_devices``) sharing the
machine's cores; the batch is split over them, so several devices show the
data-parallel overhead (or gain from splitting across cores), not a
scaling to more hardware.

Run: python benchmarks/step_vs_torch.py [--quick] [--methods ...] [--models ...]
[--devices 1,2,4] [--dlfd-loop auto|host|device]. Writes
benchmarks/results/step_vs_torch.json (a list of rows: method, model, batch,
images, devices, ours_img_s, theirs_img_s, ratio = ours/theirs, ...),
step_vs_torch.meta.json (versions, machine, matmul peak) and step_vs_torch.md.
"""
from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import tempfile
import time
from typing import Any, Callable, NamedTuple

import jax

# The memory and cost analyses compile each step again ahead of time; with
# the persistent cache that is a cache hit. Set before the first compilation.
CACHE_DIR = tempfile.mkdtemp(prefix="xla-cache-")
atexit.register(shutil.rmtree, CACHE_DIR, True)
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jaxunlearn import parallel  # noqa: E402
from jaxunlearn.methods import delete, dlfd, ieu, l2ul  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.optim import sgd  # noqa: E402
from jaxunlearn.state import TrainState  # noqa: E402
from jaxunlearn.train import make_supervised_step  # noqa: E402

from _timing import (add_cpu_ynn_argument, cpu_name, matmul_peak, program_stats,  # noqa: E402
                     steps_per_block, time_blocks, torch_peak_bytes,
                     write_results)
from torch_models import (TorchResNet18, TorchSmallCNN, channel_stats,  # noqa: E402
                          normalizer, torch_delete_step, torch_dlfd_synthesis,
                          torch_finetune_step, torch_ieu_step, torch_images,
                          torch_l2ul_forgotten, torch_l2ul_step,
                          torch_mas_importance)

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
METHODS = ("finetune", "delete", "ieu", "l2ul", "dlfd")
CHECK_STEPS = 3  # compile + warm-up; the device counts are compared after them
TWO_BATCHES = ("ieu", "l2ul", "dlfd")

MODELS = {
    "small_cnn": (lambda: get_model("small_cnn", num_classes=10, mean=MEAN, std=STD),
                  TorchSmallCNN, 8),
    "resnet18": (lambda: get_model("resnet18", num_classes=10, mean=MEAN, std=STD,
                                   stem="cifar"), TorchResNet18, 32),
}


def make_inputs(batch: int, size: int) -> dict:
  """Seeded host data: ``batch`` and ``paired`` (image, label, mask; B each)
  and an adversarial pool for L2UL (``adv_x``, ``adv_t``; 20 per sample)."""
  rng = np.random.default_rng(0)

  def split(n):
    return dict(image=rng.uniform(0, 1, (n, size, size, 3)).astype(np.float32),
                label=rng.integers(0, 10, n).astype(np.int32),
                mask=np.ones(n, np.float32))
  pool = split(l2ul.default_config().n_adv * batch)
  return dict(batch=split(batch), paired=split(batch), adv_x=pool["image"],
              adv_t=pool["label"])


# --------------------------------------------------------------------------
# Our steps.

class Ours(NamedTuple):
  """Our step on a mesh: ``advance(state) -> state`` dispatches one step;
  ``params(state)`` its parameters; ``programs(state)`` the jitted functions
  a step calls, with their arguments; ``uncounted_flops()`` FLOPs XLA's cost
  analysis misses (loop iterations beyond the first)."""
  state: Any
  advance: Callable[[Any], Any]
  params: Callable[[Any], Any]
  programs: Callable[[Any], list]
  uncounted_flops: Callable[[], float] = lambda: 0.0


def jit_step_case(step_fn, state, host_batch, mesh, params) -> Ours:
  """A ``step(state, batch, key)`` under ``parallel.jit_step`` (donated state)."""
  step = parallel.jit_step(step_fn, mesh)
  batch = parallel.shard_batch(host_batch, mesh)
  key = jax.random.key(0)
  return Ours(parallel.replicate(state, mesh), lambda s: step(s, batch, key)[0],
              params, lambda s: [(step, (s, batch, key))])


def ours_finetune(model, variables, data, mesh) -> Ours:
  tx = sgd(0.01, 0.9, 5e-4)
  return jit_step_case(make_supervised_step(model, tx), TrainState.create(variables, tx),
                       data["batch"], mesh, lambda s: s.params)


def ours_delete(model, variables, data, mesh) -> Ours:
  tx = sgd(0.01, 0.9, 0.0)
  state = delete.DeleteState(TrainState.create(variables, tx), variables)
  return jit_step_case(delete.make_step(model, tx), state, data["batch"], mesh,
                       lambda s: s.train.params)


def ours_ieu(model, variables, data, mesh) -> Ours:
  step = ieu.make_step(model, ieu.default_config(), total_steps=1000)
  return jit_step_case(step, ieu.init_state(variables),
                       dict(data["batch"], paired=data["paired"]), mesh,
                       lambda s: s.params)


def ours_l2ul(model, variables, data, mesh) -> Ours:
  """The stop check and the update, compiled and placed as ``l2ul.run``
  does (``l2ul.prepare_loop``)."""
  cfg = l2ul.default_config()
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
  forget = data["batch"]
  # One step trains on the whole forget batch and an adversarial batch of
  # the same size (the comparison's torch step).
  cfg.forget_batch_size = cfg.adv_batch_size = len(forget["label"])
  cond, body = l2ul.make_loop(model, tx, cfg, relabel=-1)
  omega = l2ul.normalised_importance(model, variables, jnp.asarray(forget["image"]),
                                     batch_size=cfg.forget_batch_size)
  jit_fn, carry, args = l2ul.prepare_loop(
      tx, mesh, variables, omega, jax.random.key(0),
      (forget["image"], forget["label"]), forget,
      jnp.asarray(data["adv_x"]), jnp.asarray(data["adv_t"]))
  cond_fn, body_fn = jit_fn(cond), jit_fn(body, donate=True)

  def advance(carry):
    # the method reads the stop rule every step
    bool(jax.device_get(cond_fn(carry, *args)))
    return body_fn(carry, *args)
  return Ours(carry, advance, lambda c: c[1],
              lambda c: [(cond_fn, (c, *args)), (body_fn, (c, *args))])


DLFD_LOOP = ["auto"]  # --dlfd-loop: the K ascent steps' loop (dlfd.device_loop)


def ours_dlfd(model, variables, data, mesh) -> Ours:
  """The synthesis step as ``dlfd.jit_steps`` runs it: on CPU ("auto") a
  host loop of jitted ``fixed``, K x ``ascend`` and ``finish``; with
  ``--dlfd-loop device`` one program with a ``fori_loop``."""
  cfg = dlfd.default_config()
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
  steps = dlfd.jit_each_step(model, tx, cfg, model.mean, model.std, mesh)
  on_device = parallel.loop_on_device(DLFD_LOOP[0], mesh)
  synth = steps.synth if on_device else dlfd.host_loop_synth(steps, cfg.steps)
  rep = parallel.replicated(mesh)
  batch = parallel.shard_batch(data["batch"], mesh)
  forget = parallel.shard_batch(data["paired"], mesh)
  w_r, key = jax.device_put((jnp.float32(0.5), jax.random.key(0)), rep)

  def pieces(s):
    features = steps.fixed(s, batch, forget, key)
    delta = jnp.zeros_like(batch["image"])
    return [(steps.fixed, (s, batch, forget, key)),
            (steps.ascend, (s, batch, features, w_r, key, np.int32(0), delta)),
            (steps.finish, (s, batch, features, w_r, key, delta))]

  def programs(s):
    return [(steps.synth, (s, batch, forget, w_r, key))] if on_device else pieces(s)

  def uncounted_flops():
    """K - 1 further ascent steps: counted once in the host loop's
    ``programs`` and, in the fori_loop, by XLA's cost analysis (a loop body
    is counted once)."""
    ascend, args = pieces(state)[1]
    return (cfg.steps - 1) * program_stats(ascend, *args)["flops"]
  state = parallel.replicate(TrainState.create(variables, tx), mesh)
  return Ours(state, lambda s: synth(s, batch, forget, w_r, key)[0],
              lambda s: s.params, programs, uncounted_flops)


OURS = dict(finetune=ours_finetune, delete=ours_delete, ieu=ours_ieu, l2ul=ours_l2ul,
            dlfd=ours_dlfd)


# --------------------------------------------------------------------------
# PyTorch steps (torch_models), with the tensors they keep alive.

class Theirs(NamedTuple):
  step: Callable[[], None]
  live: list  # tensors alive across steps (model, optimiser, inputs)


def live_tensors(*owners) -> list:
  """Parameters and buffers of modules, state of optimisers, plain tensors."""
  tensors = []
  for owner in owners:
    if isinstance(owner, torch.nn.Module):
      tensors += list(owner.parameters()) + list(owner.buffers())
    elif isinstance(owner, torch.optim.Optimizer):
      tensors += [v for s in owner.state.values() for v in s.values()
                  if torch.is_tensor(v)]
    elif torch.is_tensor(owner):
      tensors.append(owner)
    else:
      tensors += list(owner)
  return tensors


def torch_batch(split) -> tuple[torch.Tensor, torch.Tensor]:
  return torch_images(split["image"]), torch.from_numpy(split["label"].astype(np.int64))


def theirs_finetune(make_torch, data, norm) -> Theirs:
  net = make_torch()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
  x, y = torch_batch(data["batch"])
  return Theirs(lambda: torch_finetune_step(net, opt, norm, x, y),
                live_tensors(net, opt, x, y))


def theirs_delete(make_torch, data, norm) -> Theirs:
  net, teacher = make_torch(), make_torch().eval()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
  x, y = torch_batch(data["batch"])
  return Theirs(lambda: torch_delete_step(net, teacher, opt, norm, x, y),
                live_tensors(net, teacher, opt, x, y))


def theirs_ieu(make_torch, data, norm) -> Theirs:
  net = make_torch()
  cfg = ieu.default_config()
  (x, y), (xf, yf) = torch_batch(data["batch"]), torch_batch(data["paired"])
  return Theirs(lambda: torch_ieu_step(net, cfg, norm, x, y, xf, yf),
                live_tensors(net, x, y, xf, yf))


def theirs_l2ul(make_torch, data, norm) -> Theirs:
  net = make_torch()
  cfg = l2ul.default_config()
  x_f, y_f = torch_batch(data["batch"])
  adv_x = torch_images(data["adv_x"])
  adv_t = torch.from_numpy(data["adv_t"].astype(np.int64))
  omega = torch_mas_importance(net, norm, x_f)
  theta0 = [p.detach().clone() for p in net.parameters()]
  opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
  gen = torch.Generator().manual_seed(0)

  def step():
    torch_l2ul_forgotten(net, norm, x_f, y_f)
    idx = torch.randperm(len(adv_t), generator=gen)[:len(y_f)]
    torch_l2ul_step(net, opt, norm, x_f, y_f, adv_x[idx], adv_t[idx], omega, theta0,
                    cfg.lam)
  return Theirs(step, live_tensors(net, opt, omega, theta0, x_f, y_f, adv_x, adv_t))


def theirs_dlfd(make_torch, data, norm) -> Theirs:
  net = make_torch()
  cfg = dlfd.default_config()
  opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
  (x, y), (xf, _) = torch_batch(data["batch"]), torch_batch(data["paired"])
  _, std_t = channel_stats(MEAN, STD)

  def step():
    perturbed = torch_dlfd_synthesis(net, norm, std_t, x, y, xf, cfg, 0.5)
    torch_finetune_step(net, opt, norm, perturbed, y)
  return Theirs(step, live_tensors(net, opt, x, y, xf))


THEIRS = dict(finetune=theirs_finetune, delete=theirs_delete, ieu=theirs_ieu,
              l2ul=theirs_l2ul, dlfd=theirs_dlfd)


# --------------------------------------------------------------------------

def first_steps(ours: Ours) -> tuple[Any, float, float, Any]:
  """CHECK_STEPS steps from the initial state: (state, first call seconds,
  last step seconds, parameters on the host)."""
  state, times = ours.state, []
  for _ in range(CHECK_STEPS):
    t = time.perf_counter()
    state = ours.advance(state)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t)
  return state, times[0], times[-1], jax.device_get(ours.params(state))


def max_abs_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def setup(method, model_name, batch, devices) -> tuple[Ours, dict]:
  """Our step for (method, model, batch) on ``devices``, and its host data."""
  make_flax, _, size = MODELS[model_name]
  model = make_flax()
  data = make_inputs(batch, size)
  variables = model.init(jax.random.key(0), jnp.asarray(data["batch"]["image"]))
  return OURS[method](model, variables, data, parallel.make_mesh(devices)), data


def bench(method, model_name, batch, devices, blocks, block_s):
  """One row (without the FLOP columns), the parameters after CHECK_STEPS
  steps, and the PyTorch step."""
  ours, data = setup(method, model_name, batch, devices)
  state, compile_s, ours_step_s, params = first_steps(ours)
  holder = [state]

  def run_ours(n):
    s = holder[0]
    for _ in range(n):
      s = ours.advance(s)
    jax.block_until_ready(s)
    holder[0] = s

  torch.manual_seed(0)
  theirs = THEIRS[method](MODELS[model_name][1], data, normalizer(MEAN, STD))

  def run_theirs(n):
    for _ in range(n):
      theirs.step()

  run_theirs(1)
  t = time.perf_counter()
  run_theirs(1)
  theirs_step_s = time.perf_counter() - t
  steps = steps_per_block(max(ours_step_s, theirs_step_s), block_s)
  ours_s, theirs_s = time_blocks(run_ours, run_theirs, blocks, steps)
  programs = ours.programs(holder[0])
  images = batch * (2 if method in TWO_BATCHES else 1)
  row = dict(method=method, model=model_name, image_size=MODELS[model_name][2],
             batch=batch, images=images, devices=devices, ours_step_ms=1e3 * ours_s,
             theirs_step_ms=1e3 * theirs_s, ours_img_s=images / ours_s,
             theirs_img_s=images / theirs_s, ratio=theirs_s / ours_s,
             compile_s=compile_s,
             compiles=max(fn._cache_size() for fn, _ in programs),
             ours_peak_mb=max(program_stats(fn, *args)["peak_bytes"]
                              for fn, args in programs) / 2**20,
             steps_per_block=steps)
  return row, params, theirs


def step_gflop(method, model_name, batch) -> float:
  """The step's GFLOPs from the 1-device programs (see the module docstring)."""
  ours, _ = setup(method, model_name, batch, 1)
  flops = sum(program_stats(fn, *args)["flops"] for fn, args in ours.programs(ours.state))
  return (flops + ours.uncounted_flops()) / 1e9


def add_step_columns(rows, gflop, theirs_peak_mb, peak_gflop_s):
  """The columns shared by a (method, model)'s rows: FLOPs, GFLOP/s, torch memory."""
  for r in rows:
    r.update(gflop=gflop, theirs_peak_mb=theirs_peak_mb,
             ours_gflop_s=gflop * 1e3 / r["ours_step_ms"],
             theirs_gflop_s=gflop * 1e3 / r["theirs_step_ms"])
    r["ours_pct_of_peak"] = 100 * r["ours_gflop_s"] / peak_gflop_s
    r["theirs_pct_of_peak"] = 100 * r["theirs_gflop_s"] / peak_gflop_s


def markdown(meta, rows) -> list:
  diff = lambda v: "n/a" if v is None else f"{v:.1e}"
  lines = ["# Step throughput: jaxunlearn vs PyTorch (same process, same CPU)", "",
           f"jax {meta['jax']}, torch {meta['torch']} ({meta['torch_threads']} "
           f"threads), {meta['cpu_count']} cores ({meta['processor']}), XLA_FLAGS "
           f"`{meta['xla_flags'] or '(none)'}`; medians of "
           f"{meta['blocks']} "
           "alternating blocks of steps (~" + f"{meta['block_s']} s each) after a "
           "warm-up. ratio = ours / theirs in images/s (> 1: ours faster). "
           "`batch` = B per stream; `img/step` counts every image a step reads "
           "(IEU, L2UL, DLFD read two batches). Devices are forced CPU devices "
           "sharing the same cores. Measured matmul peak (2048² f32): jax "
           f"{meta['matmul']['jax_gflop_s']:.0f}, torch "
           f"{meta['matmul']['torch_gflop_s']:.0f} GFLOP/s; % of peak against the "
           "better. GFLOP = the step's FLOPs (XLA cost analysis, 1 device; DLFD's "
           "Sinkhorn iterations counted once per solve). Peak MB: ours per device "
           "(XLA memory analysis), torch from its profiler. Δ vs 1 dev: largest "
           "parameter difference after 3 steps from the same start. "
           "Produced by `python benchmarks/step_vs_torch.py`.", "",
           "| method | model | batch | img/step | devices | ours img/s | torch img/s "
           "| ratio | GFLOP | ours GFLOP/s (% peak) | torch GFLOP/s (% peak) "
           "| compile s | compiles | ours peak MB | torch peak MB | Δ vs 1 dev |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['method']} | {r['model']} {r['image_size']}px | {r['batch']} | "
        f"{r['images']} | {r['devices']} | {r['ours_img_s']:.0f} | "
        f"{r['theirs_img_s']:.0f} | {r['ratio']:.2f} | {r['gflop']:.1f} | "
        f"{r['ours_gflop_s']:.0f} ({r['ours_pct_of_peak']:.0f}%) | "
        f"{r['theirs_gflop_s']:.0f} ({r['theirs_pct_of_peak']:.0f}%) | "
        f"{r['compile_s']:.1f} | {r['compiles']} | {r['ours_peak_mb']:.0f} | "
        f"{r['theirs_peak_mb']:.0f} | {diff(r['max_abs_diff_vs_1dev'])} |")
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="fewer, shorter blocks")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--models", default="small_cnn,resnet18")
  parser.add_argument("--devices", default="1,2,4", help="our device counts")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--dlfd-loop", default="auto", choices=("auto", "host", "device"),
                      help="DLFD's K ascent steps: host loop (auto on CPU) or fori_loop")
  parser.add_argument("--skip", default="",
                      help="model:method pairs to leave out, e.g. resnet18:dlfd")
  add_cpu_ynn_argument(parser)
  args = parser.parse_args()
  # As `jaxunlearn run` sets up a CPU process, before any JAX operation.
  parallel.configure_cpu(4, args.cpu_ynn_fusions)
  skip = set(filter(None, args.skip.split(",")))
  DLFD_LOOP[0] = args.dlfd_loop
  devices = sorted(int(d) for d in args.devices.split(","))
  blocks, block_s = (3, 0.5) if args.quick else (7, 3.0)
  matmul = matmul_peak()
  peak = max(matmul["jax_gflop_s"], matmul["torch_gflop_s"])
  rows = []
  for model_name in args.models.split(","):
    for method in args.methods.split(","):
      if f"{model_name}:{method}" in skip:
        continue
      group, reference = [], None
      for d in devices:
        row, params, theirs = bench(method, model_name, args.batch, d, blocks, block_s)
        reference = params if d == 1 else reference
        row["max_abs_diff_vs_1dev"] = (None if reference is None
                                       else max_abs_diff(params, reference))
        group.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v
                          for k, v in row.items()}), flush=True)
      theirs_peak_mb = torch_peak_bytes(theirs.step, theirs.live) / 2**20
      add_step_columns(group, step_gflop(method, model_name, args.batch),
                       theirs_peak_mb, peak)
      rows += group
  meta = dict(jax=jax.__version__, torch=torch.__version__,
              torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
              machine=platform.machine(), processor=cpu_name(),
              blocks=blocks, block_s=block_s, matmul=matmul, peak_gflop_s=peak,
              dlfd_loop=args.dlfd_loop, xla_flags=os.environ.get("XLA_FLAGS", ""))
  lines = markdown(meta, rows)
  write_results("step_vs_torch", rows, meta, lines)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
