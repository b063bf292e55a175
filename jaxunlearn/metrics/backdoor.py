"""Backdoor evaluator: attack success rate and clean accuracy."""
from __future__ import annotations

import numpy as np

from jaxunlearn.evaluate import EVALUATORS, EvalContext
from jaxunlearn.metrics.predict import predict


@EVALUATORS.register("backdoor")
def backdoor_evaluator(ctx: EvalContext, role: str):
  """``attack_success_rate``: fraction of triggered non-target test images
  classified as the target (clean accuracy is ``test_acc``). Needs ``ctx.extras["backdoor"] = (triggered test Split, target)``."""
  if "backdoor" not in ctx.extras:
    return
  triggered, target = ctx.extras["backdoor"]
  if ctx._predict_fn is None:
    ctx.outputs(role, "forget")  # builds the predict function
  logits = predict(ctx._predict_fn, ctx.models[role], triggered, ctx.batch_size,
                   ctx.mesh)
  yield "attack_success_rate", float(np.mean(np.argmax(logits, -1) == target))
