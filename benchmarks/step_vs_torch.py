"""Per-step throughput of our jitted steps against faithful PyTorch steps (not a test).

For each (method step, model, batch): our step (``parallel.jit_step`` over a
mesh, donated buffers) and the same step written in PyTorch, timed in the
same process, alternating blocks of steps; medians over the blocks after a
warm-up. Also our compile time and, for ours, 1 vs 2 devices (forced CPU
devices; both share the same cores here, so this shows the data-parallel
overhead, not a scaling gain).

Steps:
- ``finetune``: CE + SGD (momentum 0.9, coupled weight decay 5e-4), BN in
  training mode; the plain reference.
- ``delete``: teacher forward in inference mode, student forward in training
  mode, masked-KL loss, SGD momentum 0.9.
- ``ieu``: CE gradient on a retain batch and on a forget batch of the same
  size (two training-mode forwards), the forget gradient clipped to global
  norm 5, ``θ ← (1 − ηλ)θ − η(g_r − α g_f) + σ ξ`` (our definition of IEU,
  jaxunlearn/methods/ieu.py; the PyTorch comparator is written the same way
  with ``torch.autograd.grad`` and ``torch.randn_like``).

``compiles`` counts the step's compiled executables after all timed calls
(1 = no recompilation after the first step).

Models: the embedded small CNN (8x8 digits) and ResNet-18 CIFAR stem (32x32).

Run: python benchmarks/step_vs_torch.py [--quick]
Writes benchmarks/results/step_vs_torch.json (rows: method, model, batch,
devices, ours_img_s, theirs_img_s, ratio = ours/theirs, compile_s) and
benchmarks/results/step_vs_torch.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax

jax.config.update("jax_num_cpu_devices", 2)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from jaxunlearn import parallel  # noqa: E402
from jaxunlearn.methods import delete, ieu  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.state import TrainState, sgd  # noqa: E402
from jaxunlearn.train import make_supervised_step  # noqa: E402

from torch_models import TorchResNet18, TorchSmallCNN  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

MODELS = {
    "small_cnn": (lambda: get_model("small_cnn", num_classes=10, mean=MEAN, std=STD),
                  TorchSmallCNN, 8),
    "resnet18": (lambda: get_model("resnet18", num_classes=10, mean=MEAN, std=STD,
                                   stem="cifar"), TorchResNet18, 32),
}


# --------------------------------------------------------------------------
# PyTorch steps (as the authors' code writes them).

def torch_finetune_step(net, opt, x, y):
  net.train()
  opt.zero_grad(set_to_none=True)
  loss = nn.functional.cross_entropy(net((x - 0.5) / 0.25), y)
  loss.backward()
  opt.step()


def torch_delete_step(net, teacher, opt, x, y):
  with torch.no_grad():
    t = teacher((x - 0.5) / 0.25)
    t = t.scatter(1, y[:, None], -1e10)
    q = torch.softmax(t, 1)
  net.train()
  opt.zero_grad(set_to_none=True)
  log_p = torch.log_softmax(net((x - 0.5) / 0.25), 1)
  loss = nn.functional.kl_div(log_p, q, reduction="batchmean")
  loss.backward()
  opt.step()


IEU = dict(lr=0.02, momentum=0.0, weight_decay=5e-3, alpha=1.0, clip_norm=5.0,
           sigma0=2e-3, gamma=0.99, noise_schedule="exponential")


def torch_ieu_step(net, x, y, xf, yf):
  net.train()
  params = [p for p in net.parameters() if p.requires_grad]
  g_r = torch.autograd.grad(nn.functional.cross_entropy(net((x - 0.5) / 0.25), y),
                            params)
  g_f = torch.autograd.grad(nn.functional.cross_entropy(net((xf - 0.5) / 0.25), yf),
                            params)
  norm = torch.sqrt(sum((g * g).sum() for g in g_f))
  scale = torch.clamp(IEU["clip_norm"] / (norm + 1e-12), max=1.0)
  with torch.no_grad():
    for p, r, f in zip(params, g_r, g_f):
      p.mul_(1 - IEU["lr"] * IEU["weight_decay"])
      p.sub_(IEU["lr"] * (r - IEU["alpha"] * scale * f))
      p.add_(IEU["sigma0"] * torch.randn_like(p))


# --------------------------------------------------------------------------

def time_blocks(run_ours, run_theirs, blocks, steps):
  """Alternating blocks; per-step seconds (median over blocks) for each."""
  ours, theirs = [], []
  for _ in range(blocks):
    t = time.perf_counter()
    run_ours(steps)
    ours.append((time.perf_counter() - t) / steps)
    t = time.perf_counter()
    run_theirs(steps)
    theirs.append((time.perf_counter() - t) / steps)
  return statistics.median(ours), statistics.median(theirs)


def bench(method, model_name, batch, devices, blocks, steps):
  make_flax, make_torch, size = MODELS[model_name]
  model = make_flax()
  mesh = parallel.make_mesh(devices)
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (batch, size, size, 3)).astype(np.float32)
  labels = rng.integers(0, 10, batch).astype(np.int32)
  variables = jax.device_get(model.init(jax.random.key(0), jnp.asarray(images)))
  host_batch = dict(image=images, label=labels, mask=np.ones(batch, np.float32))
  if method == "finetune":
    tx = sgd(0.01, 0.9, 5e-4)
    state = TrainState.create(variables, tx)
    step_fn = make_supervised_step(model, tx)
  elif method == "ieu":
    cfg = ieu.default_config()
    cfg.update(IEU)
    state = ieu.init_state(variables)
    step_fn = ieu.make_step(model, cfg, total_steps=1000)
    forget_images = rng.uniform(0, 1, images.shape).astype(np.float32)
    forget_labels = rng.integers(0, 10, batch).astype(np.int32)
    host_batch["paired"] = dict(image=forget_images, label=forget_labels,
                                mask=np.ones(batch, np.float32))
  else:
    tx = sgd(0.01, 0.9, 0.0)
    state = delete.DeleteState(TrainState.create(variables, tx), variables)
    step_fn = delete.make_step(model, tx)
  step = parallel.jit_step(step_fn, mesh)
  state = parallel.replicate(state, mesh)
  sharded = parallel.shard_batch(host_batch, mesh)
  key = jax.random.key(0)
  t = time.perf_counter()
  state, metrics = step(state, sharded, key)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t
  holder = [state]

  def run_ours(n):
    s = holder[0]
    for _ in range(n):
      s, m = step(s, sharded, key)
    jax.block_until_ready(m)
    holder[0] = s

  torch.manual_seed(0)
  net = make_torch()
  x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
  y = torch.from_numpy(labels.astype(np.int64))
  if method == "finetune":
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    run_step = lambda: torch_finetune_step(net, opt, x, y)
  elif method == "ieu":
    xf = torch.from_numpy(forget_images).permute(0, 3, 1, 2).contiguous()
    yf = torch.from_numpy(forget_labels.astype(np.int64))
    run_step = lambda: torch_ieu_step(net, x, y, xf, yf)
  else:
    teacher = make_torch().eval()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    run_step = lambda: torch_delete_step(net, teacher, opt, x, y)

  def run_theirs(n):
    for _ in range(n):
      run_step()

  run_ours(2)
  run_theirs(2)
  ours, theirs = time_blocks(run_ours, run_theirs, blocks, steps)
  # images per step: IEU reads a retain and a forget batch
  batch = 2 * batch if method == "ieu" else batch
  return dict(compiles=step._cache_size(), method=method, model=model_name, image_size=size, batch=batch,
              devices=devices, ours_step_ms=1e3 * ours, theirs_step_ms=1e3 * theirs,
              ours_img_s=batch / ours, theirs_img_s=batch / theirs,
              ratio=theirs / ours, compile_s=compile_s)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="fewer blocks")
  parser.add_argument("--methods", default="finetune,delete,ieu")
  parser.add_argument("--models", default="small_cnn,resnet18")
  args = parser.parse_args()
  cases = [(m, model, 64) for model in args.models.split(",")
           for m in args.methods.split(",")]
  blocks, steps = (3, 3) if args.quick else (7, 5)
  rows = []
  for method, model_name, batch in cases:
    for devices in (1, 2):
      row = bench(method, model_name, batch, devices, blocks, steps)
      rows.append(row)
      print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                        for k, v in row.items()}), flush=True)
  meta = dict(jax=jax.__version__, torch=torch.__version__,
              torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
              machine=platform.machine(), blocks=blocks, steps_per_block=steps)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "step_vs_torch.json"), "w") as f:
    json.dump(dict(meta=meta, rows=rows), f, indent=1)
  lines = ["# Step throughput: jaxunlearn vs PyTorch (same process, same CPU)", "",
           f"jax {meta['jax']}, torch {meta['torch']} ({meta['torch_threads']} "
           f"threads), {meta['cpu_count']} cores; medians of {blocks} alternating "
           f"blocks of {steps} steps. ratio = ours / theirs in images/s (> 1: ours "
           "faster). Our 2-device rows use 2 forced CPU devices on the same cores.", "",
           "IEU rows count both batches (retain + forget) as images.", "",
           "| method | model | batch | devices | ours img/s | torch img/s | ratio | compile s | compiles |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['method']} | {r['model']} {r['image_size']}px | {r['batch']} | "
                 f"{r['devices']} | {r['ours_img_s']:.0f} | {r['theirs_img_s']:.0f} | "
                 f"{r['ratio']:.2f} | {r['compile_s']:.1f} | {r['compiles']} |")
  with open(os.path.join(RESULTS, "step_vs_torch.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
