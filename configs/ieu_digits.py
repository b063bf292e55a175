"""IEU on the embedded digits: random 30% forgetting, with the relearning
convergence delay (RCD) evaluated for every model.

jaxunlearn run --config configs/ieu_digits.py --workdir runs/ieu
"""
from jaxunlearn.config import get_config as base_config


def get_config(method: str = "ieu"):
  config = base_config()
  config.method = method
  config.forget.kind = "random"
  config.forget.fraction = 0.3
  config.eval.evaluators = tuple(config.eval.evaluators) + ("rcd",)
  return config
