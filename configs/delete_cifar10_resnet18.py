"""DELETE on CIFAR-10 with ResNet-18, the authors' optimiser settings.

The authors (CVPR 2025) train torchvision's ResNet-18 at 224 px for
CIFAR-10; this config keeps CIFAR's native 32 px with the CIFAR stem
(``--config.model.stem=imagenet`` for the 7x7 stem). Needs the CIFAR-10
archive (see `jaxunlearn run --config.dataset=cifar10` for where to put it).
"""
from jaxunlearn.config import get_config as base_config


def get_config(classes: str = "0"):
  config = base_config()
  config.dataset = "cifar10"
  config.model.name = "resnet18"
  config.model.stem = "cifar"
  config.forget.kind = "class"
  config.forget.classes = tuple(int(c) for c in classes.split(","))
  config.train.update(epochs=182, batch_size=128, lr=0.1, weight_decay=5e-4,
                      schedule="cosine")
  config.method = "delete"
  config.delete.update(lr=1e-4, momentum=0.9, weight_decay=0.0, epochs=20,
                       batch_size=128, augment=True)
  config.eval.batch_size = 512
  return config
