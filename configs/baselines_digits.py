"""Any method on the embedded digits (class 3 forgetting by default), with its
digits tuning (configs/<method>_digits.py) where there is one, else with its
authors' setting.

jaxunlearn run --config configs/baselines_digits.py:scrub
jaxunlearn run --config configs/baselines_digits.py:salun --config.forget.kind=random
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.config import tuned_section


def get_config(method: str = "finetune"):
  config = base_config()
  config.method = method
  config[method] = tuned_section(method, "digits")
  return config
