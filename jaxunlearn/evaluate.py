"""Evaluation of one model on the forget/retain/test splits.

Accuracies in inference mode without augmentation on D_f (``forget_acc``),
D_r (``retain_acc``), D_t (``test_acc``), D_t,f and D_t,r (``None`` unless the
forget set is a set of classes), the SVC MIA-efficacy on the true-class
confidence, and the average gap to the retrained model.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from jaxunlearn.data.splits import ForgetSplit
from jaxunlearn.metrics import mia
from jaxunlearn.metrics.predict import predict

GAP_METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_efficacy")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> Optional[float]:
  if len(labels) == 0:
    return None
  return float(np.mean(np.argmax(logits, -1) == labels))


def evaluate_model(predict_fn, variables: dict, data: ForgetSplit, *,
                   batch_size: int, mesh, seed: int) -> dict:
  """The report's per-model metrics ``M``."""
  run = lambda split: predict(predict_fn, variables, split, batch_size, mesh)
  forget_logits = run(data.forget)
  retain_logits = run(data.retain)
  test_forget_logits = run(data.test_forget) if len(data.test_forget) else None
  test_retain_logits = run(data.test_retain)
  class_forgetting = data.forget_classes is not None

  test_labels = np.concatenate([data.test_forget.labels, data.test_retain.labels])
  test_logits = (np.concatenate([test_forget_logits, test_retain_logits])
                 if test_forget_logits is not None else test_retain_logits)

  shadow = mia.shadow_member_index(len(data.retain), len(data.test_retain), seed)
  mia_efficacy = mia.svc_mia(
      mia.confidence(retain_logits[shadow], data.retain.labels[shadow]),
      mia.confidence(test_retain_logits, data.test_retain.labels),
      mia.confidence(forget_logits, data.forget.labels))
  return {
      "forget_acc": accuracy(forget_logits, data.forget.labels),
      "retain_acc": accuracy(retain_logits, data.retain.labels),
      "test_acc": accuracy(test_logits, test_labels),
      "test_forget_acc": (accuracy(test_forget_logits, data.test_forget.labels)
                          if class_forgetting and test_forget_logits is not None
                          else None),
      "test_retain_acc": (accuracy(test_retain_logits, data.test_retain.labels)
                          if class_forgetting else None),
      "mia_efficacy": mia_efficacy,
  }


def avg_gap(metrics: dict, reference: dict,
            keys: Sequence[str] = GAP_METRICS) -> float:
  """Mean absolute difference to the retrained model over ``keys``."""
  gaps = [abs(metrics[k] - reference[k]) for k in keys
          if metrics.get(k) is not None and reference.get(k) is not None]
  return float(np.mean(gaps)) if gaps else float("nan")
