"""Any baseline on the embedded digits (class 3 forgetting by default).

jaxunlearn run --config configs/baselines_digits.py:scrub
jaxunlearn run --config configs/baselines_digits.py:salun --config.forget.kind=random
"""
from jaxunlearn.config import get_config as base_config


def get_config(method: str = "finetune"):
  config = base_config()
  config.method = method
  return config
