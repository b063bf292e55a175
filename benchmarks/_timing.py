"""Timing, FLOP and memory helpers the benchmarks share (not a test).

- ``time_blocks``: two step functions alternating in blocks, medians over
  the blocks (the two see the same machine state, drift hits both).
- ``steps_per_block``: how many steps make a block of about a given length.
- ``median_seconds``: median wall time of a blocking call.
- ``matmul_peak``: the machine's measured f32 matmul GFLOP/s, in jax and in
  torch (best of several 2048x2048 products).
- ``program_stats``: FLOPs and peak bytes of a jitted function from XLA's
  cost and memory analysis of its compiled executable.
- ``torch_peak_bytes``: bytes live at the peak of one PyTorch step.
- ``cpu_name``: the processor's model name.
- ``write_results``: ``results/<name>.json`` (the list of rows),
  ``<name>.meta.json`` and ``<name>.md``, each written atomically
  (``write_text``).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable, Iterable


def add_cpu_ynn_argument(parser) -> None:
  """``--cpu-ynn-fusions``: XLA's YNNPACK fusions as ``config.cpu_ynn_fusions``
  (pass it to ``parallel.configure_cpu`` before any JAX operation)."""
  parser.add_argument("--cpu-ynn-fusions", default="auto",
                      help="XLA's YNNPACK fusions, as config.cpu_ynn_fusions: "
                           "auto (what `jaxunlearn run` does) | true | false")


def time_blocks(run_ours: Callable[[int], None], run_theirs: Callable[[int], None],
                blocks: int, steps: int) -> tuple[float, float]:
  """Alternating blocks of ``steps`` steps; per-step seconds (median over the
  blocks) for each. ``run_*(n)`` runs n steps and returns when they are done."""
  ours, theirs = [], []
  for _ in range(blocks):
    t = time.perf_counter()
    run_ours(steps)
    ours.append((time.perf_counter() - t) / steps)
    t = time.perf_counter()
    run_theirs(steps)
    theirs.append((time.perf_counter() - t) / steps)
  return statistics.median(ours), statistics.median(theirs)


def steps_per_block(seconds_per_step: float, block_seconds: float) -> int:
  """Steps making a block of about ``block_seconds`` (at least one)."""
  return max(1, round(block_seconds / seconds_per_step))


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of ``fn()`` (which must block until its work is done)."""
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def matmul_peak(n: int = 2048, repeats: int = 5) -> dict:
  """Best f32 GFLOP/s of an n x n matmul in jax and in torch (same process)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch

  a = np.random.default_rng(0).standard_normal((n, n), np.float32)
  x = jnp.asarray(a)
  product = jax.jit(lambda u: u @ u)
  product(x).block_until_ready()
  t = torch.from_numpy(a)
  torch.mm(t, t)
  flop = 2.0 * n ** 3

  def best(fn):
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
    return flop / min(times) / 1e9
  return dict(jax_gflop_s=best(lambda: product(x).block_until_ready()),
              torch_gflop_s=best(lambda: torch.mm(t, t)), n=n)


def program_stats(jitted, *args) -> dict:
  """``flops`` and ``peak_bytes`` of ``jitted(*args)`` as XLA compiles it.

  ``cost_analysis()`` is a dict (a list of one dict in older jax); on a mesh
  it counts one device's program. XLA counts a while loop's body once,
  whatever its trip count (``lax.fori_loop``/``scan`` inside a step are
  under-counted). ``peak_bytes`` = arguments + outputs - aliased (donated)
  + temporaries, per device; ``memory_analysis().peak_memory_in_bytes`` is
  not filled in on CPU.
  """
  compiled = jitted.lower(*args).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  peak = (memory.argument_size_in_bytes + memory.output_size_in_bytes
          - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
  return dict(flops=float(cost.get("flops", 0.0)), peak_bytes=int(peak))


def torch_peak_bytes(run_step: Callable[[], None], live: Iterable) -> int:
  """Bytes live at the peak of one ``run_step()``: the tensors ``live`` at
  its start (parameters, buffers, optimiser state, inputs; each storage
  counted once) plus the peak of the running sum of the step's allocations
  and frees as ``torch.profiler`` records them (ops in start order, each
  with its self memory; a temporary allocated and freed inside one op is
  not seen)."""
  from torch.profiler import ProfilerActivity, profile

  storages = {}
  for tensor in live:
    storage = tensor.untyped_storage()
    storages[storage.data_ptr()] = storage.nbytes()
  with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    run_step()
  events = sorted(prof.events(), key=lambda e: e.time_range.start)
  current = peak = 0
  for event in events:
    current += event.self_cpu_memory_usage
    peak = max(peak, current)
  return sum(storages.values()) + peak


def cpu_name() -> str:
  """The processor's model name (``/proc/cpuinfo``), else ``platform``'s."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_text(path: str, text: str) -> None:
  """Temp file + rename: a killed benchmark leaves the previous file, never
  half of a new one."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def write_results(name: str, rows: list, meta: dict, markdown: list) -> None:
  """``results/<name>.json``: the list of rows (for the comparisons each has
  method, model, batch, devices, ours_img_s, theirs_img_s and ratio =
  ours/theirs); ``<name>.meta.json``: versions, machine, settings;
  ``<name>.md``: the markdown lines."""
  os.makedirs(RESULTS, exist_ok=True)
  base = os.path.join(RESULTS, name)
  write_text(base + ".json", json.dumps(rows, indent=1) + "\n")
  write_text(base + ".meta.json", json.dumps(meta, indent=1) + "\n")
  write_text(base + ".md", "\n".join(markdown) + "\n")
