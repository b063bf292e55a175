"""Data larger than memory through the main job (not a test).

Writes a CIFAR-10-format tarball (``cifar-10-python.tar.gz``, the official
layout) whose train split decodes to 4x a memory budget, prepares it with the
library's own builder, then measures:

1. the lazy read path ``run.py`` uses above ``config.lazy_above_mb``:
   images/s of padded batches read from the array_record files and decoded
   (``batches.in_order``, background read-ahead), against the ResNet-18 train
   step's images/s from ``benchmarks/results/step_vs_torch.json``;
   and the growth of resident memory over that epoch;
2. the peak resident memory of two whole ``jaxunlearn run`` jobs on it (fine-
   tune, small CNN, one epoch, in subprocesses): everything in memory
   (``lazy_above_mb=-1``) vs lazy (``lazy_above_mb=`` the budget). Their
   reports must agree.

Run: python benchmarks/lazy_run.py [--examples N]
Writes benchmarks/results/lazy_run.json and prints a table.
"""
import argparse
import io
import json
import os
import pickle
import resource
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGET_MIB = 32  # the memory budget; the train split decodes to 4x this


def write_cifar_tarball(path: str, n_train: int, n_test: int) -> None:
  """Smooth random images (compress like photos), the official pickle layout."""
  rng = np.random.default_rng(0)
  base = rng.integers(0, 256, (64, 3, 8, 8), np.uint8)
  smooth = lambda i: np.kron(base[i % 64], np.ones((1, 4, 4), np.uint8)) \
      + np.uint8(i % 7)
  with tarfile.open(path, "w:gz", compresslevel=1) as tar:
    chunks = [("data_batch_%d" % (b + 1), range(b * n_train // 5, (b + 1) * n_train // 5))
              for b in range(5)] + [("test_batch", range(n_train, n_train + n_test))]
    for name, rows in chunks:
      data = np.stack([smooth(i).reshape(-1) for i in rows])
      blob = pickle.dumps({b"data": data,
                           b"labels": [int(i % 10) for i in rows]})
      info = tarfile.TarInfo("cifar-10-batches-py/" + name)
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))


def rss_mib() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS"):
        return int(line.split()[1]) / 1024
  return float("nan")


def read_throughput(data_dir: str) -> dict:
  """One epoch of lazy batches: images/s and resident-memory growth."""
  from jaxunlearn import batches
  from jaxunlearn.data import load_dataset
  _, splits = load_dataset("cifar10", data_dir, lazy_above_mb=0)
  train = splits["train"]
  before = peak = rss_mib()
  start, count = time.perf_counter(), 0
  for batch in batches.in_order(train, 256):
    count += int(batch["mask"].sum())
    peak = max(peak, rss_mib())
  return {"lazy_images_per_s": count / (time.perf_counter() - start),
          "lazy_epoch_rss_growth_mib": peak - before,
          "train_examples": len(train),
          "train_decoded_mib": train.images.nbytes / 2**20}


def job(data_dir: str, workdir: str, lazy_above_mb: int) -> dict:
  """One ``jaxunlearn run`` in a child process; its peak RSS and report."""
  args = [sys.executable, "-m", "jaxunlearn.cli", "run", "--workdir", workdir,
          "--config.dataset=cifar10", f"--config.data_dir={data_dir}",
          "--config.method=finetune", "--config.with_retrained=False",
          "--config.train.epochs=1", "--config.train.batch_size=256",
          "--config.finetune.epochs=1", "--config.forget.classes=(3,)",
          "--config.eval.evaluators=('accuracy',)", "--config.progress=False",
          f"--config.lazy_above_mb={lazy_above_mb}"]
  before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  start = time.perf_counter()
  subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
  seconds = time.perf_counter() - start
  peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  if peak <= before:
    raise RuntimeError("ru_maxrss of children did not grow: run one job per "
                       "process, largest last")
  with open(os.path.join(workdir, "report.json")) as f:
    report = json.load(f)
  return {"peak_rss_mib": peak / 1024, "seconds": seconds,
          "unlearned": report["models"]["unlearned"]}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--examples", type=int,
                      default=int(4 * BUDGET_MIB * 2**20 / 3072))
  args = parser.parse_args()
  results = {"budget_mib": BUDGET_MIB, "cores": os.cpu_count()}
  with tempfile.TemporaryDirectory() as tmp:
    manual = os.path.join(tmp, "data", "downloads", "manual", "cifar10")
    os.makedirs(manual)
    write_cifar_tarball(os.path.join(manual, "cifar-10-python.tar.gz"),
                        args.examples, 2000)
    data_dir = os.path.join(tmp, "data")
    start = time.perf_counter()
    from jaxunlearn.data import DATASETS, prepare
    from jaxunlearn.data.archives import sha256_file
    # A synthetic archive under the official name: accepted by its digest.
    prepare(DATASETS.get("cifar10"), data_dir, accept_archives=sha256_file(
        os.path.join(manual, "cifar-10-python.tar.gz")))
    results["prepare_s"] = time.perf_counter() - start
    results.update(read_throughput(data_dir))
    # The lazy job first: RUSAGE_CHILDREN keeps the maximum over children.
    lazy = job(data_dir, os.path.join(tmp, "lazy"), BUDGET_MIB)
    in_memory = job(data_dir, os.path.join(tmp, "memory"), -1)
  results["lazy_job"], results["in_memory_job"] = lazy, in_memory
  results["reports_equal"] = lazy["unlearned"] == in_memory["unlearned"]
  step = os.path.join(HERE, "results", "step_vs_torch.json")
  if os.path.exists(step):
    with open(step) as f:
      rows = [r for r in json.load(f) if r["model"] == "resnet18"
              and r["method"] == "finetune" and r["devices"] == 1]
    if rows:
      results["resnet18_step_images_per_s"] = rows[0]["ours_img_s"]
  print(f"{'measure':<34}{'value':>14}")
  for key, value in results.items():
    if isinstance(value, dict):
      for k, v in value.items():
        if not isinstance(v, dict):
          print(f"{key + '.' + k:<34}{v:>14.1f}")
    else:
      print(f"{key:<34}{value:>14.1f}" if isinstance(value, float)
            else f"{key:<34}{value!s:>14}")
  with open(os.path.join(HERE, "results", "lazy_run.json"), "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
