"""Fashion-MNIST (60,000 + 10,000 real 28x28 images) with a model that
memorises its training set: the base of every ``*_fashion_mnist.py`` file
and of the experiments/fmnist_*.py studies.

jaxunlearn run --config configs/fashion_mnist.py             # DELETE, class 3
jaxunlearn run --config configs/fashion_mnist.py:scrub       # any method
jaxunlearn run --config configs/fashion_mnist.py:l2ul --config.forget.kind=random

The data come from the Debian package (``apt-get install
dataset-fashion-mnist``); nothing is downloaded at run time.

Model and recipe, and why (measured: benchmarks/results/cnn28.md):

- ``cnn28`` (16-32-64 convolutions, each followed by a 2x2 pool, flatten,
  a 512-unit dense layer): downsampling after the first convolution makes
  a training step several times cheaper than ``small_cnn`` at 28x28, and the
  dense layer gives it the capacity to fit every training sample.
- No augmentation, no weight decay, 15 epochs at batch 128, SGD lr 0.05
  with a cosine schedule: both regularisers are off because the studies
  need a model that memorises. Measured on seed 0 (train / test accuracy,
  train-vs-test loss-threshold attack): weight decay 5e-4 gives 0.985 /
  0.922 / 0.534, weight decay 0 gives 0.990 / 0.922 / 0.540, and a 4x
  wider dense layer (hidden 2048, same images/s) 0.980 / 0.919 / 0.533.
  The membership signal is real but small: train accuracy does not reach
  1.0 in 15 epochs, and more epochs would exceed the ~10 minute budget of
  a pretraining on 2 cores. The dataset's augmentation (flip, 2-pixel crop)
  would slow memorisation further.

These recipe numbers were measured on the reported test split (the
question was whether the model memorises at all, not a hyperparameter of
a method); the methods' hyperparameters are another matter (below).

A method's Fashion-MNIST tuning lives in ``configs/<method>_fashion_mnist.py``
(``tuned_section``); a method without such a file runs with its authors'
setting.
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.config import tuned_section

DATASET = "fashion_mnist"
MODEL = "cnn28"
TRAIN = dict(epochs=15, batch_size=128, lr=0.05, momentum=0.9,
             weight_decay=0.0, schedule="cosine", warmup_steps=0,
             augment=False, checkpoint_every=1)


def base():
  """Dataset, model and training recipe, no method chosen."""
  config = base_config()
  config.dataset = DATASET
  config.model.name = MODEL
  config.train.update(TRAIN)
  return config


def get_config(method: str = "delete"):
  config = base()
  config.method = method
  config[method] = tuned_section(method, DATASET)
  return config


def tuned(method: str, section: dict, evaluators=(), **forget):
  """The body of every ``<method>_fashion_mnist.py``: the base with
  ``method`` chosen, ``section`` over the method's default, the forget set's
  fields (``kind``, ``fraction``, ``count``, ``classes``) and ``evaluators``
  added to the default ones."""
  config = base()
  config.method = method
  config.forget.update(forget)
  config[method].update(section)
  config.eval.evaluators = tuple(config.eval.evaluators) + tuple(evaluators)
  return config


def per_forget_kind(method: str, sections: dict, forget_kind: str,
                    classes=(3,)):
  """A method's file tuned per forget kind (``FORGET_KINDS``, read by
  ``config.tuned_section``): ``sections[kind]`` over the method's default,
  forgetting a random 10% or ``classes`` (the class the tuning ran on)."""
  if forget_kind not in sections:
    raise ValueError(f"{method}_fashion_mnist.py:{forget_kind}: the forget kind "
                     f"must be one of {', '.join(sections)}")
  forget = (dict(classes=tuple(classes)) if forget_kind == "class"
            else dict(fraction=0.1))
  return tuned(method, sections[forget_kind], kind=forget_kind, **forget)
