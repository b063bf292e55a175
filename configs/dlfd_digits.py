"""DLFD on the embedded digits data (small CNN), random 10% forget set.

  jaxunlearn run --config configs/dlfd_digits.py --workdir /tmp/w

Digits generalise almost perfectly, so the original model's forgetting score
is already near chance (~0.01-0.04, measured); forget_threshold=0 keeps
synthesising for the whole pass and selection keeps FS <= 0.05.
"""
from jaxunlearn import config as base


def get_config():
  c = base.get_config()
  c.method = "dlfd"
  c.forget.kind, c.forget.fraction = "random", 0.1
  c.eval.evaluators = ("accuracy", "mia_efficacy", "forgetting_score")
  d = c.dlfd
  d.batch_size, d.lr = 32, 0.01
  d.w_f, d.w_r0, d.w_r1, d.steps, d.alpha = 3.0, 0.0, 1.0, 15, 0.4
  d.forget_threshold, d.max_forgetting_score = 0.0, 0.05
  return c
