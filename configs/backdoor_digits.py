"""Backdoor removal on the embedded digits (BadNets patch, DELETE).

10% of the training set gets a 2x2 white patch in the bottom-right corner
and the label 0; the poisoned model learns the backdoor; DELETE unlearns the
poisoned samples. The report adds ``attack_success_rate`` per model.

jaxunlearn run --config configs/backdoor_digits.py --workdir runs/backdoor
jaxunlearn run --config configs/backdoor_digits.py --config.method=finetune
"""
import ml_collections

from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.backdoor = ml_collections.ConfigDict(dict(
      enabled=True, fraction=0.1, target=0, size=2, position="bottom_right",
      value=255))
  config.method = "delete"
  config.eval.evaluators = tuple(config.eval.evaluators) + ("backdoor",)
  return config
