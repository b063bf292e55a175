"""Why our ResNet-18 train step trails PyTorch's on this CPU, and what changes it (not a test).

The step: the finetune step of ``step_vs_torch.py`` (CE, SGD momentum 0.9,
coupled weight decay 5e-4, BatchNorm in training mode) on the CIFAR
ResNet-18 (32 px), batch 64, against ``torch_models.torch_finetune_step``.

1. Profile (``conv_profile``, ``step_profile``), under the default flags and
   under ``PROFILE_FLAGS``:
   - every distinct convolution of the network at batch 64 (with how often
     it occurs): forward, input gradient and weight gradient, each jitted
     alone in JAX (NHWC as flax, and NCHW through ``lax.conv_general_dilated``'s
     dimension numbers; kernels HWIO) and in PyTorch (``F.conv2d``,
     ``torch.nn.grad.conv2d_input/weight``: the kernels autograd calls);
     medians of 5 calls, and each op's relative error against torch in
     float64. ``x count`` totals show where a step's convolution time goes;
   - the whole network: forward only (training-mode BatchNorm) and forward
     + backward, ours vs torch;
   - our step under ``jax.profiler``: time per HLO op kind on XLA's worker
     threads (convolutions, XLA's fused BatchNorm/ReLU kernels, transposes).
2. ``variants``: the step under one change each, every variant in a fresh
   subprocess (XLA_FLAGS is read when jax is imported), with the PyTorch
   step timed alternately in the same subprocess (``_timing.time_blocks``:
   a warm-up step each, then the median of 3 blocks of one step). XLA CPU
   flags found in this jaxlib (``strings libjax_common.so | grep
   xla_cpu_``), threads (one core for both frameworks; XLA's
   single-threaded Eigen), NCHW vs NHWC (the same network in plain ``lax``,
   on the flax variables), BatchNorm without the padding mask, bf16
   compute, ``jax_default_matmul_precision``, batch 32/128, donation, forced
   CPU devices. A flag this jaxlib rejects is reported with its error.
   ``update_err``: the variant's first update (parameters after one step
   minus before, from the same initial variables and batch) against the
   same update in float64 (``reference_update``), ||difference|| /
   ||float64 update|| over all parameters. At initialisation the
   BatchNorm backward amplifies rounding, so float32 itself is ~1e-3 off
   and equally accurate kernels (see the per-op errors) land within a few
   times that; bf16 lands at ~0.3. None where the batch differs.

The ratio ours / torch is the robust number: both are timed in the same
process minutes apart, and this shared machine's speed drifts by 10-20%.

Run: python benchmarks/cpu_flags.py [--variants a,b] [--no-profile] (about
15 minutes on 2 cores; ``--variants`` or ``--no-profile`` update the stored
results in place, keeping the rows and profile they did not rerun). Writes benchmarks/results/cpu_flags.json
(``variants``: variant, flags, settings, ours_img_s, theirs_img_s, ratio =
ours/theirs, note, ...; ``conv_profile``; ``step_profile``) and
benchmarks/results/cpu_flags.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

from _timing import cpu_name

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TIMEOUT_S = 300

# (name, XLA_FLAGS, settings, note). Settings: model ("flax": the library's
# step; "flax_nomask": BatchNorm without the padding mask; "flax_bf16": bf16
# compute on f32 master weights; "lax_nhwc"/"lax_nchw": the same network in
# plain lax), batch, donate, devices (mesh size), cpu_devices (forced CPU
# devices), precision (jax_default_matmul_precision), cores (taskset).
DEFAULT = dict(model="flax", batch=64, donate=True, devices=1, cpu_devices=1,
               precision=None, cores=None)
YNN = "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce"
PROFILE_FLAGS = YNN
VARIANTS = [
    ("default", "", {}, "the library's step: flax NHWC, f32, donated state, 1 device; "
     "no XLA flags (cpu_ynn_fusions=false)"),
    ("thunk runtime off", "--xla_cpu_use_thunk_runtime=false", {},
     "the pre-thunk CPU runtime; this jaxlib says the flag is no longer supported"),
    ("single-threaded Eigen", "--xla_cpu_multi_thread_eigen=false", {},
     "convolutions and dots on one thread"),
    ("fast math", "--xla_cpu_enable_fast_math=true", {},
     "LLVM fast-math for XLA's own kernels (reassociation, no NaN/inf care)"),
    ("fast min/max", "--xla_cpu_enable_fast_min_max=true", {},
     "ReLU/max without NaN propagation"),
    ("XNNPACK", "--xla_cpu_use_xnnpack=true", {}, "XNNPACK for supported ops"),
    ("XNN fusions", "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce", {},
     "XNNPACK fusions of dots, elementwise ops and reductions"),
    ("YNN dot+eltwise+reduce", YNN, {},
     "YNNPACK fusions of dots, elementwise ops and reductions (the default "
     "trace already shows `ynn_fusion` ops)"),
    ("YNN dot+eltwise", "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise", {},
     "YNNPACK fusions without reductions (BatchNorm's sums stay XLA's): the "
     "library's default (config.cpu_ynn_fusions auto)"),
    ("YNN dot", "--xla_cpu_experimental_ynn_fusion_type=dot", {},
     "YNNPACK fusions of dots only"),
    ("YNN eltwise+reduce", "--xla_cpu_experimental_ynn_fusion_type=eltwise,reduce", {},
     "YNNPACK fusions without dots"),
    ("oneDNN", "--xla_cpu_use_onednn=true", {}, "oneDNN thunks for matmul/conv fusions"),
    ("oneDNN fusions", "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce",
     {}, "oneDNN fusions of dots, elementwise ops and reductions"),
    ("codegen split 1", "--xla_cpu_parallel_codegen_split_count=1", {},
     "one LLVM module (default splits for parallel compilation)"),
    ("intra_op_parallelism_threads", "--intra_op_parallelism_threads=2", {},
     "TensorFlow's thread flag; not an XLA flag"),
    ("1 core", "", dict(cores="0"), "both frameworks pinned to one core (taskset)"),
    ("NHWC plain lax", "", dict(model="lax_nhwc"),
     "the same network as lax ops (two-pass BatchNorm, no mask), NHWC"),
    ("NCHW plain lax", "", dict(model="lax_nchw"),
     "as above in NCHW (PyTorch's layout), kernels HWIO"),
    ("BatchNorm without mask", "", dict(model="flax_nomask"),
     "the library's BatchNorm with mask=None (no per-example weights)"),
    ("bf16 compute", "", dict(model="flax_bf16"),
     "bf16 params/activations in the step, f32 master weights and loss; "
     "~3 significant digits"),
    ("matmul precision bf16", "", dict(precision="bfloat16"),
     "jax_default_matmul_precision=bfloat16"),
    ("batch 32", "", dict(batch=32), ""),
    ("batch 128", "", dict(batch=128), ""),
    ("not donated", "", dict(donate=False), "the state is copied, not updated in place"),
    ("2 devices", "", dict(devices=2, cpu_devices=2),
     "jit over 2 forced CPU devices (batch split over the 2 cores)"),
    ("4 forced devices (step on 1)", "", dict(cpu_devices=4),
     "as step_vs_torch.py configures jax"),
    ("YNN + 2 devices", YNN, dict(devices=2, cpu_devices=2),
     "YNNPACK fusions with the batch split over 2 forced CPU devices"),
    ("YNN on 1 core", YNN, dict(cores="0"),
     "YNNPACK fusions, both frameworks pinned to one core: kernels without threading"),
    ("concurrency scheduler", "--xla_cpu_enable_concurrency_optimized_scheduler=true",
     {}, "schedules independent ops (a convolution's dx and dw) to run concurrently"),
    ("YNN + concurrency scheduler",
     YNN + " --xla_cpu_enable_concurrency_optimized_scheduler=true", {},
     "both"),
    ("vector width 512", "--xla_cpu_prefer_vector_width=512", {},
     "XLA's own kernels (BatchNorm, ReLU, transposes) with 512-bit vectors"),
]


# --------------------------------------------------------------------------
# In the subprocess.

def configure_jax(settings):
  import jax
  jax.config.update("jax_num_cpu_devices", settings["cpu_devices"])
  if settings["precision"]:
    jax.config.update("jax_default_matmul_precision", settings["precision"])
  return jax


def lax_resnet18(layout: str):
  """``apply(params, batch_stats, images) -> (logits, batch_stats)``: the
  CIFAR ResNet-18 in training mode as plain lax ops, on the flax model's
  variables (same names), in ``layout`` ("NHWC" or "NCHW"); two-pass
  BatchNorm statistics without a mask."""
  import jax.numpy as jnp
  from jax import lax

  channel = 3 if layout == "NHWC" else 1
  axes = tuple(a for a in range(4) if a != channel)
  spatial = (1, 2) if layout == "NHWC" else (2, 3)
  per_channel = (lambda v: v.reshape((1, 1, 1, -1))) if layout == "NHWC" else (
      lambda v: v.reshape((1, -1, 1, 1)))

  def conv(x, kernel, stride):
    pad = 1 if kernel.shape[0] == 3 else 0
    return lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad),) * 2,
                                    dimension_numbers=(layout, "HWIO", layout))

  def norm(x, p, s):
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    y = (x - per_channel(mean)) * per_channel(p["scale"] * lax.rsqrt(var + 1e-5))
    return y + per_channel(p["bias"]), dict(mean=0.9 * s["mean"] + 0.1 * mean,
                                           var=0.9 * s["var"] + 0.1 * var)

  def apply(params, stats, images):
    x = (images - jnp.asarray(MEAN, images.dtype)) / jnp.asarray(STD, images.dtype)
    x = x if layout == "NHWC" else x.transpose(0, 3, 1, 2)
    new = {}
    x, new["stem_bn"] = norm(conv(x, params["stem_conv"]["kernel"], 1),
                             params["stem_bn"], stats["stem_bn"])
    x = jnp.maximum(x, 0)
    for stage in range(4):
      for block in range(2):
        name, stride = f"stage{stage + 1}_block{block}", 2 if stage and not block else 1
        p, s, out = params[name], stats[name], {}
        y, out["bn1"] = norm(conv(x, p["conv1"]["kernel"], stride), p["bn1"], s["bn1"])
        y, out["bn2"] = norm(conv(jnp.maximum(y, 0), p["conv2"]["kernel"], 1),
                             p["bn2"], s["bn2"])
        if "shortcut_conv" in p:
          x, out["shortcut_bn"] = norm(conv(x, p["shortcut_conv"]["kernel"], stride),
                                       p["shortcut_bn"], s["shortcut_bn"])
        x, new[name] = jnp.maximum(y + x, 0), out
    logits = jnp.mean(x, spatial) @ params["head"]["kernel"] + params["head"]["bias"]
    return logits, new
  return apply


def make_apply(kind: str, model):
  """``apply(params, batch_stats, images) -> (logits, batch_stats)``."""
  import jax
  import jax.numpy as jnp
  from jaxunlearn.state import apply_train

  if kind == "flax_nomask":
    return lambda p, s, x: apply_train(model, p, s, x, None)[0::2]
  if kind == "flax_bf16":
    def apply(p, s, x):
      half = jax.tree.map(lambda v: v.astype(jnp.bfloat16), p)
      logits, _, stats = apply_train(model, half, s, x.astype(jnp.bfloat16), None)
      return logits.astype(jnp.float32), stats
    return apply
  return lax_resnet18("NHWC" if kind == "lax_nhwc" else "NCHW")


def make_step(kind: str, model, tx):
  """The library's finetune step (``flax``) or the same with another apply."""
  import jax
  import jax.numpy as jnp
  from jaxunlearn.state import gradient_update
  from jaxunlearn.train import make_supervised_step

  if kind == "flax":
    return make_supervised_step(model, tx)
  apply = make_apply(kind, model)

  def step(state, batch, key):
    def loss_fn(params):
      logits, stats = apply(params, state.batch_stats, batch["image"])
      log_p = jax.nn.log_softmax(logits)  # in the logits' dtype (float64 reference)
      picked = jnp.take_along_axis(log_p, batch["label"][:, None], axis=-1)
      return -jnp.mean(picked), (stats, {})
    return gradient_update(state, tx, loss_fn)
  return step


