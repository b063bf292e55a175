"""One evaluation of DLFD's gate: fitted in JAX against the authors' sklearn refit (not a test).

DLFD evaluates its gate (the forgetting score of the validation samples vs
D_f, and the validation accuracy) after every step; the authors refit
sklearn's logistic regression in a 10-fold ``cross_val_score`` each time.
On the gate's samples (``dlfd.gate_inputs``, configs/dlfd_digits.py: the
digits, a random 10% forget set, the small CNN trained by the config's
recipe):

- jax: ``dlfd.make_gate``, what the method runs: the per-sample losses and
  the 10 folds' Newton fits in one jitted call;
- sklearn: the same jitted loss pass (``dlfd.losses_and_correct``), the
  losses to the host, then ``forgetting.forgetting_score_sklearn`` (the
  authors' ``simple_mia``), timed as the loss pass and the fit.

Steady state: each is called once first (compilation), then the median of
``--repeats`` calls. Both scores are reported (they should agree).

Run: python benchmarks/dlfd_gate.py [--seeds 0] [--repeats 20]
Writes benchmarks/results/dlfd_gate.json (one row per seed), .meta.json, .md.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform

import jax

from jaxunlearn import parallel
from jaxunlearn.config import load_file
from jaxunlearn.data import load_dataset
from jaxunlearn.data.splits import random_forget_split
from jaxunlearn.methods import dlfd
from jaxunlearn.metrics import forgetting
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model

from _timing import add_cpu_ynn_argument, cpu_name, median_seconds, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, os.pardir, "configs", "dlfd_digits.py")


def sklearn_gate(model, inputs, batch_size: int, mesh):
  """(losses(variables) -> host losses of D_f and the validation samples,
  fit(losses) -> forgetting score): the authors' way, in two timed parts.
  The samples are put on the devices once, as ``make_gate`` does."""
  losses = jax.jit(functools.partial(dlfd.losses_and_correct, model,
                                     batch_size=batch_size))
  nf, nv = int(inputs.forget["mask"].sum()), int(inputs.val["mask"].sum())
  f, v = jax.device_put(
      ((inputs.forget["image"], inputs.forget["label"]),
       (inputs.val["image"], inputs.val["label"])), parallel.replicated(mesh))

  def host_losses(variables):
    f_loss, _ = losses(variables, *f)
    v_loss, _ = losses(variables, *v)
    f_loss, v_loss = jax.device_get((f_loss, v_loss))
    return f_loss[:nf], v_loss[:nv]

  def fit(host):
    f_loss, v_loss = host
    return forgetting.forgetting_score_sklearn(*forgetting.authors_samples(f_loss, v_loss))
  return host_losses, fit


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--repeats", type=int, default=20)
  add_cpu_ynn_argument(parser)
  args = parser.parse_args()
  parallel.configure_cpu(1, args.cpu_ynn_fusions)
  config = load_file(CONFIG)
  cfg = config.dlfd
  spec, splits = load_dataset(config.dataset, os.environ.get("JAXUNLEARN_DATA_DIR") or None)
  model = get_model(config.model.name, num_classes=spec.num_classes, mean=spec.mean,
                    std=spec.std)
  mesh = parallel.make_mesh(1)
  rows = []
  for seed in (int(s) for s in args.seeds.split(",")):
    split_key, pretrain_key, unlearn_key = jax.random.split(jax.random.key(seed), 3)
    variables, _ = train_model(model, config.train, splits["train"], spec.image_shape,
                               pretrain_key, mesh, progress=False)
    data = random_forget_split(splits["train"], splits["test"], split_key,
                               fraction=config.forget.fraction)
    gate_seed, _, _ = dlfd.run_keys(unlearn_key)
    variables = jax.device_put(variables, parallel.replicated(mesh))

    gate = dlfd.make_gate(model, data, cfg, gate_seed, mesh)
    jax_score, val_acc = (float(v) for v in gate(variables))  # compiles
    jax_s = median_seconds(lambda: jax.block_until_ready(gate(variables)), args.repeats)

    inputs = dlfd.gate_inputs(data, cfg, gate_seed)
    host_losses, fit = sklearn_gate(model, inputs, cfg.eval_batch_size, mesh)
    host = host_losses(variables)  # compiles
    sklearn_score = fit(host)
    losses_s = median_seconds(lambda: host_losses(variables), args.repeats)
    fit_s = median_seconds(lambda: fit(host), args.repeats)
    rows.append(dict(method="dlfd", model=config.model.name, dataset=config.dataset,
                     seed=seed, forget=len(data.forget),
                     validation=int(inputs.val["mask"].sum()),
                     jax_gate_s=jax_s, sklearn_losses_s=losses_s, sklearn_fit_s=fit_s,
                     sklearn_gate_s=losses_s + fit_s,
                     ratio=(losses_s + fit_s) / jax_s, jax_score=jax_score,
                     sklearn_score=sklearn_score, val_acc=val_acc))
    print(rows[-1], flush=True)
  meta = dict(jax=jax.__version__, cpu=cpu_name(), cpu_count=os.cpu_count(),
              machine=platform.machine(), repeats=args.repeats,
              config=dict(cfg), train=dict(config.train),
              xla_flags=os.environ.get("XLA_FLAGS", ""))
  lines = ["# DLFD's gate: one evaluation, JAX vs the authors' sklearn refit", "",
           f"{config.dataset}, {config.model.name} trained by configs/dlfd_digits.py's "
           f"recipe, random {config.forget.fraction:.0%} forget set; the gate's "
           f"samples (D_f vs a seeded {cfg.val_fraction} of D_t), batches of "
           f"{cfg.eval_batch_size}; one device. Median of {args.repeats} calls after "
           f"one compiling call. jax {meta['jax']}, {meta['cpu']} "
           f"({meta['cpu_count']} cores), XLA_FLAGS `{meta['xla_flags'] or '(none)'}`. "
           "jax: `dlfd.make_gate` (losses and the 10 Newton fits in one jitted "
           "call). sklearn: the same jitted loss pass, losses to the host, 10-fold "
           "`cross_val_score` (`forgetting.forgetting_score_sklearn`). ratio = "
           "sklearn / jax. Produced by `python benchmarks/dlfd_gate.py`.", "",
           "| seed | D_f | validation | jax s | sklearn s (losses + fit) | ratio "
           "| score jax / sklearn | val acc |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['seed']} | {r['forget']} | {r['validation']} | {r['jax_gate_s']:.4f} "
        f"| {r['sklearn_gate_s']:.4f} ({r['sklearn_losses_s']:.4f} + "
        f"{r['sklearn_fit_s']:.4f}) | {r['ratio']:.2f} | {r['jax_score']:.4f} / "
        f"{r['sklearn_score']:.4f} | {r['val_acc']:.4f} |")
  write_results("dlfd_gate", rows, meta, lines)
  print("\n".join(lines))


if __name__ == "__main__":
  main()
