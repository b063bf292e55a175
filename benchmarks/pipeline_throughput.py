"""Streaming pipeline throughput and memory (not a test).

1. images/s decoded + augmented (crop with padding, flip) at 32x32 and 64x64
   from a synthetic prepared dataset of PNG bytes read from disk.
2. Peak RSS growth while streaming a dataset 4x larger (on disk) than a memory
   cap: the growth must stay under the cap.

Run: nice -n 5 python benchmarks/pipeline_throughput.py
Writes benchmarks/results/pipeline_throughput.json.
"""
import io
import json
import os
import tempfile
import time

import numpy as np
from PIL import Image

from jaxunlearn.data.streaming import StreamingSplit

CAP_MIB = 64


class DiskSource:
  """PNG bytes in one file + offsets: random access, nothing kept in memory."""

  def __init__(self, path, offsets, labels):
    self.path, self.offsets, self.labels = path, offsets, labels
    self.file = open(path, "rb")

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    start, end = self.offsets[i], self.offsets[i + 1]
    data = os.pread(self.file.fileno(), int(end - start), int(start))
    return {"image": data, "label": int(self.labels[i]), "id": i}


def make_source(directory, n, size, target_bytes=0):
  rng = np.random.default_rng(0)
  path = os.path.join(directory, f"synthetic_{size}.bin")
  offsets = [0]
  # Smooth random images (PNG compresses them like photos, not like noise).
  base = rng.integers(0, 256, (16, size, size, 3), np.uint8)
  with open(path, "wb") as f:
    i = 0
    while i < n or offsets[-1] < target_bytes:
      image = np.roll(base[i % 16], i, axis=1)
      buf = io.BytesIO()
      Image.fromarray(image).save(buf, "PNG", compress_level=1)
      f.write(buf.getvalue())
      offsets.append(offsets[-1] + len(buf.getvalue()))
      i += 1
  return DiskSource(path, np.asarray(offsets), np.arange(i) % 10)


def rss_mib():
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS"):
        return int(line.split()[1]) / 1024


def main():
  results = {"cap_mib": CAP_MIB, "cores": os.cpu_count()}
  with tempfile.TemporaryDirectory() as tmp:
    for size, pad in ((32, 4), (64, 8)):
      source = make_source(tmp, 4096, size)
      stream = StreamingSplit(source, 256, crop_padding=pad, flip=True,
                              process_index=0, process_count=1, num_threads=4)
      start, count = time.perf_counter(), 0
      for batch in stream.epoch(0):
        count += int(batch["mask"].sum())
      results[f"images_per_s_{size}"] = count / (time.perf_counter() - start)
    source = make_source(tmp, 0, 64, target_bytes=4 * CAP_MIB << 20)
    results["stream_dataset_mib"] = source.offsets[-1] / 2**20
    results["stream_examples"] = len(source)
    before = rss_mib()
    peak = before
    stream = StreamingSplit(source, 256, crop_padding=8, flip=True,
                            process_index=0, process_count=1, num_threads=4)
    for batch in stream.epoch(0):
      peak = max(peak, rss_mib())
    results["rss_before_mib"] = before
    results["rss_peak_mib"] = peak
    results["rss_growth_mib"] = peak - before
  print(f"{'measure':<24}{'value':>12}")
  for k, v in results.items():
    print(f"{k:<24}{v:>12.1f}" if isinstance(v, float) else f"{k:<24}{v:>12}")
  out = os.path.join(os.path.dirname(__file__), "results", "pipeline_throughput.json")
  with open(out, "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
