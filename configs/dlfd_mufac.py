"""DLFD on MUFAC age groups (8 classes), the authors' settings (METHODS.md §3).

ResNet-18 + 512-256-128-C MLP head (dropout 0.5), 128x128 inputs. The dataset
"mufac" is provided by the face-data builder.
"""
import ml_collections

from jaxunlearn import config as base


def get_config():
  c = base.get_config()
  c.method = "dlfd"
  c.dataset = "mufac"
  c.model = ml_collections.ConfigDict({"name": "resnet18_mlp"})
  c.eval.evaluators = ("accuracy", "mia_efficacy", "forgetting_score")
  d = c.dlfd
  d.batch_size, d.lr, d.momentum, d.weight_decay = 32, 0.008, 0.9, 5e-4
  d.w_f, d.w_r0, d.w_r1, d.steps, d.alpha = 3.0, 0.0, 1.0, 15, 0.4
  d.forget_threshold, d.max_forgetting_score = 0.15, 0.09
  return c