def host_batch(batch: int):
  import numpy as np
  rng = np.random.default_rng(0)
  return dict(image=rng.uniform(0, 1, (batch, 32, 32, 3)).astype(np.float32),
              label=rng.integers(0, 10, batch).astype(np.int32),
              mask=np.ones(batch, np.float32))


def first_step(settings: dict, dtype=None):
  """Our step for ``settings`` after its first call from the seeded
  variables (cast to ``dtype``): (step, state, batch, key, compile seconds,
  the update: parameters after minus before, float64 leaves)."""
  import time

  import jax
  import numpy as np
  from jaxunlearn import parallel
  from jaxunlearn.models import get_model
  from jaxunlearn.optim import sgd
  from jaxunlearn.state import TrainState

  model = get_model("resnet18", num_classes=10, mean=MEAN, std=STD, stem="cifar")
  tx = sgd(0.01, 0.9, 5e-4)
  data = host_batch(settings["batch"])
  variables = jax.device_get(model.init(jax.random.key(0), data["image"][:1]))
  if dtype is not None:
    variables = jax.tree.map(lambda v: v.astype(dtype), variables)
    data = dict(data, image=data["image"].astype(dtype))
  mesh = parallel.make_mesh(settings["devices"])
  step = parallel.jit_step(make_step(settings["model"], model, tx), mesh,
                           donate=settings["donate"])
  batch, key = parallel.shard_batch(data, mesh), jax.random.key(0)
  state = parallel.replicate(TrainState.create(variables, tx), mesh)
  start = time.perf_counter()
  state = jax.block_until_ready(step(state, batch, key)[0])
  compile_s = time.perf_counter() - start
  update = [np.asarray(a, np.float64) - b for a, b in zip(
      jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(variables["params"]))]
  return step, state, batch, key, compile_s, update


