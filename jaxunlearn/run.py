"""config -> data -> original & retrained models -> unlearn -> evaluate -> report.

``run(config, workdir)`` is the library's main job, the same for every task
(``config.task``: a ``tasks.Task`` record says how to load its data, build
and train its model, and which methods apply). Everything expensive is
checkpointed under ``workdir/checkpoints/<phase>-<fingerprint>`` (the
fingerprint hashes whatever determines the result), so a second run reuses
the trained models and a killed run resumes.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import socket
import time

import jax
import ml_collections
import numpy as np

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn import config as config_lib
from jaxunlearn import logs, parallel, preemption, records
from jaxunlearn import loop as loop_lib
from jaxunlearn.aggregate import flatten
from jaxunlearn.data.splits import save_forget_ids
from jaxunlearn.errors import Diverged, UserError
from jaxunlearn.methods import METHODS, UnlearnTask
from jaxunlearn.metrics import evaluators as evaluators_lib
from jaxunlearn.metrics.evaluators import EvalContext
from jaxunlearn.models import compute_dtype
from jaxunlearn.tasks import TASKS, task_name
from jaxunlearn.train import train_model

MODEL_ROLES = ("original", "unlearned", "retrained")
METRIC_KEYS = ("forget_acc", "retain_acc", "test_acc", "test_forget_acc",
               "test_retain_acc", "mia_efficacy", "mia_threshold")


def fingerprint_file(path: str) -> str:
  """SHA-256 of a file's bytes (prefix): which weights a run started from."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()[:16]


def fingerprint(*parts) -> str:
  blob = json.dumps(parts, sort_keys=True, default=str).encode()
  return hashlib.sha1(blob).hexdigest()[:12]


