"""L2UL on CIFAR-10 with ResNet-18, the authors' settings (AAAI 2024).

Unlearning: ``l2ul.default_config()`` is the authors' CIFAR-10 setting
(csm9493/L2UL run_unlearn_cifar_imagenet.sh and
main_unlearn_cifar10_mixed_label_resnet18.py): eps 4, PGD step 0.1, 100 PGD
steps, 20 adversarial examples per sample, SGD lr 1e-3, momentum 0.9, weight
decay 1e-4, lambda 1, forget batches of 32, adversarial batches of 256, at
most 1000 (+1) passes; repeated here so the file reads on its own.
Pretraining: their main_pretrain_cifar10_resnet18.py (200 epochs, batch 128,
SGD lr 0.01, momentum 0.9, weight decay 5e-4, cosine over 200 epochs, random
crop 4 and flip). Their ResNet-18 keeps the 3x3 stem followed by
max-pooling ("cifar_maxpool"). Needs the CIFAR-10 archive; their released
weights (cifar10_pretrained_models/resnet18.pt) can be imported with
``--config.original_from``.
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.dataset = "cifar10"
  config.model.name = "resnet18"
  config.model.stem = "cifar_maxpool"
  config.train.update(epochs=200, batch_size=128, lr=0.01, weight_decay=5e-4,
                      schedule="cosine")
  config.method = "l2ul"
  config.forget.kind = "random"
  config.forget.count = 16
  config.l2ul.update(variant="full", n_adv=20, epsilon=4.0, pgd_step_size=0.1,
                     pgd_steps=100, lr=1e-3, momentum=0.9, weight_decay=1e-4,
                     lam=1.0, max_iter=1000, forget_batch_size=32,
                     adv_batch_size=256, importance="released")
  return config