def reference_update(path: str) -> None:
  """The first update in float64 (``jax_enable_x64``; the plain-lax network,
  as the library's BatchNorm computes in float32), saved to ``path``."""
  import jax
  import numpy as np

  jax.config.update("jax_enable_x64", True)
  *_, update = first_step(dict(DEFAULT, model="lax_nhwc"), np.float64)
  np.savez(path, *update)


def run_variant(settings: dict, reference: str) -> dict:
  """Our step and torch's, timed alternately; the first update's error
  against the float64 one saved in ``reference``."""
  jax = configure_jax(settings)
  import numpy as np
  import torch
  from _timing import time_blocks
  from torch_models import TorchResNet18, normalizer, torch_finetune_step, torch_images

  step, state, batch, key, compile_s, update = first_step(settings)
  update_err = None
  if settings["batch"] == DEFAULT["batch"] and os.path.exists(reference):
    with np.load(reference) as saved:
      exact = [saved[f"arr_{i}"] for i in range(len(update))]
    update_err = float(np.sqrt(sum(np.sum((u - e) ** 2) for u, e in zip(update, exact))
                               / sum(np.sum(e ** 2) for e in exact)))
  holder = [state]

  def run_ours(n):
    s = holder[0]
    for _ in range(n):
      s = step(s, batch, key)[0]
    holder[0] = jax.block_until_ready(s)

  torch.manual_seed(0)
  net = TorchResNet18()
  opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
  data = host_batch(settings["batch"])
  x, y = torch_images(data["image"]), torch.from_numpy(data["label"].astype(np.int64))
  norm = normalizer(MEAN, STD)

  def run_theirs(n):
    for _ in range(n):
      torch_finetune_step(net, opt, norm, x, y)

  run_ours(1)
  run_theirs(1)
  ours_s, theirs_s = time_blocks(run_ours, run_theirs, 3, 1)
  images = settings["batch"]
  return dict(ours_step_ms=1e3 * ours_s, theirs_step_ms=1e3 * theirs_s,
              ours_img_s=images / ours_s, theirs_img_s=images / theirs_s,
              ratio=theirs_s / ours_s, compile_s=compile_s,
              update_err=update_err, compiles=step._cache_size(),
              torch_threads=torch.get_num_threads())


