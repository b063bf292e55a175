"""Baselines on CIFAR-10 with the CIFAR ResNet-18 (settings of the SalUn /
SCRUB code bases). Needs the CIFAR-10 archive (the error says where).

jaxunlearn run --config configs/baselines_cifar10_resnet18.py:salun
"""
from jaxunlearn.config import get_config as base_config


def get_config(method: str = "finetune"):
  config = base_config()
  config.dataset = "cifar10"
  config.model.name = "resnet18"
  config.model.stem = "cifar"
  config.forget.kind = "class"
  config.forget.classes = (0,)
  config.train.update(epochs=182, batch_size=256, lr=0.1, weight_decay=5e-4,
                      schedule="cosine")
  config.method = method
  # salun, scrub and ssd keep their defaults: the authors' CIFAR-10 settings.
  config.finetune.update(lr=0.01, epochs=10, batch_size=256)
  config.neggrad.update(lr=1e-4, epochs=5, batch_size=256)
  config.neggrad_plus.update(lr=0.01, epochs=5, batch_size=256, beta=0.95)
  config.random_label.update(lr=0.01, epochs=10, batch_size=256)
  config.l1_sparse.update(lr=0.01, epochs=10, batch_size=256, gamma=5e-4)
  config.boundary_shrink.update(lr=1e-5, epochs=10, batch_size=256, epsilon=8 / 255)
  config.boundary_expand.update(lr=1e-5, epochs=10, batch_size=256)
  config.bad_teacher.update(lr=1e-4, epochs=1, batch_size=256)
  config.unsir.update(lr=0.02, batch_size=256)
  config.eval.batch_size = 512
  return config
