"""End-to-end DLFD: our run against the authors' run structure in PyTorch (not a test).

Both start from the same pretrained small CNN (the flax weights copied into
the PyTorch model), unlearn the same random 10% of the embedded digits with
the same settings (configs/dlfd_digits.py, variant "paper", except that
every step synthesises: ``forget_threshold`` 0, so the gate's decisions
cannot make the two do different work; the gate still runs every step and
selects the model), the same retain batch order, forget pairing and gate
samples, for the same number of steps (one pass over D_r):

- ours: ``jaxunlearn.methods.dlfd.unlearn``: jitted synthesis (K signed
  steps with log-domain Sinkhorn; on CPU a host loop of one jitted ascent
  step, elsewhere one ``fori_loop``) and model step,
  the gate's losses in one jitted pass and the 10-fold logistic regression
  fitted in JAX; the wall time includes compilation.
- theirs: the structure of the authors' released code, written in PyTorch:
  per retain batch, the gate (eval-mode losses on D_f and the validation
  samples, ``sklearn`` 10-fold ``cross_val_score``, validation accuracy,
  a ``deepcopy`` of the best state), then K steps of ``autograd.grad`` on the
  perturbation through a 300-iteration log-domain Sinkhorn (Python loop)
  and one SGD step. BatchNorm running statistics are restored after the
  synthesis forwards so that, as in ours, only the model step updates them.

Final quality is reported for both (test accuracy, forgetting score with the
sklearn reference on the whole D_f vs D_t), with the synthesis steps taken
and the number of gate evaluations; the numbers are not bit-identical
(different frameworks, gate decisions may differ), which the table shows.

Run: python benchmarks/end_to_end.py [--seeds 0] [--devices 1,2]
Writes benchmarks/results/end_to_end.json (a list of rows, one per seed and
device count: method, model, batch, devices, ours_img_s, theirs_img_s,
ratio = ours/theirs, wall times and quality both ways), .meta.json and .md.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time

import jax
import numpy as np
import torch

from jaxunlearn import loop, parallel
from jaxunlearn.config import load_file
from jaxunlearn import batches
from jaxunlearn.data import load_dataset
from jaxunlearn.batches import Split
from jaxunlearn.data.splits import random_forget_split
from jaxunlearn.methods import UnlearnTask, dlfd
from jaxunlearn.metrics import forgetting
from jaxunlearn.metrics.predict import make_predict_fn, predict
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model

from _timing import add_cpu_ynn_argument, write_results
from torch_models import (ce, channel_stats, eval_logits, normalizer,
                          small_cnn_from_flax, torch_dlfd_synthesis,
                          torch_finetune_step, torch_images)

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, os.pardir, "configs", "dlfd_digits.py")


# --------------------------------------------------------------------------
# The authors' structure, in PyTorch.

def torch_run(net, data, cfg, key, mean, std):
  """DLFD (paper variant) structured as the authors' loop; (state, stats)."""
  _, std_t = channel_stats(mean, std)
  norm = normalizer(mean, std)
  opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
  seed, order_key, forget_key = dlfd.run_keys(key)
  test, val_idx, labels = dlfd.gate_sets(data, cfg, seed)
  gate_f = (torch_images(data.forget.images / 255.0),
            torch.from_numpy(data.forget.labels.astype(np.int64)))
  gate_v = (torch_images(test.images[val_idx] / 255.0),
            torch.from_numpy(test.labels[val_idx].astype(np.int64)))
  retain, forget = data.retain, data.forget
  b = cfg.batch_size
  order = batches.epoch_order(order_key, 0, len(retain))
  total = batches.num_batches(len(retain), b)
  gate_time, gate_calls, synth, best_acc, best_state = 0.0, 0, 0, -1.0, None

  def gate():
    net.eval()
    with torch.no_grad():
      f_loss = ce(net(norm(gate_f[0])), gate_f[1], reduction="none").numpy()
      v_logits = net(norm(gate_v[0]))
      v_loss = ce(v_logits, gate_v[1], reduction="none").numpy()
      val_acc = float((v_logits.argmax(1) == gate_v[1]).float().mean())
    score = forgetting.forgetting_score_sklearn(
        *forgetting.authors_samples(f_loss, v_loss))
    return score, val_acc

  def consider(step, score, val_acc):
    nonlocal best_acc, best_state
    if step > 0 and score <= cfg.max_forgetting_score and val_acc > best_acc:
      best_acc, best_state = val_acc, copy.deepcopy(net.state_dict())

  start = time.perf_counter()
  for step, host in enumerate(batches.iterate(retain, b, order)):
    t = time.perf_counter()
    score, val_acc = gate()
    gate_time += time.perf_counter() - t
    gate_calls += 1
    consider(step, score, val_acc)
    real = host["mask"] > 0
    x = torch_images(host["image"][real])
    y = torch.from_numpy(host["label"][real].astype(np.int64))
    w_r = cfg.w_r0 + (cfg.w_r1 - cfg.w_r0) * step / max(total - 1, 1)
    if score >= cfg.forget_threshold:
      f_idx = loop.paired_index(len(forget), b, forget_key, step)[:len(y)]
      xf = torch_images(forget.images[f_idx] / 255.0)
      x = torch_dlfd_synthesis(net, norm, std_t, x, y, xf, cfg, w_r)
      synth += 1
    torch_finetune_step(net, opt, norm, x, y)
  t = time.perf_counter()
  score, val_acc = gate()
  gate_time += time.perf_counter() - t
  gate_calls += 1
  consider(total, score, val_acc)
  if best_state is not None:
    net.load_state_dict(best_state)
  wall = time.perf_counter() - start
  return dict(wall_time=wall, gate_time=gate_time, gate_calls=gate_calls,
              synth_steps=synth, steps=total, selected=best_state is not None)