CONVS = [  # (name, input size, c_in, c_out, kernel, stride, count in ResNet-18)
    ("stem 3→64", 32, 3, 64, 3, 1, 1),
    ("64→64", 32, 64, 64, 3, 1, 4),
    ("64→128 s2", 32, 64, 128, 3, 2, 1),
    ("64→128 1x1 s2", 32, 64, 128, 1, 2, 1),
    ("128→128", 16, 128, 128, 3, 1, 3),
    ("128→256 s2", 16, 128, 256, 3, 2, 1),
    ("128→256 1x1 s2", 16, 128, 256, 1, 2, 1),
    ("256→256", 8, 256, 256, 3, 1, 3),
    ("256→512 s2", 8, 256, 512, 3, 2, 1),
    ("256→512 1x1 s2", 8, 256, 512, 1, 2, 1),
    ("512→512", 4, 512, 512, 3, 1, 3),
]


def jax_conv_ops(layout, stride, pad):
  """Jitted forward, input gradient and weight gradient (HWIO kernels),
  each ``fn(x, w, g)``."""
  import jax
  from jax import lax

  def conv(x, w):
    return lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad),) * 2,
                                    dimension_numbers=(layout, "HWIO", layout))
  return dict(fwd=jax.jit(lambda x, w, g: conv(x, w)),
              dx=jax.jit(lambda x, w, g: jax.vjp(lambda a: conv(a, w), x)[1](g)[0]),
              dw=jax.jit(lambda x, w, g: jax.vjp(lambda b: conv(x, b), w)[1](g)[0]))


