"""DLFD on Fashion-MNIST (cnn28): a random 10% forgotten.

jaxunlearn run --config configs/dlfd_fashion_mnist.py
jaxunlearn run --config configs/dlfd_fashion_mnist.py --config.dlfd.variant=released

The authors' MUFAC setting (``dlfd.default_config()``) with the gate's
thresholds chosen by experiments/fmnist_tune.py on 5,000 training images
held out from the original (config.validation; the test split is not
read), seed 0, the paper variant, over forget_threshold {0.15, 0.065,
0.05}. The rule, fixed before any result: among the points that lose at
most 2 held-out points, the smallest balanced forgetting score of D_f
against the held-out images (experiments/results/fmnist_tune_dlfd.md).

Why the thresholds move: the authors set 0.15 and 0.09 against a MUFAC
original that scored 0.19. This original's gate scores 0.075 at the start
(the authors' unbalanced score: 6,000 forgotten against 5,000 validation
images, whose floor, the score of guessing the larger set, is 0.045), so
at 0.15 no step synthesises and DLFD is a fine-tune pass. 0.065
synthesises twice; 0.05 synthesises 308 of 1,547 steps and takes the
balanced forgetting score from 0.030 to 0.006 at a 0.9-point held-out
loss. max_forgetting_score is 0.05 too: the authors' ratio (0.6, giving
0.03) is under the floor, where no model could be selected.

The search ran on the paper variant only. The released variant fine-tunes
with the running BatchNorm statistics after its first step; at the
authors' thresholds its gate score never reaches 0.05 (lowest 0.0504 in
1,688 steps; experiments/results/fmnist_dlfd.md). At 0.05 it synthesises
at every step, only step 3 scores under 0.05, and the selection keeps that
damaged model (test accuracy 0.823). The released variant runs better at
the authors' thresholds (``--config.dlfd.forget_threshold=0.15
--config.dlfd.max_forgetting_score=0.09``: test accuracy 0.916); no
search has been run for it.
"""
import os

from jaxunlearn.config import load_module

DLFD = dict(forget_threshold=0.05, max_forgetting_score=0.05)
FASHION_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "fashion_mnist.py")  # dataset, model, recipe


def get_config():
  # every method of a comparison, not only DLFD, reports the forgetting score
  return load_module(FASHION_MNIST).tuned(
      "dlfd", DLFD, evaluators=("forgetting_score",), kind="random",
      fraction=0.1)