# --------------------------------------------------------------------------
# Final quality, each framework evaluating its own model.

def quality(losses_and_correct, data):
  test = Split(*(np.concatenate([a, b]) for a, b in zip(data.test_forget,
                                                         data.test_retain)))
  f_loss, _ = losses_and_correct(data.forget)
  t_loss, t_correct = losses_and_correct(test)
  losses, labels = forgetting.authors_samples(f_loss, t_loss)
  score = forgetting.forgetting_score_sklearn(losses, labels)
  test_acc = float(np.mean(t_correct))
  return dict(test_acc=test_acc, forgetting_score=score,
              nomus=forgetting.nomus(test_acc, score))


def ours_losses(model, variables, mesh):
  predict_fn = make_predict_fn(model, mesh)

  def run(split):
    logits = np.asarray(predict(predict_fn, variables, split, 64 * mesh.devices.size,
                                mesh)).astype(np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    picked = log_p[np.arange(len(split.labels)), split.labels]
    return -picked, logits.argmax(1) == split.labels
  return run


def torch_losses(net, mean, std):
  def run(split):
    logits = torch.from_numpy(eval_logits(net, split.images / 255.0, mean, std))
    y = torch.from_numpy(split.labels.astype(np.int64))
    loss = ce(logits, y, reduction="none").numpy()
    return loss, (logits.argmax(1) == y).numpy()
  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--devices", default="1,2", help="our device counts")
  add_cpu_ynn_argument(parser)
  args = parser.parse_args()
  # As `jaxunlearn run` sets up a CPU process, before any JAX operation.
  parallel.configure_cpu(2, args.cpu_ynn_fusions)
  config = load_file(CONFIG)
  spec, splits = load_dataset(config.dataset, os.environ.get("JAXUNLEARN_DATA_DIR") or None)
  model = get_model(config.model.name, num_classes=spec.num_classes, mean=spec.mean,
                    std=spec.std)
  channels = spec.image_shape[-1]
  mean = tuple(spec.mean) * (channels // len(spec.mean))
  std = tuple(spec.std) * (channels // len(spec.std))
  runs = []
  for seed in (int(s) for s in args.seeds.split(",")):
    root = jax.random.key(seed)
    split_key, pretrain_key, unlearn_key = jax.random.split(root, 3)
    mesh1 = parallel.make_mesh(1)
    original, _ = train_model(model, config.train, splits["train"], spec.image_shape,
                              pretrain_key, mesh1, progress=False)
    data = random_forget_split(splits["train"], splits["test"], split_key,
                               fraction=config.forget.fraction)
    cfg = config.dlfd
    # Synthesise at every step: the two frameworks' gates read slightly
    # different losses, and a different decision near the threshold would
    # change the work done. The gate is still evaluated every step and
    # still selects the model.
    cfg.forget_threshold = 0.0
    for devices in (int(d) for d in args.devices.split(",")):
      mesh = parallel.make_mesh(devices)
      task = UnlearnTask(model, original, data, spec.num_classes, spec.image_shape,
                         mesh, loop.Augment(), config.train, progress=False)
      variables, stats = dlfd.unlearn(task, cfg, unlearn_key)
      runs.append(dict(seed=seed, framework="jaxunlearn", devices=devices,
                       **{k: stats[k] for k in ("wall_time", "gate_time", "gate_calls",
                                                "synth_steps", "steps", "selected")},
                       **quality(ours_losses(model, variables, mesh), data)))
      print(json.dumps(runs[-1]), flush=True)
    torch.manual_seed(seed)
    net = small_cnn_from_flax(original, spec.num_classes, channels)
    # Both frameworks start from the same model: inference logits must agree.
    probe = splits["test"].take(np.arange(64))
    ours_logits = predict(make_predict_fn(model, mesh1), original, probe, 64, mesh1)
    theirs_logits = eval_logits(net, probe.images / 255.0, mean, std)
    gap = float(np.max(np.abs(ours_logits - theirs_logits)))
    if gap > 1e-3:
      raise SystemExit(f"weight copy is wrong: logits differ by {gap}")
    stats = torch_run(net, data, cfg, unlearn_key, mean, std)
    runs.append(dict(seed=seed, framework="pytorch", devices=1,
                     start_logit_gap=gap, **stats, **quality(torch_losses(net, mean, std), data)))
    print(json.dumps(runs[-1]), flush=True)
  meta = dict(jax=jax.__version__, torch=torch.__version__,
              torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
              machine=platform.machine(), retain_images=len(data.retain),
              config=dict(config.dlfd), xla_flags=os.environ.get("XLA_FLAGS", ""))
  rows = comparison_rows(runs, cfg.batch_size, len(data.retain))
  lines = ["# End-to-end DLFD: jaxunlearn vs the authors' run structure in PyTorch", "",
           f"Digits, small CNN, random 10% forget set, configs/dlfd_digits.py (paper "
           f"variant, K = {config.dlfd.steps}, Sinkhorn to tolerance "
           f"{config.dlfd.sinkhorn_tol} (at most {config.dlfd.sinkhorn_max_iters} "
           f"iterations), gate every step, synthesis every step: forget_threshold 0), "
           f"one pass over D_r "
           f"({meta['retain_images']} images, batch {cfg.batch_size}). jax "
           f"{meta['jax']}, torch {meta['torch']} ({meta['torch_threads']} threads), "
           f"{meta['cpu_count']} cores, XLA_FLAGS `{meta['xla_flags'] or '(none)'}`. "
           "Wall time includes our compilation. "
           "img/s = retain images / wall s; ratio = ours / theirs (= PyTorch wall / "
           "ours). Quality: test accuracy, forgetting score (sklearn, whole D_f vs "
           "D_t), NoMUS, ours / theirs. Produced by `python benchmarks/end_to_end.py`.",
           "",
           "| seed | devices | ours wall s (gate s) | torch wall s (gate s) | gate evals "
           "| synth steps | ours img/s | torch img/s | ratio | test acc | forgetting "
           "score | NoMUS |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  both = lambda r, k, f: f"{r['ours_' + k]:{f}} / {r['theirs_' + k]:{f}}"
  for r in rows:
    lines.append(
        f"| {r['seed']} | {r['devices']} | {r['ours_wall_s']:.1f} ({r['ours_gate_s']:.1f}) "
        f"| {r['theirs_wall_s']:.1f} ({r['theirs_gate_s']:.1f}) | "
        f"{both(r, 'gate_calls', 'd')} | {both(r, 'synth_steps', 'd')} of {r['steps']} | "
        f"{r['ours_img_s']:.0f} | {r['theirs_img_s']:.0f} | {r['ratio']:.2f} | "
        f"{both(r, 'test_acc', '.4f')} | {both(r, 'forgetting_score', '.4f')} | "
        f"{both(r, 'nomus', '.4f')} |")
  write_results("end_to_end", rows, meta, lines)
  print("\n".join(lines))


def comparison_rows(runs: list, batch: int, images: int) -> list:
  """One row per (seed, our devices): ours against the PyTorch run of the seed."""
  theirs = {r["seed"]: r for r in runs if r["framework"] == "pytorch"}
  rows = []
  for r in runs:
    if r["framework"] != "jaxunlearn":
      continue
    t = theirs[r["seed"]]
    row = dict(method="dlfd", model="small_cnn", batch=batch, devices=r["devices"],
               seed=r["seed"], steps=r["steps"], images=images,
               ours_wall_s=r["wall_time"], theirs_wall_s=t["wall_time"],
               ours_img_s=images / r["wall_time"], theirs_img_s=images / t["wall_time"],
               ratio=t["wall_time"] / r["wall_time"])
    for k in ("gate_time", "gate_calls", "synth_steps", "test_acc",
              "forgetting_score", "nomus"):
      name = "gate_s" if k == "gate_time" else k
      row["ours_" + name], row["theirs_" + name] = r[k], t[k]
    rows.append(row)
  return rows


if __name__ == "__main__":
  main()