def torch_conv_ops(stride, pad):
  """The same three as autograd calls them (NCHW, OIHW kernels)."""
  import torch
  return dict(fwd=lambda x, w, g: torch.nn.functional.conv2d(x, w, stride=stride,
                                                             padding=pad),
              dx=lambda x, w, g: torch.nn.grad.conv2d_input(x.shape, w, g, stride, pad),
              dw=lambda x, w, g: torch.nn.grad.conv2d_weight(x, w.shape, g, stride, pad))


def relative_error(value, exact) -> float:
  import numpy as np
  return float(np.linalg.norm(value - exact) / np.linalg.norm(exact))


def conv_row(name, size, c_in, c_out, k, stride, count, batch, rng) -> dict:
  """ms of each op (median of 5) in jax NHWC, jax NCHW and torch, and the
  largest relative error of jax NHWC's and torch's ops against torch in
  float64."""
  import jax
  import numpy as np
  import torch
  from _timing import median_seconds

  pad = k // 2
  out = (size + 2 * pad - k) // stride + 1
  x = rng.standard_normal((batch, size, size, c_in), np.float32)
  w = rng.standard_normal((k, k, c_in, c_out), np.float32)
  g = rng.standard_normal((batch, out, out, c_out), np.float32)
  nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))
  torch_args = [torch.from_numpy(a) for a in (nchw(x), w.transpose(3, 2, 0, 1).copy(),
                                              nchw(g))]
  torch_ops = torch_conv_ops(stride, pad)
  with torch.no_grad():
    exact = {op: fn(*(a.double() for a in torch_args)).numpy()
             for op, fn in torch_ops.items()}
  to_torch = dict(fwd=nchw, dx=nchw, dw=lambda a: a.transpose(3, 2, 0, 1))
  row = dict(layer=name, count=count,
             gflop=2 * batch * out * out * c_out * c_in * k * k / 1e9)
  errors = dict(jax_nhwc=[], torch=[])
  for layout, args in (("NHWC", (x, w, g)), ("NCHW", (nchw(x), w, nchw(g)))):
    args = jax.device_put(args)
    for op, fn in jax_conv_ops(layout, stride, pad).items():
      value = np.asarray(fn(*args))
      row[f"jax_{layout.lower()}_{op}_ms"] = 1e3 * median_seconds(
          lambda: fn(*args).block_until_ready(), 5)
      if layout == "NHWC":
        errors["jax_nhwc"].append(relative_error(to_torch[op](value), exact[op]))
  with torch.no_grad():
    for op, fn in torch_ops.items():
      errors["torch"].append(relative_error(fn(*torch_args).numpy(), exact[op]))
      row[f"torch_{op}_ms"] = 1e3 * median_seconds(lambda: fn(*torch_args), 5)
  return dict(row, jax_nhwc_err=max(errors["jax_nhwc"]), torch_err=max(errors["torch"]))


