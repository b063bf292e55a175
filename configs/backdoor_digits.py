"""Backdoor removal on the embedded digits (BadNets patch, DELETE).

10% of the training set gets a 2x2 white patch in the bottom-right corner
and the label 0; the poisoned model learns the backdoor; DELETE unlearns the
poisoned samples. The report adds ``attack_success_rate`` per model.

jaxunlearn run --config configs/backdoor_digits.py --workdir runs/backdoor
jaxunlearn run --config configs/backdoor_digits.py:scrub

The method runs with its digits tuning (configs/<method>_digits.py) where
there is one, else with its authors' setting.

Measured (experiments/backdoor_digits.py, 3 seeds; clean test accuracy /
attack success): poisoned original 0.988 / 0.999; SCRUB 0.987 / 0.000 (meets
the target: ASR < 0.1, clean within 0.03); DELETE 0.873 / 0.004 (removes the
backdoor but, seeing only samples labelled 0, also unlearns clean class 0);
DELETE with retain_weight=1 0.965 / 0.539.
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.config import tuned_section
from jaxunlearn.tasks import backdoor


def get_config(method: str = "delete"):
  config = base_config()
  config.task = "backdoor"
  config.backdoor = backdoor.default_config()  # 10%, 2x2 white patch, label 0
  config.method = method
  config[method] = tuned_section(method, "digits")
  config.eval.evaluators = tuple(config.eval.evaluators) + ("backdoor",)
  return config
