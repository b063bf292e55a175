"""L2UL on the embedded digits: 16 random training samples forgotten.

jaxunlearn run --config configs/l2ul_digits.py
jaxunlearn run --config configs/l2ul_digits.py --config.l2ul.variant=ga
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.method = "l2ul"
  config.forget.kind = "random"
  config.forget.count = 16
  return config