def step_profile(steps: int = 3, top: int = 8) -> list:
  """Where our step's time goes: a ``jax.profiler`` trace of ``steps``
  default steps; the time of each op kind (the HLO name without its number:
  convolutions handed to YNNPACK are ``ynn_fusion``, XLA's own fused
  kernels are named after their ops) summed over XLA's worker threads
  (``tf_XLAEigen``), per step, the ``top`` largest and the rest; and the
  wall time per step while traced. Thread time on 2 threads can exceed the
  wall time; work a library runs on threads of its own is not counted."""
  import collections
  import glob
  import re
  import time

  import jax

  step, state, batch, key, _, _ = first_step(DEFAULT)
  state = jax.block_until_ready(step(state, batch, key)[0])
  with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory):
      start = time.perf_counter()
      for _ in range(steps):
        state = step(state, batch, key)[0]
      jax.block_until_ready(state)
      wall_ms = 1e3 * (time.perf_counter() - start) / steps
    path, = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    plane = jax.profiler.ProfileData.from_file(path).find_plane_with_name("/host:CPU")
    totals, calls = collections.Counter(), collections.Counter()
    for line in plane.lines:
      if not line.name.startswith("tf_XLAEigen"):
        continue
      for event in line.events:
        if event.name.startswith(("ThunkExecutor", "SlinkyThreadPool", "end: ")):
          continue  # the executor around the ops, waiting, end markers
        kind = re.sub(r"\.\d+$", "", event.name)
        totals[kind] += event.duration_ns / 1e6 / steps
        calls[kind] += 1 / steps
  rows = [dict(op=kind, ms_per_step=ms, calls_per_step=calls[kind])
          for kind, ms in totals.most_common(top)]
  other = dict(op="other", ms_per_step=sum(totals.values()) - sum(
      r["ms_per_step"] for r in rows), calls_per_step=sum(calls.values()) - sum(
          r["calls_per_step"] for r in rows))
  return rows + [other, dict(op="wall time (traced)", ms_per_step=wall_ms,
                             calls_per_step=None)]


def conv_profile(batch: int = 64) -> dict:
  """``conv``: one row per convolution shape (``conv_row``) and the whole
  network; ``step``: ``step_profile``."""
  import numpy as np

  rng = np.random.default_rng(0)
  rows = [conv_row(*conv, batch, rng) for conv in CONVS]
  return dict(conv=rows + network_profile(batch), step=step_profile())