def as_dict(c) -> dict:
  return c.to_dict() if isinstance(c, ml_collections.ConfigDict) else c


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Fails fast (before any data or training) on names that do not exist."""
  task = TASKS.get(task_name(cfg))
  task.check(cfg)
  if cfg.get("validation", 0) and task.name not in ("classification", "backdoor"):
    raise UserError(f"validation={cfg.validation} holds out training images for "
                    f"classification and backdoor runs; the {task.name} task "
                    "has no such split: set validation=0")
  compute_dtype(cfg.model.get("dtype", "float32"))
  evaluators_lib.check(run_evaluators(cfg, task.method(cfg, cfg.method)),
                       task.name)


def run_evaluators(cfg: ml_collections.ConfigDict, method=None) -> tuple[str, ...]:
  """config.eval.evaluators, then those of the method's paper not yet in it
  (unless config.eval.method_evaluators is False)."""
  names = tuple(cfg.eval.evaluators)
  method = METHODS.get(cfg.method) if method is None else method
  if cfg.eval.get("method_evaluators", True):
    names += tuple(e for e in method.evaluators if e not in names)
  return names


def timed_phase(directory: str, fn, template=None):
  """Runs ``fn(checkpoint_dir) -> (result, stats)`` and records its wall time
  and stats once it finishes: ((result, stats), seconds).

  A finished phase restored from its checkpoint (a record and a numbered
  checkpoint step in ``directory``) reports the time and stats it originally
  had. A phase interrupted and resumed (checkpoint steps, no record) counts
  the time its earlier processes spent up to their last save (the
  ``seconds`` of the latest step's meta, ``loop.run_epochs``) as well as
  this process's.

  A phase that keeps no checkpoint of its own (L2UL's and DLFD's loops)
  recomputes, and its new time and stats are recorded, unless ``template``
  (the result's pytree) is given: then its finished result is saved in
  ``directory + "-done"`` and restored from there, with the time and stats
  it had, so a killed batch job does not redo a finished unlearning."""
  record = directory + ".json"
  done = directory + "-done"
  if template is not None and os.path.exists(record):
    result = ckpt_lib.load_result(done, template)
    if result is not None:
      saved = ckpt_lib.read_json(record)
      return (result, saved.get("stats", {})), saved["seconds"]
  reused = os.path.exists(record) and _has_step(directory)
  prior = 0.0 if reused else float(ckpt_lib.latest_meta(directory).get("seconds", 0.0))
  start = time.perf_counter()
  result, stats = fn(directory)
  if reused:
    with open(record) as f:
      saved = json.load(f)
    return (result, saved.get("stats", stats)), saved["seconds"]
  seconds = prior + time.perf_counter() - start
  if parallel.is_primary():
    ckpt_lib.write_json(record, {"seconds": seconds, "stats": stats})
  # After the record: reuse needs both, and orbax commits the save atomically.
  if template is not None and not _has_step(directory):
    ckpt_lib.save_result(done, result)
  return (result, stats), seconds


def _has_step(directory: str) -> bool:
  return os.path.isdir(directory) and any(
      name.isdigit() for name in os.listdir(directory))


def check_finite_variables(variables, method: str) -> None:
  """Raises ``Diverged`` if ``method`` returned NaN/inf parameters or
  statistics."""
  if not bool(jax.device_get(loop_lib.all_finite(variables))):
    raise Diverged(f"{method} returned NaN/inf parameters: it diverged; lower "
                   f"{method}'s learning rate")


def use_compilation_cache(directory: str) -> None:
  """Turns on jax's persistent compilation cache in ``directory``.

  A no-op for ``""`` or when the cache directory is already configured
  (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``: the user's choice
  wins). Programs that took more than 0.1 s to compile are kept, so a second
  run, another seed of a sweep, or a method that jits a fresh closure per
  call (L2UL's loop, the audit's shadow models) loads them from disk.
  """
  if not directory or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def model_fingerprint(cfg) -> dict:
  """``config.model`` as the checkpoint fingerprints hash it: the default
  dtype (float32) left out, so float32 runs keep the fingerprints they had
  before the field existed."""
  model = as_dict(cfg.model)
  if model.get("dtype", "float32") == "float32":
    model = {k: v for k, v in model.items() if k != "dtype"}
  return model


def trained_fingerprint(cfg, task, loaded) -> tuple:
  """What every trained model's checkpoint name hashes (the original's is
  ``checkpoints/original-<fingerprint(*this)>``): task, dataset, model,
  recipe, seed and the task's own fields."""
  return (task.name, loaded.dataset, model_fingerprint(cfg), as_dict(cfg.train),
          cfg.seed) + tuple(task.fingerprint(cfg))


@functools.lru_cache(maxsize=None)
def evaluation_code_fingerprint() -> str:
  """SHA-256 (prefix) of the evaluators' source (jaxunlearn/metrics/*.py): a
  stored evaluation is reused only by the code that computed it."""
  digest = hashlib.sha256()
  for name in sorted(os.listdir(evaluators_lib.METRICS_DIR)):
    if name.endswith(".py"):
      with open(os.path.join(evaluators_lib.METRICS_DIR, name), "rb") as f:
        digest.update(name.encode() + b"\0" + f.read())
  return digest.hexdigest()[:16]


def evaluation_paths(ckpt_root: str, cfg, task, evaluators, checkpoints: dict,
                     forget_hash: str, models: dict) -> dict:
  """{role: path} where the evaluation of the original and the retrained
  model is kept, ``checkpoints/eval-<role>-<fingerprint>.json``: the
  fingerprint hashes the model's checkpoint name, the forget set, the
  evaluators and ``config.eval``, which models the run has (comparisons to
  the retrained model), the task's unlearning fields, the evaluators' code,
  and the method when an evaluator uses it (the audit). Every method run on
  the same forget set therefore evaluates these two models once."""
  uses_method = any(evaluators_lib.EVALUATORS.get(n).uses_method for n in evaluators)
  common = (forget_hash, tuple(evaluators), as_dict(cfg.eval),
            sorted(r for r, v in models.items() if v is not None),
            task.unlearn_fingerprint(cfg), evaluation_code_fingerprint(),
            (cfg.method, as_dict(cfg[cfg.method])) if uses_method else None)
  return {role: os.path.join(ckpt_root, f"eval-{role}-{fingerprint(name, *common)}.json")
          for role, name in checkpoints.items() if models.get(role) is not None}


@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Holds ``workdir/.lock`` for the run: a second run on the same workdir
  fails at once instead of writing beside the first."""
  path = os.path.join(workdir, ".lock")
  handle = open(path, "a+")
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    handle.close()
    raise UserError(f"workdir {workdir} is in use by a running job ({holder}); "
                    "wait for it to finish or choose another --workdir") from None
  handle.seek(0)
  handle.truncate()
  handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
  handle.flush()
  try:
    yield
  finally:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def start_processes(cfg: ml_collections.ConfigDict) -> None:
  """``jax.distributed`` when the config asks for several processes; before
  any other JAX call."""
  if not cfg.get("distributed", False):
    return
  process_id = cfg.get("process_id", -1)
  parallel.initialize_distributed(
      cfg.get("coordinator_address", "") or None,
      cfg.get("num_processes", 0) or None,
      None if process_id is None or process_id < 0 else int(process_id))


def run(cfg: ml_collections.ConfigDict, workdir: str, log=None,
        verbosity: int = logs.NORMAL, shadow_keep: str | None = None) -> dict:
  """The full job for any task; returns the report (also written to
  workdir/report.json, with config.json, metrics.jsonl, report.md and
  manifest.json beside it).

  ``log`` receives the run's own messages (default: the ``jaxunlearn``
  logger, which also carries one line per epoch); ``verbosity``:
  ``logs.QUIET``, ``NORMAL`` or ``VERBOSE``. SIGTERM saves a checkpoint at
  the next step and raises ``preemption.Preempted``; running again resumes.
  ``shadow_keep``: a directory where the audit evaluator also keeps each
  shadow model's statistics, and from which it restores them (an audit
  resumed on another machine, without this workdir).
  """
  use_compilation_cache(cfg.get("compilation_cache_dir", ""))
  parallel.configure_cpu(cfg.get("cpu_devices", 0),
                         cfg.get("cpu_ynn_fusions", "auto"))
  start_processes(cfg)
  task = TASKS.get(task_name(cfg))
  task.check(cfg)
  compute_dtype(cfg.model.get("dtype", "float32"))
  method = task.method(cfg, cfg.method)
  evaluators = run_evaluators(cfg, method)
  evaluators_lib.check(evaluators, task.name)
  os.makedirs(workdir, exist_ok=True)
  with contextlib.ExitStack() as stack:
    if parallel.is_primary():
      stack.enter_context(workdir_lock(workdir))
    stack.callback(logs.configure(workdir, verbosity, jax.process_index()))
    stack.callback(preemption.uninstall, preemption.install())
    report = _run(cfg, workdir, task, method, evaluators,
                  log or logs.LOGGER.info, shadow_keep)
    parallel.barrier("jaxunlearn-run-end")  # no process leaves before the writes
    return report


def _run(cfg, workdir, task, method, evaluators, log, shadow_keep=None) -> dict:
  primary = parallel.is_primary()
  if primary:
    records.write_config(os.path.join(workdir, "config.json"), cfg)
  mesh = parallel.make_mesh(cfg.num_devices or None)
  keys = task.keys(jax.random.key(cfg.seed))
  # Process 0 prepares the data (if needed) before the others read it.
  if primary:
    loaded = task.load(cfg, jax.random.key(cfg.seed), keys.split)
  parallel.barrier("jaxunlearn-data-ready")
  if not primary:
    loaded = task.load(cfg, jax.random.key(cfg.seed), keys.split)
  data = loaded.data
  if primary:
    save_forget_ids(os.path.join(workdir, "forget_ids.json"), data,
                    loaded.forget_spec)
  log(f"{task.name} {loaded.dataset}: |D_f|={len(data.forget)} "
      f"|D_r|={len(data.retain)} |D_t,f|={len(data.test_forget)} "
      f"|D_t,r|={len(data.test_retain)}; {mesh.devices.size} device(s)")

  model = task.build_model(cfg, loaded)
  make_step = task.train_step(cfg)
  ckpt_root = os.path.join(workdir, "checkpoints")
  base = trained_fingerprint(cfg, task, loaded)
  forget_hash = fingerprint(sorted(int(i) for i in data.forget.ids))

  def train_from_scratch(split, key, directory, epochs=None, desc="shadow"):
    recipe = cfg.train if not epochs else ml_collections.ConfigDict(
        dict(as_dict(cfg.train), epochs=int(epochs)))
    return train_model(model, recipe, split, loaded.image_shape, key, mesh,
                       augment=loaded.augment, checkpoint_dir=directory,
                       desc=desc, progress=cfg.progress, make_step=make_step)[0]

  torch_source = None
  if cfg.original_from:
    from jaxunlearn import torch_io
    if not os.path.isfile(cfg.original_from):
      raise UserError(f"original_from={cfg.original_from!r} is not a file; give "
                      "the path of a PyTorch .pt/.pth state_dict")
    torch_source = torch_io.load_torch_file(cfg.original_from)
    original = torch_io.import_state_dict(model, torch_source,
                                          image_shape=loaded.image_shape,
                                          where=cfg.original_from)
    t_pretrain = None
    base = base + (fingerprint_file(cfg.original_from),)
  checkpoints = {"original": f"original-{fingerprint(*base)}",
                 "retrained": f"retrained-{fingerprint(*base, forget_hash)}"}
  if not cfg.original_from:
    (original, _), t_pretrain = timed_phase(
        os.path.join(ckpt_root, checkpoints["original"]),
        lambda d: (train_from_scratch(loaded.train, keys.pretrain, d,
                                      desc="pretrain"), {}))
  retrained, t_retrain = None, None
  if cfg.with_retrained:
    (retrained, _), t_retrain = timed_phase(
        os.path.join(ckpt_root, checkpoints["retrained"]),
        lambda d: (train_from_scratch(data.retain, keys.retrain, d,
                                      desc="retrain"), {}))

  method_cfg = cfg[cfg.method]
  unlearn_dir = os.path.join(ckpt_root, f"unlearn-{cfg.method}-" + fingerprint(
      *base, forget_hash, as_dict(method_cfg), *task.unlearn_fingerprint(cfg)))

  def unlearn_from(variables, forget_data, key, directory):
    """(variables, stats) of the method from ``variables``."""
    unlearn_task = UnlearnTask(
        model=model, variables=variables, data=forget_data,
        num_classes=loaded.num_classes, image_shape=loaded.image_shape,
        mesh=mesh, augment=loaded.augment, train_config=cfg.train,
        checkpoint_dir=directory, progress=cfg.progress)
    return method.unlearn(unlearn_task, method_cfg, key)
  (unlearned, method_stats), t_unlearn = timed_phase(
      unlearn_dir, lambda d: unlearn_from(original, data, keys.unlearn, d),
      template=original)
  # Methods with their own loops (L2UL, DLFD, ...) do not pass through the
  # epoch loop's check; NaN weights must not reach the evaluators.
  check_finite_variables(unlearned, cfg.method)
  if cfg.export_torch and parallel.is_primary():
    from jaxunlearn import torch_io
    path = os.path.join(workdir, "unlearned.pth")
    torch_io.save_torch_file(  # with the imported file's key names, if any
        path + ".tmp", model, unlearned, image_shape=loaded.image_shape,
        template=torch_source)
    os.replace(path + ".tmp", path)
    log(f"wrote {path}")

  audit_dir = os.path.join(ckpt_root, "audit-" + fingerprint(
      *base, forget_hash, as_dict(method_cfg), as_dict(cfg.eval.get("audit", {}))))
  start = time.perf_counter()
  ctx = EvalContext(
      model=model, models={"original": original, "unlearned": unlearned,
                           "retrained": retrained},
      data=data, mesh=mesh, num_classes=loaded.num_classes,
      batch_size=cfg.eval.batch_size, seed=cfg.seed, eval_config=cfg.eval,
      run_config=cfg, workdir=workdir, task=task.name, splits=loaded.splits,
      train_fn=train_from_scratch,
      unlearn_fn=lambda *a: unlearn_from(*a)[0],
      shadow_dir=audit_dir, shadow_keep=shadow_keep,
      phase_seconds={"pretrain": t_pretrain, "retrain": t_retrain,
                     "unlearn": t_unlearn})
  stored = evaluation_paths(ckpt_root, cfg, task, evaluators, checkpoints,
                            forget_hash, ctx.models)
  known = {role: ckpt_lib.read_json(path) for role, path in stored.items()
           if os.path.exists(path)}
  parallel.barrier("jaxunlearn-evaluations-read")  # before process 0 writes any
  results = evaluators_lib.evaluate_roles(ctx, evaluators, known)
  if primary:
    for role, path in stored.items():
      if role not in known:
        ckpt_lib.write_json(path, evaluators_lib.role_record(ctx, results, role))
  results = evaluators_lib.add_gaps(results, cfg.eval.gap_metrics)
  t_evaluate = time.perf_counter() - start

  report = {
      "task": task.name, "method": cfg.method, "dataset": loaded.dataset,
      "seed": int(cfg.seed), **task.report(cfg),
      "forget": dict(loaded.forget_spec, size=len(data.forget)),
      "models": results,
      "runtime_s": {"pretrain": t_pretrain, "retrain": t_retrain,
                    "unlearn": t_unlearn, "evaluate": t_evaluate},
      # RTE as the evaluation issue defines it: how many times faster than
      # retraining the unlearning was (per-model seconds: evaluator "rte").
      "rte": (t_retrain / t_unlearn if t_retrain and t_unlearn else None),
      "platform": parallel.describe(),
  }
  if method_stats:
    report["method_stats"] = method_stats
  report["notes"] = report_notes(report, unchanged=trees_equal(original, unlearned),
                                 meant_for=method.forget_kinds)
  if primary:
    ckpt_lib.write_json(os.path.join(workdir, "report.json"), report)
    write_records(workdir, cfg, report, ctx, loaded, method.name)
  return report


def write_records(workdir: str, cfg, report: dict, ctx: EvalContext, loaded,
                  phase: str) -> None:
  """report.md (+ report.png) and manifest.json beside report.json."""
  per_class = {}
  if task_name(cfg) != "segmentation":
    for role, variables in ctx.models.items():
      if variables is not None and len(ctx.split("test")):
        out = ctx.outputs(role, "test")
        per_class[role] = records.per_class_accuracy(out.logits, out.labels,
                                                     loaded.num_classes)
  curves = [r for r in records.read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if r.get("phase") == phase]
  image = os.path.join(workdir, "report.png")
  drawn = records.plot(image, per_class, curves[-int(curves[-1]["epochs"]):]
                       if curves else [], phase)
  diff = records.config_diff(cfg, config_lib.get_config())
  records.write_text(os.path.join(workdir, "report.md"), records.report_markdown(
      format_report(report), diff, report, "report.png" if drawn else None))
  ckpt_lib.write_json(os.path.join(workdir, "manifest.json"), records.manifest(
      report, records.split_fingerprint(loaded.train, ctx.split("test")),
      ctx.data.forget.ids, ctx.models))


def trees_equal(a, b) -> bool:
  """Whether two variable trees hold the same structure and bit-identical
  arrays (one host copy of each leaf, once per run)."""
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  return tree_a == tree_b and all(
      np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def report_notes(report: dict, unchanged: bool = False,
                 meant_for: tuple[str, ...] = ()) -> list[str]:
  """Sentences the report must not leave unsaid: a method that returned the
  original model, what the method says of its own outcome, a forgetting
  setting outside the method's paper, and membership attacks that have no
  signal (their number on D_f means nothing)."""
  notes = []
  kind = report.get("forget", {}).get("kind")
  if meant_for and kind not in meant_for:
    notes.append(f"{report['method']} is meant for {' / '.join(meant_for)} "
                 f"forgetting (its paper's settings); this run forgets {kind}.")
  if unchanged:
    notes.append(f"{report['method']} returned the original model unchanged "
                 "(bit-identical weights): nothing was unlearned.")
  outcome = (report.get("method_stats") or {}).get("outcome")
  if outcome:
    notes.append(f"{report['method']}: {outcome}")
  silent = {}  # attack -> [(role, held-out accuracy)]
  for role in MODEL_ROLES:
    metrics = report["models"].get(role) or {}
    for key, value in metrics.items():
      if key.endswith("_signal") and value is False:
        attack = key[:-len("_signal")]
        silent.setdefault(attack, []).append(
            f"{role} {metrics.get(f'{attack}_attack_acc', float('nan')):.3f}")
  for attack, roles in silent.items():
    notes.append(f"{attack}: the attack tells shadow members from non-members "
                 f"no better than chance (held-out accuracy: {', '.join(roles)}), "
                 "so its value on D_f says nothing about membership there.")
  return notes


def format_report(report: dict) -> str:
  """A plain-text table: rows = metrics, columns = original/unlearned/retrained."""
  roles = [r for r in MODEL_ROLES if report["models"].get(r) is not None]
  flat = {r: flatten(report["models"][r]) for r in roles}  # audit.auc etc.
  present = {k for r in roles for k in flat[r]}
  keys = [k for k in METRIC_KEYS if k in present]
  keys += sorted(present - set(keys) - {"avg_gap"})
  keys += ["avg_gap"] if "avg_gap" in present else []
  fmt = lambda v: "   -  " if v is None else f"{v:6.4f}"
  width = max([18] + [len(k) + 1 for k in keys])
  lines = [f"method={report['method']} dataset={report['dataset']} "
           f"seed={report['seed']} |D_f|={report['forget']['size']}",
           f"{'metric':<{width}}" + "".join(f"{r:>12}" for r in roles)]
  for k in keys:
    lines.append(f"{k:<{width}}" + "".join(f"{fmt(flat[r].get(k)):>12}"
                                           for r in roles))
  times = ", ".join(f"{k} {v:.1f}s" for k, v in report["runtime_s"].items()
                    if v is not None)
  if report.get("rte"):
    times += f"; rte (retrain / unlearn) {report['rte']:.1f}x"
  lines.append(f"runtime: {times}")
  lines += [f"note: {n}" for n in report.get("notes", ())]
  return "\n".join(lines)
