"""End-to-end L2UL: our run against the authors' run structure in PyTorch (not a test).

Both start from the same pretrained small CNN (flax weights copied into the
PyTorch model) and forget the same k = 16 random digits training samples
with the library's digits L2UL settings (``l2ul.default_config()``, full
variant) and the same adversarial targets:

- ours: ``jaxunlearn.methods.l2ul.run``: every adversarial example made in
  one vectorised jitted PGD, MAS importance in one jitted gradient, then the
  stop-rule loop (on CPU a host loop of one jitted step and one jitted stop
  check per step; on GPU/TPU one ``lax.while_loop``). Wall time includes
  compilation.
- theirs: the structure of the authors' released code in PyTorch: PGD per
  forget sample (its ``n_adv`` copies as one batch, ``autograd.grad`` per
  PGD step), MAS by ``backward`` on the forget batch, then per step an
  inference-mode pass over the forget samples (the stop rule) and a training
  step on the forget batch and a random adversarial batch (two forwards).

The stop rule decides the number of steps, so it can differ between the
two; the table gives steps, seconds per step and final test accuracy
besides the wall times.

Ours runs twice per seed and device count (1 and 2 forced CPU devices; on
2 each device makes half of the adversarial examples and trains on half of
each batch), with jax's persistent compilation cache on (a fresh temporary
directory, as ``jaxunlearn run`` does): the first run ("cold") compiles
what neither this process nor the cache has (seed 0 on a device count
compiles everything; later seeds find PGD and MAS compiled and the loop in
the cache), the second ("warm") loads every program from the cache, as a
re-run, a continual request or another seed of a sweep. The difference is
our compilation time.

Run: python benchmarks/end_to_end_l2ul.py [--seeds 0,1,2] [--k 16] [--devices 1,2]
Writes benchmarks/results/end_to_end_l2ul.json (a list of rows, one per seed
device count and cache state: method, model, batch, devices, ours_img_s, theirs_img_s,
ratio = ours/theirs, wall times and test accuracy both ways), .meta.json and
.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import jax

# Before the first compilation: the cache directory is read once.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="xla-cache-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jaxunlearn import config as base_config  # noqa: E402
from jaxunlearn import loop, parallel  # noqa: E402
from jaxunlearn.attacks import random_targets  # noqa: E402
from jaxunlearn.data import load_dataset  # noqa: E402
from jaxunlearn.data.splits import random_forget_split  # noqa: E402
from jaxunlearn.methods import UnlearnTask, l2ul  # noqa: E402
from jaxunlearn.metrics.predict import accuracy, make_predict_fn  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.train import train_model  # noqa: E402

from _timing import add_cpu_ynn_argument, write_results  # noqa: E402
from torch_models import (ce, eval_logits, normalizer, small_cnn_from_flax,  # noqa: E402
                          torch_images, torch_l2ul_forgotten, torch_l2ul_step,
                          torch_mas_importance)



def torch_l2ul(net, x_f, y_f, targets, cfg, mean, std, seed):
  """L2UL (full variant) as the authors structure it; returns stats."""
  norm = normalizer(mean, std)
  gen = torch.Generator().manual_seed(seed)
  flat = lambda v: v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
  start = time.perf_counter()
  # 1. adversarial examples, one forget sample (n_adv copies) at a time
  net.eval()
  adv_x, adv_t = [], []
  for i in range(len(y_f)):
    src = x_f[i:i + 1].repeat(cfg.n_adv, 1, 1, 1)
    tgt = targets[i]
    direction = torch.randn(src.shape, generator=gen)
    direction = direction / (flat(direction) + 1e-12)
    radius = torch.rand((len(src), 1, 1, 1), generator=gen)
    x = (src + cfg.epsilon * radius * direction).clamp(0, 1)
    for _ in range(cfg.pgd_steps):
      x.requires_grad_(True)
      grad, = torch.autograd.grad(ce(net(norm(x)), tgt, reduction="sum"), x)
      x = (x - cfg.pgd_step_size * grad / (flat(grad) + 1e-12)).clamp(0, 1).detach()
      delta = x - src
      x = src + delta * torch.clamp(cfg.epsilon / (flat(delta) + 1e-12), max=1.0)
    adv_x.append(x)
    adv_t.append(tgt)
  adv_x, adv_t = torch.cat(adv_x), torch.cat(adv_t)
  pgd_s = time.perf_counter() - start
  # 2. MAS importance on the forget batch (training mode)
  omega = torch_mas_importance(net, norm, x_f)
  theta0 = [p.detach().clone() for p in net.parameters()]
  # 3. the loop with the stop rule checked after every step
  opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
  b_a = min(cfg.adv_batch_size, len(adv_t))
  steps, loop_start = 0, time.perf_counter()
  while steps < cfg.max_iter:
    if torch_l2ul_forgotten(net, norm, x_f, y_f):
      break
    idx = torch.randperm(len(adv_t), generator=gen)[:b_a]
    torch_l2ul_step(net, opt, norm, x_f, y_f, adv_x[idx], adv_t[idx], omega, theta0,
                    cfg.lam)
    steps += 1
  end = time.perf_counter()
  return dict(wall_time=end - start, pgd_s=pgd_s, loop_s=end - loop_start, steps=steps)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--k", type=int, default=16)
  parser.add_argument("--devices", default="1,2", help="our device counts")
  add_cpu_ynn_argument(parser)
  args = parser.parse_args()
  # As `jaxunlearn run` sets up a CPU process, before any JAX operation.
  parallel.configure_cpu(2, args.cpu_ynn_fusions)
  config = base_config.get_config()
  spec, splits = load_dataset(config.dataset, os.environ.get("JAXUNLEARN_DATA_DIR") or None)
  model = get_model(config.model.name, num_classes=spec.num_classes, mean=spec.mean,
                    std=spec.std)
  channels = spec.image_shape[-1]
  mean = tuple(spec.mean) * (channels // len(spec.mean))
  std = tuple(spec.std) * (channels // len(spec.std))
  cfg = l2ul.default_config()
  mesh = parallel.make_mesh(1)
  predict_fn = make_predict_fn(model, mesh)
  test = splits["test"]
  runs = []
  for seed in (int(s) for s in args.seeds.split(",")):
    split_key, pretrain_key, unlearn_key = jax.random.split(jax.random.key(seed), 3)
    original, _ = train_model(model, config.train, splits["train"], spec.image_shape,
                              pretrain_key, mesh, progress=False)
    data = random_forget_split(splits["train"], test, split_key, count=args.k)
    for devices in (int(d) for d in args.devices.split(",")):
      task = UnlearnTask(model, original, data, spec.num_classes, spec.image_shape,
                         parallel.make_mesh(devices), loop.Augment(), config.train,
                         progress=False)
      for framework in ("cold", "warm"):
        start = time.perf_counter()
        variables, info = l2ul.run(task, cfg, unlearn_key)
        wall = time.perf_counter() - start
        runs.append(dict(seed=seed, framework=framework, devices=devices,
                         wall_time=wall, steps=info["steps"], stopped=info["stopped"],
                         test_acc=accuracy(predict_fn, variables, test, 64, mesh)))
        print(json.dumps(runs[-1]), flush=True)
    # The same adversarial targets as ours (l2ul.run's first key).
    target_key = jax.random.split(unlearn_key, 3)[0]
    targets = np.asarray(random_targets(target_key, jnp.asarray(data.forget.labels),
                                        spec.num_classes, cfg.n_adv))
    torch.manual_seed(seed)
    net = small_cnn_from_flax(original, spec.num_classes, channels)
    x_f = torch_images(data.forget.images / 255.0)
    y_f = torch.from_numpy(data.forget.labels.astype(np.int64))
    stats = torch_l2ul(net, x_f, y_f, torch.from_numpy(targets.astype(np.int64)), cfg,
                       mean, std, seed)
    logits = eval_logits(net, test.images / 255.0, mean, std)
    runs.append(dict(seed=seed, framework="pytorch",
                     stopped=stats["steps"] < cfg.max_iter,
                     test_acc=float(np.mean(logits.argmax(1) == test.labels)), **stats))
    print(json.dumps(runs[-1]), flush=True)
  meta = dict(jax=jax.__version__, torch=torch.__version__,
              torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
              machine=platform.machine(), k=args.k, config=dict(cfg),
              xla_flags=os.environ.get("XLA_FLAGS", ""))
  rows = comparison_rows(runs, args.k, cfg.adv_batch_size)
  lines = ["# End-to-end L2UL: jaxunlearn vs the authors' run structure in PyTorch", "",
           f"Digits, small CNN, k = {args.k} random training samples, L2UL full "
           f"variant with the library's digits settings ({cfg.n_adv} adversarial "
           f"examples per sample, {cfg.pgd_steps} PGD steps, stop rule after every "
           f"step). jax {meta['jax']}, torch {meta['torch']} ({meta['torch_threads']} "
           f"threads), {meta['cpu_count']} cores, XLA_FLAGS "
           f"`{meta['xla_flags'] or '(none)'}`; ours on 1 and 2 forced CPU devices. "
           "Wall time includes the adversarial examples, and for `cold` our "
           "compilation (seed 0; later seeds find most programs compiled or in "
           "jax's persistent cache); `warm` is the same run again, every program "
           "compiled or cached. The stop rule decides the steps, so they can differ: img/s = "
           "images the loop's steps read (k + adversarial batch per step) / wall s, "
           "ratio = ours / theirs in img/s, wall ratio = PyTorch wall / ours. "
           "Produced by `python benchmarks/end_to_end_l2ul.py`.", "",
           "| seed | devices | cache | ours wall s | torch wall s | steps ours / torch "
           "| ours img/s | torch img/s | ratio | wall ratio | test acc ours / torch |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['seed']} | {r['devices']} | {r['cache']} | {r['ours_wall_s']:.1f} | "
        f"{r['theirs_wall_s']:.1f} "
        f"| {r['ours_steps']} / {r['theirs_steps']} | {r['ours_img_s']:.0f} | "
        f"{r['theirs_img_s']:.0f} | {r['ratio']:.2f} | {r['wall_ratio']:.2f} | "
        f"{r['ours_test_acc']:.4f} / {r['theirs_test_acc']:.4f} |")
  write_results("end_to_end_l2ul", rows, meta, lines)
  print("\n".join(lines))


def comparison_rows(runs: list, k: int, adv_batch: int) -> list:
  """One row per (seed, cache): ours against the PyTorch run of the seed."""
  theirs = {r["seed"]: r for r in runs if r["framework"] == "pytorch"}
  rows = []
  for r in runs:
    if r["framework"] == "pytorch":
      continue
    t = theirs[r["seed"]]
    per_step = k + adv_batch
    ours_img_s = r["steps"] * per_step / r["wall_time"]
    theirs_img_s = t["steps"] * per_step / t["wall_time"]
    rows.append(dict(
        method="l2ul", model="small_cnn", batch=per_step, devices=r["devices"],
        seed=r["seed"],
        cache=r["framework"], ours_steps=r["steps"], theirs_steps=t["steps"],
        ours_wall_s=r["wall_time"], theirs_wall_s=t["wall_time"],
        ours_img_s=ours_img_s, theirs_img_s=theirs_img_s,
        ratio=ours_img_s / theirs_img_s, wall_ratio=t["wall_time"] / r["wall_time"],
        ours_stopped=r["stopped"], theirs_stopped=t["stopped"],
        ours_test_acc=r["test_acc"], theirs_test_acc=t["test_acc"],
        theirs_pgd_s=t["pgd_s"], theirs_loop_s=t["loop_s"]))
  return rows


if __name__ == "__main__":
  main()
