"""SalUn on the embedded digits, forgetting class 3.

jaxunlearn run --config configs/salun_digits.py

The method's defaults are the authors' CIFAR-10 ResNet-18 run (50,000 32x32
images); these values were tuned for the 1,797 8x8 digits and the small CNN.
"""
from jaxunlearn.config import get_config as base_config


def get_config():
  config = base_config()
  config.method = "salun"
  # The released loop (a D_f pass, then a D_r pass, each epoch): D_f is one
  # class, 135 images, against ~1,300 retain images, so a few forget steps
  # per epoch face ten times as many retain steps, which undo them at the
  # authors' learning rate; a larger step and smaller batches let class 3 be
  # forgotten.
  config.salun.update(
      lr=0.1,         # authors 0.013
      batch_size=32,  # authors 256: at 256 D_f is a single batch per epoch
      fraction=0.5,   # as the authors
      epochs=10,      # as the authors
  )
  return config
