"""DLFD on RAF-DB emotion (7 classes), the authors' settings: Dasol-Choi/DLFD
emotion_cls_experiments.ipynb (the train_dlfd cell; batch size from the data-loader cell).

ResNet-18 + 512-256-128-C MLP head (dropout 0.5), 128x128 inputs. The dataset
"rafdb" is provided by the face-data builder.
"""
import ml_collections

from jaxunlearn import config as base


def get_config():
  c = base.get_config()
  c.method = "dlfd"
  c.dataset = "rafdb"
  # torch_bn: running variance updated with the unbiased batch variance, as
  # their PyTorch BatchNorm (it matters for the released variant's step 0).
  c.model = ml_collections.ConfigDict({"name": "resnet18_mlp", "torch_bn": True})
  # every method of a comparison, not only DLFD, reports the forgetting score
  c.eval.evaluators = tuple(c.eval.evaluators) + ("forgetting_score",)
  d = c.dlfd
  d.batch_size, d.lr, d.momentum, d.weight_decay = 64, 0.006, 0.9, 5e-4
  d.w_f, d.w_r0, d.w_r1, d.steps, d.alpha = 7.0, 0.5, 1.0, 20, 2.0
  d.forget_threshold, d.max_forgetting_score = 0.23, 0.23
  return c
