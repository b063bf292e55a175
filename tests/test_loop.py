"""The shared epoch loop: a NaN loss stops the run with a one-line fix."""
import jax
import ml_collections
import pytest

from jaxunlearn import parallel
from jaxunlearn.errors import Diverged, UserError
from jaxunlearn.models import get_model
from jaxunlearn.train import train_model


def test_nan_loss_is_a_user_error_that_says_it_diverged(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  recipe = ml_collections.ConfigDict(dict(epochs=3, batch_size=64, lr=1e12,
                                          momentum=0.9, weight_decay=0.0))
  with pytest.raises(Diverged, match="lower the learning rate"):  # a UserError
    train_model(model, recipe, splits["train"].take(range(256)), spec.image_shape,
                jax.random.key(0), parallel.make_mesh(1), progress=False)


def test_empty_split_is_a_user_error(digits):
  spec, splits = digits
  model = get_model("small_cnn", num_classes=10, mean=spec.mean, std=spec.std)
  recipe = ml_collections.ConfigDict(dict(epochs=1, batch_size=64, lr=0.1,
                                          momentum=0.9, weight_decay=0.0))
  with pytest.raises(UserError, match="empty"):
    train_model(model, recipe, splits["train"].take([]), spec.image_shape,
                jax.random.key(0), parallel.make_mesh(1), progress=False)
