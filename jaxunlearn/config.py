"""The base configuration (digits, small CNN, forget class 3, DELETE). Every
file in ``configs/`` starts from ``get_config()``.

Each registered method has its own section, ``config.<method>``, filled from
its ``default_config()``: the authors' published setting, so
``--config.delete.lr=1e-3`` works for any method. Tuning for a dataset lives
in ``configs/<method>_<dataset>.py``; the default run, ``jaxunlearn run``
with no ``--config``, is ``configs/delete_digits.py`` (``DEFAULT_RUN``).
"""
from __future__ import annotations

import importlib.util
import os

import ml_collections

from jaxunlearn.methods import METHODS


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = "delete"
  # classification (class / random subset / ids / backdoor forgetting),
  # segmentation (jaxunlearn/tasks/segmentation.py) or face
  # (jaxunlearn/tasks/faces.py).
  c.task = "classification"

  c.dataset = "digits"
  c.data_dir = ""      # default: $JAXUNLEARN_DATA_DIR or ~/tensorflow_datasets
  c.manual_dir = ""    # where downloaded archives are looked for
  # Official archives (CIFAR, MNIST, SVHN, Tiny-ImageNet, VOC) are checked
  # against their published digests before preparation. To prepare a file
  # that differs (a re-packed mirror, your own subset) list its SHA-256 here,
  # comma-separated: accepting it is a decision, so it names the exact file.
  c.accept_archives = ""
  # A split whose decoded images exceed this many MiB stays on disk and is
  # decoded per batch in a background thread (0: always; -1: never).
  c.lazy_above_mb = 2048

  c.model = ml_collections.ConfigDict({"name": "small_cnn"})

  c.forget = ml_collections.ConfigDict(dict(
      kind="class",    # class | random | ids
      classes=(3,),
      fraction=0.1,
      count=0,
      ids_file="",
  ))

  # The recipe of the original model; the retrained model uses it on D_r.
  c.train = ml_collections.ConfigDict(dict(
      epochs=30, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
      schedule="cosine", warmup_steps=0, augment=True, checkpoint_every=5,
  ))
  c.with_retrained = True  # train the gold standard for the report

  # PyTorch interchange (needs the torch extra; jaxunlearn/torch_io.py):
  # a .pt/.pth state_dict imported as the original model instead of training
  # it, and the unlearned model written back as WORKDIR/unlearned.pth.
  c.original_from = ""
  c.export_torch = False

  for name in METHODS.names():
    c[name] = METHODS.get(name).default_config()

  c.eval = ml_collections.ConfigDict(dict(
      batch_size=256,
      # mia_efficacy: SalUn / DELETE's SVC, for comparison with those papers;
      # mia_threshold: a monotone attack whose verdict does not depend on the
      # CPU, so the gap to the retrained model uses it (metrics/mia.py).
      evaluators=("accuracy", "mia_efficacy", "mia_threshold"),
      gap_metrics=("forget_acc", "retain_acc", "test_acc", "mia_threshold"),
      # Also run the evaluators of the method's own paper (DLFD: the
      # forgetting score and NoMUS; IEU: the relearning convergence delay).
      method_evaluators=True,
  ))
  from jaxunlearn.metrics import audit, rcd
  c.eval.rcd = rcd.default_config()      # the relearning-delay protocol
  c.eval.audit = audit.default_config()  # U-LiRA (evaluator "audit", off)

  # XLA executables persisted here (jax's compilation cache), so a re-run or
  # another seed loads its programs instead of compiling them ("" = off).
  c.compilation_cache_dir = "~/.cache/jaxunlearn/xla"
  c.num_devices = 0    # 0 = every device
  # CPU only, set before JAX starts (parallel.configure_cpu): split batches
  # over this many CPU devices (0 = JAX's default, one), and XLA's
  # experimental YNNPACK fusions ("auto": on when JAX has not started and the
  # jaxlib knows the flag; true; false). Measured on 2 cores: the ResNet-18
  # step 0.57x -> 0.75x of PyTorch with either, the small CNN's steps ~20%
  # faster with YNNPACK (benchmarks/results/cpu_flags.md, step_vs_torch.md).
  c.cpu_devices = 0
  c.cpu_ynn_fusions = "auto"
  # Several processes (a TPU slice, a multi-GPU node, SLURM tasks): with
  # distributed=True the run calls jax.distributed.initialize before anything
  # else. Empty / 0 / -1 let JAX read the environment (SLURM, TPU VM,
  # JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).
  c.distributed = False
  c.coordinator_address = ""   # host:port of process 0
  c.num_processes = 0
  c.process_id = -1
  c.progress = True
  return c


CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "configs")
DEFAULT_RUN = os.path.join(CONFIGS_DIR, "delete_digits.py")


def tuned_section(method: str, dataset: str) -> ml_collections.ConfigDict:
  """``config.<method>`` as ``configs/<method>_<dataset>.py`` sets it, or the
  method's default (the authors' setting) where no such file exists."""
  path = os.path.join(CONFIGS_DIR, f"{method}_{dataset}.py")
  if os.path.isfile(path):
    return load_file(path)[method]
  return METHODS.get(method).default_config()


def from_json(path: str) -> ml_collections.ConfigDict:
  """The config a run saved as ``WORKDIR/config.json``: every field, so the
  run can be repeated from it alone."""
  import json
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_file(path: str) -> ml_collections.ConfigDict:
  """The config a file gives, as ``--config`` loads it: ``file.py`` calls
  ``get_config()``, ``file.py:arg`` calls ``get_config("arg")``."""
  file, _, arg = path.partition(":")
  if not os.path.isfile(file):
    raise FileNotFoundError(f"no config file {file!r}")
  spec = importlib.util.spec_from_file_location(
      "config_" + os.path.splitext(os.path.basename(file))[0], file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
