"""The per-example U-LiRA audit on the embedded digits (minutes on a CPU).

The default run (DELETE forgets class 3) plus the whole evaluation suite and
``audit``: 8 shadow models, each trained on D_r plus a random half of
(D_f + the unseen test images of class 3) and then unlearned with DELETE.
AUC 0.5 = a forgotten example looks like one the model never saw.

jaxunlearn run --config configs/audit_digits.py --workdir runs/audit
jaxunlearn run --config configs/audit_digits.py:random --workdir runs/audit_random
"""
from jaxunlearn.config import get_config as base_config


def get_config(arg: str = "class"):
  config = base_config()
  config.eval.evaluators = ("accuracy", "mia_efficacy", "mia_threshold",
                            "mia_features", "entropy_mia", "forgetting_score",
                            "zrf", "rte", "audit")
  config.eval.audit.num_shadows = 8
  config.eval.audit.epochs = 15  # shadow recipe: half the original's 30 epochs
  if arg == "random":  # 10% random samples, forgotten with fine-tune
    config.forget.kind = "random"
    config.forget.fraction = 0.1
    config.method = "finetune"
  elif arg != "class":
    raise ValueError(f"unknown argument {arg!r}; use class or random")
  return config
