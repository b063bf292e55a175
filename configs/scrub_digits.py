"""SCRUB on the embedded digits, forgetting class 3.

jaxunlearn run --config configs/scrub_digits.py

The method's defaults are the authors' CIFAR-10 setting (50,000 32x32
images); these values were tuned for the 1,797 8x8 digits and the small CNN.
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.method = "scrub"
  config.scrub.update(
      lr=0.005,               # authors 5e-4: ~20 D_r steps per epoch here, not ~350
      epochs=5,               # authors 3
      msteps=3,               # authors 2
      batch_size=64,          # authors 128 (D_r)
      forget_batch_size=64,   # authors 512: D_f has 135 images here
      augment=True,           # authors off; the digits CNN was pretrained with it
      lr_decay_epochs=(),     # authors (3, 5, 9); tuned without decay
  )
  return config
