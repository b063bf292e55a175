"""Backdoor evaluator: attack success rate (clean accuracy is ``test_acc``)."""
from __future__ import annotations

import numpy as np

from jaxunlearn.metrics.evaluators import EvalContext, register

TRIGGERED = "triggered"  # the backdoor task's extra split: triggered test images


@register("backdoor", tasks=("backdoor",))
def backdoor_evaluator(ctx: EvalContext, role: str, options=None):
  """``attack_success_rate``: fraction of the triggered non-target test
  images (``ctx.splits["triggered"]``) classified as the target
  (``config.backdoor.target``)."""
  out = ctx.outputs(role, TRIGGERED)
  target = ctx.run_config.backdoor.target
  yield "attack_success_rate", float(np.mean(np.argmax(out.logits, -1) == target))
