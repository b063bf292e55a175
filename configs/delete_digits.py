"""DELETE on the embedded digits, forgetting class 3 (the default run).

jaxunlearn run --config configs/delete_digits.py
jaxunlearn run --config configs/delete_digits.py:1,3,5   # several classes
"""
from jaxunlearn.config import get_config as base_config


def get_config(classes: str = "3"):
  config = base_config()
  config.method = "delete"
  config.forget.kind = "class"
  config.forget.classes = tuple(int(c) for c in classes.split(","))
  return config
