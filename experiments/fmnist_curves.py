"""Accuracy over unlearning epochs on Fashion-MNIST: the epoch-based methods
of experiments/fmnist_class.py (and IEU), from the seed's original model.

  python experiments/fmnist_curves.py [--seed 0] [--setting class3]
      [--methods delete,finetune,...]

Each method runs with the study's config (experiments/fmnist_class.py
setting_config: configs/fashion_mnist.py and the method's Fashion-MNIST
tuning) and the study's unlearning key, from the original model the
studies share (restored from experiments/.work/fmnist-seed<S>), and after
every epoch the forget accuracy (D_f) and the remaining classes' test
accuracy (D_t,r) are measured through ``UnlearnTask.on_epoch_end``. The
last point of each curve is the model the study reports, so it is set
beside the study's number (``study_final``) where the study's report is in
the cache: a difference would mean the two runs are not the same
computation. The retrained model's values (from the study's reports) are
the reference lines.

Writes experiments/results/fmnist_curves_<setting>.{json,png}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fmnist_class  # noqa: E402
from common import RESULTS  # noqa: E402
from fmnist_common import original_model, report_path  # noqa: E402
from plots import accuracy_curves  # noqa: E402

# The methods whose loops call UnlearnTask.on_epoch_end.
DEFAULT = ("delete", "finetune", "neggrad", "neggrad_plus", "random_label",
           "l1_sparse", "salun", "ieu")
KEYS = ("forget_acc", "test_retain_acc")


def study_report(setting: str, seed: int, method: str) -> dict | None:
  """The cached report of ``method`` in fmnist_class.py's ``setting``, or
  for IEU on classes 0-2, in fmnist_ieu.py's class30 (the same forget set
  and IEU section; fmnist_class.py does not run IEU)."""
  if method == "ieu" and setting == "class3":
    import fmnist_ieu
    cfg, label = fmnist_ieu.setting_config("class30", seed, "ieu"), "class30-ieu"
  else:
    cfg = fmnist_class.setting_config(setting, seed, method)
    label = f"{setting}-{method}"
  path = report_path(cfg, label)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--setting", default="class3", choices=tuple(fmnist_class.SETTINGS))
  parser.add_argument("--methods", default=",".join(DEFAULT))
  args = parser.parse_args(argv)
  methods = args.methods.split(",")
  first = fmnist_class.setting_config(args.setting, args.seed, methods[0])

  from jaxunlearn import parallel
  from jaxunlearn.methods import UnlearnTask
  from jaxunlearn.metrics.predict import accuracy, make_predict_fn
  # As run.run: the same CPU kernels, so the last point is the study's model.
  parallel.configure_cpu(first.get("cpu_devices", 0),
                         first.get("cpu_ynn_fusions", "auto"))
  task, loaded, model, original, keys, mesh = original_model(first)
  data = loaded.data
  predict_fn = make_predict_fn(model, mesh)
  batch = first.eval.batch_size
  point = lambda v: {"forget_acc": accuracy(predict_fn, v, data.forget, batch, mesh),
                     "test_retain_acc": accuracy(predict_fn, v, data.test_retain,
                                                 batch, mesh)}
  out = {"seed": args.seed, "setting": args.setting,
         "forget_classes": list(fmnist_class.SETTINGS[args.setting]),
         "original": point(original), "retrained": None, "methods": {}}
  path = os.path.join(RESULTS, f"fmnist_curves_{args.setting}")
  for name in methods:
    cfg = fmnist_class.setting_config(args.setting, args.seed, name)
    curve = [out["original"]]
    unlearn_task = UnlearnTask(
        model=model, variables=original, data=data, num_classes=loaded.num_classes,
        image_shape=loaded.image_shape, mesh=mesh, augment=loaded.augment,
        train_config=cfg.train, progress=False,
        on_epoch_end=lambda epoch, v, c=curve: c.append(point(v)))
    task.method(cfg, name).unlearn(unlearn_task, cfg[name], keys.unlearn)
    entry = {"curve": curve, "study_final": None}
    report = study_report(args.setting, args.seed, name)
    if report is not None:
      entry["study_final"] = {k: report["models"]["unlearned"][k] for k in KEYS}
      out["retrained"] = out["retrained"] or {
          k: report["models"]["retrained"][k] for k in KEYS}
    out["methods"][name] = entry
    print(name, [round(p["forget_acc"], 3) for p in curve],
          "study:", entry["study_final"], flush=True)
    write(out, path)  # after every method: a killed run keeps what it has


def write(out: dict, path: str) -> None:
  os.makedirs(RESULTS, exist_ok=True)
  with open(path + ".json.tmp", "w") as f:
    json.dump(out, f, indent=1)
  os.replace(path + ".json.tmp", path + ".json")
  accuracy_curves({name: e["curve"] for name, e in out["methods"].items()},
                  out["retrained"],
                  "class " + ", ".join(str(c) for c in out["forget_classes"]),
                  path + ".png", f"Fashion-MNIST, cnn28, seed {out['seed']}")


if __name__ == "__main__":
  main()