def network_profile(batch: int) -> list:
  """The whole network: training-mode forward (+ loss) and forward +
  backward (no optimiser), ours (flax) and torch's, in ms."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  from jaxunlearn.losses import cross_entropy
  from jaxunlearn.models import get_model
  from jaxunlearn.state import apply_train
  from _timing import median_seconds
  from torch_models import TorchResNet18, ce, normalizer, torch_images

  model = get_model("resnet18", num_classes=10, mean=MEAN, std=STD, stem="cifar")
  data = host_batch(batch)
  variables = model.init(jax.random.key(0), data["image"][:1])

  def loss(params, images, labels):
    logits, _, _ = apply_train(model, params, variables["batch_stats"], images, None)
    return jnp.mean(cross_entropy(logits, labels))
  forward, backward = jax.jit(loss), jax.jit(jax.grad(loss))
  images, labels = jax.device_put((data["image"], data["label"]))
  ours = {}
  for op, fn in (("fwd", forward), ("fwd+bwd", backward)):
    call = lambda: jax.block_until_ready(fn(variables["params"], images, labels))
    call()
    ours[op] = 1e3 * median_seconds(call, 3)
  net, norm = TorchResNet18().train(), normalizer(MEAN, STD)
  x, y = torch_images(data["image"]), torch.from_numpy(data["label"].astype(np.int64))

  def torch_forward():
    with torch.no_grad():
      ce(net(norm(x)), y)

  def torch_backward():
    net.zero_grad(set_to_none=True)
    ce(net(norm(x)), y).backward()
  theirs = {}
  for op, fn in (("fwd", torch_forward), ("fwd+bwd", torch_backward)):
    fn()
    theirs[op] = 1e3 * median_seconds(fn, 3)
  return [dict(layer=f"whole network {op}", jax_nhwc_ms=ours[op], torch_ms=theirs[op])
          for op in ours]


def child(args) -> None:
  """Subprocess entry: one variant or the conv profile, JSON on stdout."""
  if args.profile:
    configure_jax(DEFAULT)
    result = conv_profile()
  elif args.child == "reference":
    reference_update(args.reference)
    result = {}
  else:
    result = run_variant(dict(DEFAULT, **json.loads(args.child)), args.reference)
  print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# In the parent.

def spawn(flags: str, extra_args: list, cores=None):
  """Runs this script in a fresh process with XLA_FLAGS=flags: (result, error)."""
  env = dict(os.environ, XLA_FLAGS=flags)
  command = [sys.executable, os.path.abspath(__file__)] + extra_args
  if cores is not None:
    command = ["taskset", "-c", cores] + command
  try:
    done = subprocess.run(command, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
  except subprocess.TimeoutExpired:
    return None, f"timed out after {TIMEOUT_S} s"
  for line in done.stdout.splitlines():
    if line.startswith("RESULT "):
      return json.loads(line[len("RESULT "):]), None
  lines = [l for l in done.stderr.splitlines() if l.strip()]
  return None, (lines[-1] if lines else f"exit code {done.returncode}")[:300]


def settings_text(settings: dict) -> str:
  return ", ".join(f"{k}={v}" for k, v in settings.items() if DEFAULT[k] != v)


def variant_rows(names, reference: str) -> list:
  _, error = spawn("", ["--child", "reference", "--reference", reference])
  if error:
    raise SystemExit(f"the float64 reference update failed: {error}")
  rows = []
  for name, flags, changes, note in VARIANTS:
    if names and name not in names:
      continue
    settings = dict(DEFAULT, **changes)
    result, error = spawn(flags, ["--child", json.dumps(changes), "--reference", reference],
                          settings["cores"])
    row = dict(variant=name, flags=flags, settings=settings_text(settings), note=note,
               error=error, **(result or dict(ours_img_s=None, theirs_img_s=None,
                                              ratio=None)))
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def profile_rows() -> tuple[list, list]:
  """(conv rows, step profile rows), each tagged with its XLA_FLAGS."""
  convs, steps = [], []
  for flags in ("", PROFILE_FLAGS):
    result, error = spawn(flags, ["--profile"])
    if error:
      raise SystemExit(f"conv profile with XLA_FLAGS={flags!r} failed: {error}")
    convs += [dict(r, flags=flags) for r in result["conv"]]
    steps += [dict(r, flags=flags) for r in result["step"]]
    print(json.dumps(result), flush=True)
  return convs, steps


def fmt(value, spec=".0f") -> str:
  return "—" if value is None else format(value, spec)


IMPLS = ("jax_nhwc", "jax_nchw", "torch")
OPS = ("fwd", "dx", "dw")


def conv_totals(rows) -> dict:
  """ms per (implementation, op) summed over the network's convolutions
  (each shape times its count; the stem has no input gradient)."""
  totals = {}
  for r in rows:
    for impl in IMPLS:
      for op in OPS:
        if not (op == "dx" and r["layer"].startswith("stem")):
          totals[impl, op] = totals.get((impl, op), 0.0) + r["count"] * r[f"{impl}_{op}_ms"]
  return totals


def conv_table(profile, flags) -> list:
  """The conv profile under ``flags``: a row per shape, the totals, the
  whole network."""
  convs = [r for r in profile if r["flags"] == flags and "count" in r]
  network = [r for r in profile if r["flags"] == flags and "count" not in r]
  triple = lambda values: " / ".join(values)
  lines = ["| conv | count | GFLOP | jax NHWC fwd / dx / dw | jax NCHW fwd / dx / dw "
           "| torch fwd / dx / dw | error jax / torch |", "|---|---|---|---|---|---|---|"]
  for r in convs:
    cells = [triple(fmt(r[f"{impl}_{op}_ms"], ".1f") for op in OPS) for impl in IMPLS]
    lines.append(f"| {r['layer']} | {r['count']} | {r['gflop']:.2f} | "
                 + " | ".join(cells) + f" | {r['jax_nhwc_err']:.0e} / {r['torch_err']:.0e} |")
  totals = conv_totals(convs)
  lines.append("| **x count** | 20 | | " + " | ".join(
      triple(f"{totals[impl, op]:.0f}" for op in OPS) for impl in IMPLS) + " | |")
  for r in network:
    lines.append(f"| {r['layer']} | | | {r['jax_nhwc_ms']:.0f} | | {r['torch_ms']:.0f} | |")
  return lines + [""]


def step_table(steps, flags) -> list:
  """Our step's trace under ``flags``, with the ops' total thread time (2
  busy threads would give twice the wall time)."""
  rows = [r for r in steps if r["flags"] == flags]
  ops = [r for r in rows if r["calls_per_step"] is not None]
  total = dict(op="all ops", ms_per_step=sum(r["ms_per_step"] for r in ops),
               calls_per_step=sum(r["calls_per_step"] for r in ops))
  lines = ["| our step: op kind | ms per step (thread time) | calls per step |",
           "|---|---|---|"]
  for r in ops + [total] + [r for r in rows if r["calls_per_step"] is None]:
    lines.append(f"| {r['op']} | {r['ms_per_step']:.0f} | {fmt(r['calls_per_step'])} |")
  return lines + [""]


def variant_table(variants) -> list:
  lines = ["| variant | XLA_FLAGS / settings | ours img/s | torch img/s | ratio | "
           "compile s | update error | note |", "|---|---|---|---|---|---|---|---|"]
  for r in variants:
    setting = " ".join(s for s in (f"`{r['flags']}`" if r["flags"] else "",
                                   r["settings"]) if s)
    note = r["note"] + (f" **error:** {r['error']}" if r["error"] else "")
    lines.append(f"| {r['variant']} | {setting} | {fmt(r['ours_img_s'], '.1f')} | "
                 f"{fmt(r['theirs_img_s'], '.1f')} | {fmt(r['ratio'], '.2f')} | "
                 f"{fmt(r.get('compile_s'), '.1f')} | {fmt(r.get('update_err'), '.1e')} "
                 f"| {note} |")
  return lines


def markdown(meta, variants, convs, steps) -> list:
  lines = ["# ResNet-18 train step on this CPU: where the time goes, what changes it", "",
           f"CIFAR ResNet-18, 32 px, finetune step (CE, SGD), jax {meta['jax']}, torch "
           f"{meta['torch']}, {meta['cpu_count']} cores ({meta['processor']}). "
           "Produced by `python benchmarks/cpu_flags.py`.", ""]
  if convs:
    lines += ["## Profile, batch 64", "",
              "Convolutions (ms, median of 5): jax NHWC is how flax runs them; NCHW "
              "through lax dimension numbers; torch NCHW (its autograd kernels). "
              "`x count`: summed over the network's 20 convolutions (no input "
              "gradient for the stem). `error`: the largest relative error of the "
              "three ops against torch in float64. Whole network: training-mode "
              "forward + loss, and forward + backward (no optimiser); PyTorch's "
              "isolated ops can sum to more than its whole step (autograd gets dx and "
              "dw from one `convolution_backward` call). Our step: a `jax.profiler` "
              "trace, op time summed over XLA's 2 worker threads (`ynn_fusion`: ops "
              "handed to YNNPACK, the convolutions among them; the rest are XLA's "
              "fused kernels: BatchNorm, ReLU, layout transposes; waits excluded).",
              ""]
    for flags in sorted({r["flags"] for r in convs}):
      lines += [f"XLA_FLAGS=`{flags or '(none)'}`", ""]
      lines += conv_table(convs, flags) + step_table(steps, flags)
  return lines + [
      "## Variants (each in a fresh process; torch timed alternately in it)", "",
      "ratio = ours / torch images/s. `update error`: the first update's distance "
      "from the float64 update, relative to its norm (— where the batch differs or "
      "the run failed); the default's is float32's own error. On this shared "
      "machine a variant's ratio moves by up to ±0.07 between runs (YNN alone: "
      "0.76, 0.75, 0.70 in three); the table keeps each variant's latest run "
      "(`--variants` reruns some and keeps the rest).", ""] + variant_table(variants)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", default="", help="comma-separated names (all)")
  parser.add_argument("--no-profile", action="store_true")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--reference", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child is not None or args.profile:
    return child(args)
  import jax
  import torch
  names = [n for n in args.variants.split(",") if n]
  with tempfile.TemporaryDirectory() as tmp:
    variants = variant_rows(names, os.path.join(tmp, "default_update.npz"))
  convs, steps = ([], []) if args.no_profile else profile_rows()
  previous = os.path.join(RESULTS, "cpu_flags.json")
  if (names or args.no_profile) and os.path.exists(previous):
    # A partial run updates the stored results: the variants it ran replace
    # theirs (in VARIANTS order), the rest and the profile are kept.
    with open(previous) as f:
      old = json.load(f)
    ran = {r["variant"]: r for r in variants}
    kept = {r["variant"]: r for r in old["variants"]}
    order = [name for name, *_ in VARIANTS]
    variants = [dict(kept, **ran)[n] for n in order if n in ran or n in kept]
    if args.no_profile:
      convs, steps = old["conv_profile"], old["step_profile"]
  meta = dict(jax=jax.__version__, torch=torch.__version__, cpu_count=os.cpu_count(),
              machine=platform.machine(), processor=cpu_name(), timeout_s=TIMEOUT_S)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "cpu_flags.json"), "w") as f:
    json.dump(dict(meta=meta, variants=variants, conv_profile=convs, step_profile=steps),
              f, indent=1)
  lines = markdown(meta, variants, convs, steps)
  with open(os.path.join(RESULTS, "cpu_flags.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
