"""L2UL on the embedded digits: 16 random training samples forgotten.

jaxunlearn run --config configs/l2ul_digits.py
jaxunlearn run --config configs/l2ul_digits.py --config.l2ul.variant=ga

Starts from the authors' CIFAR-10 setting (``l2ul.default_config()``) and
changes what does not carry over to 8x8 one-channel images and the small
CNN (tuned at k = 16, seed 0, experiments/l2ul_digits.py).
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.method = "l2ul"
  config.forget.kind = "random"
  config.forget.count = 16
  config.l2ul.update(
      # An 8x8 image has 64 pixels against CIFAR's 3072: eps 4 would allow
      # any image, so eps is scaled down with the image norm.
      epsilon=0.5,
      # 50 steps of 0.1 still travel 10 eps: enough to cross the smaller ball.
      pgd_steps=50,
      # With lambda = 1 and lr 1e-3 the small CNN is held so tightly that a
      # sample survives the whole budget; lambda 0.1 and lr 0.01 forget all 16.
      lr=0.01,
      lam=0.1,
      # The digits tuning's batch (320 examples at k = 16: 5 batches a pass;
      # the adversarial term weighs 64/(64+16) of the loss, not 256/272).
      adv_batch_size=64,
  )
  return config
