"""How often a process with several forced CPU devices deadlocks in XLA's
collectives: XLA:CPU's client thread pool at its default size (one thread
per core) against ``parallel.configure_cpu``'s two threads per device
(``reserve_client_threads``). Not a test: the deadlock is a race, so this
counts failed runs out of many.

Each run is a fresh process that trains the README's digits model
(``train_model``: jitted data-parallel steps whose gradients are
all-reduced over the devices) for ``--epochs`` epochs on ``--devices``
CPU devices. A run fails when XLA aborts it at its collective timeout
("Termination timeout ... all reduce"). The two settings alternate run by
run, so both see the same machine state. ``--load N`` starts N busy
processes at nice 19 (multi-threaded matrix products) for the whole
benchmark: the race needs the scheduler to hold back one device's thread,
which an idle machine rarely does.

Run: PYTHONPATH=. python benchmarks/cpu_collectives.py [--runs 24] [--load 1]
Writes benchmarks/results/cpu_collectives.{json,meta.json,md}.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import cpu_name, write_results  # noqa: E402

CHILD = """
import sys
from jaxunlearn import parallel
parallel.configure_cpu(int(sys.argv[1]))
import jax
from jaxunlearn import config, loop
from jaxunlearn.data import load_dataset
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model
cfg = config.get_config()
cfg.train.epochs = int(sys.argv[2])
spec, splits = load_dataset("digits", sys.argv[3])
model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
train_model(model, cfg.train, splits["train"], spec.image_shape,
            jax.random.key(1), parallel.make_mesh(),
            augment=loop.Augment(spec.crop_padding, spec.flip))
print("ok")
"""

LOAD = """
import numpy as np
a = np.random.default_rng(0).random((1024, 1024))
while True:
  a = np.tanh(a @ a)
"""


def settings(devices: int, cores: int) -> dict:
  """Environment changes per setting: ``default`` pins PJRT_NPROC to the
  cores (what XLA picks when nothing is set; a value the user set stands
  in configure_cpu), ``reserved`` leaves it to configure_cpu."""
  return {"default": {"PJRT_NPROC": str(max(cores, devices))},
          "reserved": {}}


def one_run(env_changes: dict, devices: int, epochs: int, data_dir: str,
            timeout: float) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
  env.update(env_changes)
  t = time.perf_counter()
  try:
    out = subprocess.run([sys.executable, "-c", CHILD, str(devices), str(epochs),
                          data_dir], env=env, capture_output=True, text=True,
                         timeout=timeout)
    rc, err, ok = out.returncode, out.stderr, out.stdout.strip().endswith("ok")
  except subprocess.TimeoutExpired as e:
    rc, err, ok = None, (e.stderr or b"").decode(errors="replace"), False
  return {"rc": rc, "ok": ok, "seconds": round(time.perf_counter() - t, 1),
          "collective_timeout": "Termination timeout" in err,
          "tail": "" if ok else err[-400:]}


def main():
  from jaxunlearn import parallel
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--runs", type=int, default=24, help="runs per setting")
  p.add_argument("--devices", type=int, default=2)
  p.add_argument("--epochs", type=int, default=10)
  p.add_argument("--load", type=int, default=1,
                 help="busy processes at nice 19 during the runs")
  p.add_argument("--timeout", type=float, default=600,
                 help="seconds before a run counts as hung")
  args = p.parse_args()
  cores = parallel.host_cores()
  env_of = settings(args.devices, cores)
  data_dir = tempfile.mkdtemp(prefix="cpu_collectives_")
  prepare = subprocess.run(
      [sys.executable, "-c", "import sys; from jaxunlearn.data import "
       "load_dataset; load_dataset('digits', sys.argv[1])", data_dir],
      capture_output=True, text=True)
  if prepare.returncode:
    sys.exit(f"preparing digits failed:\n{prepare.stderr[-2000:]}")
  loads = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", LOAD])
           for _ in range(args.load)]
  runs = {name: [] for name in env_of}
  try:
    for i in range(args.runs):
      for name, changes in env_of.items():
        r = one_run(changes, args.devices, args.epochs, data_dir, args.timeout)
        runs[name].append(r)
        failed = sum(not x["ok"] for x in runs[name])
        print(f"run {i + 1:3d} {name:9s} ok={r['ok']!s:5s} {r['seconds']:6.1f} s"
              f"  failed so far {failed}/{i + 1}", flush=True)
  finally:
    for proc in loads:
      proc.kill()
  rows = []
  for name, rs in runs.items():
    threads = int(env_of[name].get("PJRT_NPROC") or
                  max(cores, parallel.CLIENT_THREADS_PER_DEVICE * args.devices))
    rows.append({"setting": name, "client_threads": threads,
                 "devices": args.devices, "runs": len(rs),
                 "failed": sum(not r["ok"] for r in rs),
                 "collective_timeouts": sum(r["collective_timeout"] for r in rs),
                 "median_seconds_ok": statistics.median_high(
                     [r["seconds"] for r in rs if r["ok"]] or [None]),
                 "failures": [r["tail"] for r in rs if not r["ok"]]})
  import jax
  meta = {"cpu": cpu_name(), "cores": cores, "jax": jax.__version__,
          "jaxlib": jax.lib.__version__, "epochs": args.epochs,
          "load_processes": args.load, "xla_flags": os.environ.get("XLA_FLAGS", "")}
  md = ["# Forced CPU devices: XLA collective deadlocks per setting",
        "",
        f"{cpu_name()}, {cores} cores; jax {jax.__version__}, jaxlib "
        f"{jax.lib.__version__}. Each run: a fresh process training the "
        f"digits model for {args.epochs} epochs on {args.devices} CPU devices, "
        f"with {args.load} busy process(es) at nice 19 (matrix products) "
        "alongside. Command: "
        f"`PYTHONPATH=. python benchmarks/cpu_collectives.py --runs {args.runs} "
        f"--devices {args.devices} --epochs {args.epochs} --load {args.load}`.",
        "",
        "| setting | client threads | failed runs | of which collective timeouts "
        "| median s (runs that finished) |",
        "|---|---|---|---|---|"]
  for r in rows:
    md.append(f"| {r['setting']} | {r['client_threads']} | {r['failed']} of "
              f"{r['runs']} | {r['collective_timeouts']} | "
              f"{r['median_seconds_ok']} |")
  write_results("cpu_collectives", rows, meta, md)
  print("\n".join(md))


if __name__ == "__main__":
  main()
