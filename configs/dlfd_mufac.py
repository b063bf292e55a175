"""DLFD on MUFAC age groups (8 classes), the authors' settings: Dasol-Choi/DLFD
age_cls_experiments.ipynb (the train_dlfd cell; batch size from the data-loader cell).

ResNet-18 + 512-256-128-C MLP head (dropout 0.5), 128x128 inputs. The dataset
"mufac" is provided by the face-data builder.
"""
import ml_collections

from jaxunlearn import config as base


def get_config():
  c = base.get_config()
  c.method = "dlfd"
  c.dataset = "mufac"
  # torch_bn: running variance updated with the unbiased batch variance, as
  # their PyTorch BatchNorm (it matters for the released variant's step 0).
  c.model = ml_collections.ConfigDict({"name": "resnet18_mlp", "torch_bn": True})
  # every method of a comparison, not only DLFD, reports the forgetting score
  c.eval.evaluators = tuple(c.eval.evaluators) + ("forgetting_score",)
  d = c.dlfd
  d.batch_size, d.lr, d.momentum, d.weight_decay = 32, 0.008, 0.9, 5e-4
  d.w_f, d.w_r0, d.w_r1, d.steps, d.alpha = 3.0, 0.0, 1.0, 15, 0.4
  d.forget_threshold, d.max_forgetting_score = 0.15, 0.09
  return c
