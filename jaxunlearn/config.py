"""The base configuration (digits, small CNN, forget class 3, DELETE). Every
file in ``configs/`` starts from ``get_config()``.

Each registered method has its own section, ``config.<method>``, filled from
its ``default_config()``: the authors' published setting, so
``--config.delete.lr=1e-3`` works for any method. Tuning for a dataset lives
in ``configs/<method>_<dataset>.py``; the default run, ``jaxunlearn run``
with no ``--config``, is ``configs/delete_digits.py`` (``DEFAULT_RUN``).

Reading a config imports no method: a method's module imports jax, flax and
optax, seconds that a config file, the command line's parsing or a tool
listing fields should not pay. The method sections (and the evaluators'
``config.eval.rcd`` / ``config.eval.audit``) are made the first time they are
read; anything that walks the whole config (``to_dict``, ``lock``, a copy, a
comparison) makes them all, so the config is always complete when seen whole.
"""
from __future__ import annotations

import importlib.util
import os
import pkgutil
from typing import Callable, Iterable

import ml_collections


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
  # > 0: hold out this many training images as the evaluation split and
  # train on the rest (classification and backdoor), to choose
  # hyperparameters without the dataset's test split, which stays unread.
  c.validation = 0

  # dtype: of the models' computation, "float32" or "bfloat16" (convolutions,
  # matmuls and activations). Parameters, optimiser state, BatchNorm
  # statistics, logits and every loss and metric stay float32
  # (jaxunlearn/models/__init__.py). No faster on CPU: it is for accelerators
  # (benchmarks/results/precision.md).
  c.model = ml_collections.ConfigDict({"name": "small_cnn", "dtype": "float32"})

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

  _make_when_read(c, method_names(), _method_section)

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
  # c.eval.rcd: the relearning-delay protocol; c.eval.audit: U-LiRA (the
  # evaluator "audit", off by default).
  _make_when_read(c.eval, ("rcd", "audit"), _evaluator_section)

  # XLA executables persisted here (jax's compilation cache), so a re-run or
  # another seed loads its programs instead of compiling them ("" = off).
  c.compilation_cache_dir = "~/.cache/jaxunlearn/xla"
  c.num_devices = 0    # 0 = every device
  # CPU only, set before JAX starts (parallel.configure_cpu): split batches
  # over this many CPU devices (0 = JAX's default, one), and XLA's
  # experimental YNNPACK fusions ("auto": on when JAX has not started and the
  # jaxlib knows the flag; true; false): faster convolution steps on CPU
  # (benchmarks/results/cpu_flags.md, step_vs_torch.md).
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


def tuned_section(method: str, dataset: str,
                  forget_kind: str | None = None) -> ml_collections.ConfigDict:
  """``config.<method>`` as ``configs/<method>_<dataset>.py`` sets it, or the
  method's default (the authors' setting) where no such file exists.

  A file tuned per forget kind names the kinds it knows in ``FORGET_KINDS``
  and gives each as ``get_config(kind)`` (``file.py:class``); asked for one
  of them, this returns that tuning, else the file's ``get_config()``."""
  path = os.path.join(CONFIGS_DIR, f"{method}_{dataset}.py")
  if not os.path.isfile(path):
    return _method_section(method)
  module = load_module(path)
  if forget_kind in getattr(module, "FORGET_KINDS", ()):
    return module.get_config(forget_kind)[method]
  return module.get_config()[method]


def from_json(path: str) -> ml_collections.ConfigDict:
  """The config a run saved as ``WORKDIR/config.json``: every field, so the
  run can be repeated from it alone."""
  import json
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_module(file: str):
  """A config file as a module (its helpers too, e.g. a dataset's ``base()``
  that the dataset's method files build on)."""
  if not os.path.isfile(file):
    raise FileNotFoundError(f"no config file {file!r}")
  spec = importlib.util.spec_from_file_location(
      "config_" + os.path.splitext(os.path.basename(file))[0], file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_file(path: str) -> ml_collections.ConfigDict:
  """The config a file gives, as ``--config`` loads it: ``file.py`` calls
  ``get_config()``, ``file.py:arg`` calls ``get_config("arg")``."""
  file, _, arg = path.partition(":")
  module = load_module(file)
  return module.get_config(arg) if arg else module.get_config()


def method_names() -> list[str]:
  """The registered methods' names without importing them: each public
  module of ``jaxunlearn/methods`` registers the method it is named after
  (tests/test_config.py checks it)."""
  package = importlib.util.find_spec("jaxunlearn.methods")
  return sorted(m.name for m in pkgutil.iter_modules(package.submodule_search_locations)
                if not m.name.startswith("_"))


def _method_section(name: str) -> ml_collections.ConfigDict:
  from jaxunlearn.methods import METHODS
  return METHODS.get(name).default_config()


def _evaluator_section(name: str) -> ml_collections.ConfigDict:
  from jaxunlearn.metrics.evaluators import EVALUATORS
  return EVALUATORS.get(name).default_config()


class _Sections(dict):
  """A ConfigDict's fields, some of which are made when first read.

  ConfigDict keeps its fields in this dict (``_fields``). A pending name is a
  field like any other for single-key reads, writes, deletion and ``in``; a
  read calls ``make(name)`` once. Whatever walks all fields (iteration,
  ``len``, comparison, copies, pickling, and so ``to_dict``, ``lock``,
  ``deepcopy``) makes the pending ones first.
  """

  def __init__(self, fields: dict, pending: Iterable[str],
               make: Callable[[str], ml_collections.ConfigDict]):
    super().__init__(fields)
    self._pending = {name: None for name in pending if name not in fields}
    self._make = make

  def __missing__(self, key):
    if key not in self._pending:
      raise KeyError(key)
    value = self._make(key)
    del self._pending[key]
    dict.__setitem__(self, key, value)
    return value

  def _complete(self) -> "_Sections":
    for name in list(self._pending):
      self[name]
    return self

  def __contains__(self, key) -> bool:
    return dict.__contains__(self, key) or key in self._pending

  def __setitem__(self, key, value) -> None:
    self._pending.pop(key, None)
    dict.__setitem__(self, key, value)

  def __delitem__(self, key) -> None:
    if key in self._pending:
      del self._pending[key]
    else:
      dict.__delitem__(self, key)

  def get(self, key, default=None):
    return self[key] if key in self else default

  def __iter__(self):
    return dict.__iter__(self._complete())

  def __len__(self) -> int:
    return dict.__len__(self) + len(self._pending)

  def keys(self):
    return dict.keys(self._complete())

  def values(self):
    return dict.values(self._complete())

  def items(self):
    return dict.items(self._complete())

  def __eq__(self, other) -> bool:
    if isinstance(other, _Sections):
      other._complete()
    return dict.__eq__(self._complete(), other)

  def __ne__(self, other) -> bool:
    return not self == other

  def __repr__(self) -> str:
    return dict.__repr__(self._complete())

  def copy(self) -> dict:
    return dict(self.items())

  def __reduce__(self):
    # Copies and pickles hold every field, as a plain dict.
    return dict, (dict(self.items()),)


def _make_when_read(config: ml_collections.ConfigDict, names: Iterable[str],
                    make: Callable[[str], ml_collections.ConfigDict]) -> None:
  """Adds fields ``names`` to ``config``, each ``make(name)`` when first read."""
  object.__setattr__(config, "_fields", _Sections(config._fields, names, make))
