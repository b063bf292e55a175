"""L2UL on CIFAR-10 with ResNet-18, the authors' settings (AAAI 2024).

eps 4, PGD step 0.1, 100 PGD steps, 20 adversarial examples per sample,
SGD lr 1e-3, momentum 0.9, weight decay 1e-4, lambda 1, at most 1000 steps.
The authors' ResNet-18 keeps the 3x3 stem followed by max-pooling
("cifar_maxpool"). Needs the CIFAR-10 archive.
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.dataset = "cifar10"
  config.model.name = "resnet18"
  config.model.stem = "cifar_maxpool"
  config.train.update(epochs=182, batch_size=128, lr=0.1, weight_decay=5e-4,
                      schedule="cosine")
  config.method = "l2ul"
  config.forget.kind = "random"
  config.forget.count = 16
  config.l2ul.update(variant="full", n_adv=20, epsilon=4.0, pgd_step_size=0.1,
                     pgd_steps=100, lr=1e-3, momentum=0.9, weight_decay=1e-4,
                     lam=1.0, max_iter=1000)
  config.eval.batch_size = 512
  return config
