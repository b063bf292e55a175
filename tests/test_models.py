"""Models: parameter counts of the reference architectures, outputs, the
PyTorch BatchNorm update, the max pool's gradients, and checkpoints of
another architecture."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn import checkpoint as ckpt_lib
from jaxunlearn.errors import UserError
from jaxunlearn.models import get_model
from jaxunlearn.models.layers import BatchNorm, max_pool

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def abstract_variables(name, size, num_classes=1000, **kwargs):
  model = get_model(name, num_classes=num_classes, mean=MEAN, std=STD, **kwargs)
  return jax.eval_shape(
      lambda k: model.init(k, jnp.zeros((1, size, size, 3))), jax.random.key(0))


def num_params(variables):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name,size,kwargs,expected", [
    # torchvision resnet18 / resnet50 / vgg16_bn, timm vit_small_patch16_224,
    # torchvision swin_t (= timm swin_tiny_patch4_window7_224).
    ("resnet18", 224, {"stem": "imagenet"}, 11_689_512),
    ("resnet50", 224, {}, 25_557_032),
    ("vgg16_bn", 224, {}, 138_365_992),
    ("vit_s16", 224, {}, 22_050_664),
    ("swin_t", 224, {}, 28_288_354),
])
def test_parameter_counts_match_the_reference_architectures(name, size, kwargs,
                                                            expected):
  assert num_params(abstract_variables(name, size, **kwargs)) == expected


def _iresnet_count(stages, num_classes, size=112):
  """insightface iresnet, counted layer by layer (the BatchNorm1d scale of the
  embedding is frozen at 1 there, so it is not a parameter here)."""
  bn = lambda c: 2 * c
  total = 9 * 3 * 64 + bn(64) + 64  # stem conv, bn, prelu
  inplanes = 64
  for stage, blocks in enumerate(stages):
    planes = 64 * 2**stage
    for b in range(blocks):
      total += bn(inplanes) + 9 * inplanes * planes + bn(planes) + planes
      total += 9 * planes * planes + bn(planes)
      if b == 0:  # every stage starts with stride 2: projection shortcut
        total += inplanes * planes + bn(planes)
      inplanes = planes
  final = size // 16
  total += bn(512) + (512 * final * final * 512 + 512) + 512  # bn2, fc, features bias
  return total + 512 * num_classes + num_classes


@pytest.mark.parametrize("name,stages", [("iresnet18", (2, 2, 2, 2)),
                                         ("iresnet50", (3, 4, 14, 3))])
def test_iresnet_parameter_count(name, stages):
  assert num_params(abstract_variables(name, 112, 100)) == _iresnet_count(stages, 100)


SMALL = [
    ("small_cnn", {}),
    ("resnet18", {"stem": "cifar_maxpool", "width": 8}),
    ("resnet50", {"stem": "cifar", "width": 4, "stage_sizes": (1, 1, 1, 1)}),
    ("vgg16_bn", {"head": "cifar", "layers": (8, "M", 16, "M")}),
    ("vit_s16", {"patch_size": 8, "hidden": 16, "depth": 2, "num_heads": 2,
                 "mlp_dim": 32}),
    ("swin_t", {"patch_size": 2, "embed_dim": 8, "depths": (2, 2),
                "num_heads": (1, 2), "window_size": 4}),
    ("iresnet18", {"embedding_dim": 16, "head": "cosine"}),
]


@pytest.mark.parametrize("name,kwargs", SMALL,
                         ids=[n + "-" + str(k.get("head", "")) for n, k in SMALL])
def test_models_give_logits_features_and_finite_gradients(name, kwargs):
  model = get_model(name, num_classes=5, mean=MEAN, std=STD, **kwargs)
  images = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3))
  mask = jnp.array([1.0, 1.0, 1.0, 0.0])

  @jax.jit  # one compilation per model: init, training-mode grad, inference
  def check(images):
    variables = model.init(jax.random.key(0), images)

    def loss(params):
      (logits, features), _ = model.apply(
          {**variables, "params": params}, images, train=True, mask=mask,
          mutable=["batch_stats"])
      return jnp.sum(logits**2), (logits, features)

    grads, (logits, features) = jax.grad(loss, has_aux=True)(variables["params"])
    return grads, logits, features, model.apply(variables, images)[0]

  grads, logits, features, eval_logits = check(images)
  assert logits.shape == (4, 5) and features.ndim == 2 and features.shape[0] == 4
  assert eval_logits.shape == (4, 5)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


def test_cnn28_runs_on_28x28_grey_images_with_its_default_shape():
  """The Fashion-MNIST model at its default widths: 28 -> 14 -> 7 -> 3 after
  the three pools, so the dense layer sees a 3x3x64 map."""
  model = get_model("cnn28", num_classes=10, mean=(0.286,), std=(0.353,))
  images = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
  variables = model.init(jax.random.key(0), images)
  assert variables["params"]["fc"]["kernel"].shape == (3 * 3 * 64, 512)
  logits, features = model.apply(variables, images)
  assert logits.shape == (2, 10) and features.shape == (2, 512)
  assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("shape,window", [
    ((3, 8, 8, 5), (2, 2)), ((2, 7, 9, 3), (2, 2)), ((2, 9, 7, 4), (3, 3)),
    ((2, 6, 6, 2), (2, 3))])
def test_max_pool_has_flax_values_and_gradients_under_ties(shape, window):
  # Values in {0, 1, 2}: most windows hold tied maxima, where the gradient
  # must go to the first one (row-major), as nn.max_pool's select-and-scatter
  # sends it; a plain jnp.max reduction would split it.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 3, shape), jnp.float32)
  flax_pool = lambda x: nn.max_pool(x, window, strides=window)
  ours = lambda x: max_pool(x, window)
  expected, flax_vjp = jax.vjp(flax_pool, x)
  got, our_vjp = jax.vjp(ours, x)
  cotangent = jnp.asarray(rng.normal(size=expected.shape), jnp.float32)
  tangent = jnp.asarray(rng.normal(size=shape), jnp.float32)
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(our_vjp(cotangent)[0], flax_vjp(cotangent)[0])
  np.testing.assert_array_equal(jax.jvp(ours, (x,), (tangent,))[1],
                                jax.jvp(flax_pool, (x,), (tangent,))[1])
  n, h, w = expected.shape[:3]
  split = lambda x: x[:, :h * window[0], :w * window[1]].reshape(
      n, h, window[0], w, window[1], -1).max(axis=(2, 4))
  assert not np.array_equal(jax.vjp(split, x)[1](cotangent)[0],
                            flax_vjp(cotangent)[0])


def test_max_pool_gradient_is_pytorchs():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  x = rng.integers(0, 3, (2, 6, 7, 3)).astype(np.float32)
  cotangent = rng.normal(size=(2, 3, 3, 3)).astype(np.float32)
  ref = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_()
  torch.nn.functional.max_pool2d(ref, 2).backward(
      torch.from_numpy(cotangent).permute(0, 3, 1, 2))
  _, vjp = jax.vjp(lambda x: max_pool(x, (2, 2)), jnp.asarray(x))
  np.testing.assert_array_equal(vjp(jnp.asarray(cotangent))[0],
                                ref.grad.permute(0, 2, 3, 1).numpy())


def test_torch_bn_updates_running_variance_as_pytorch():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).normal(2.0, 3.0, (6, 5, 5, 4)).astype(np.float32)
  ref = torch.nn.BatchNorm2d(4)
  ref.train()
  y_ref = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
  bn = BatchNorm(unbiased_running_var=True)
  variables = bn.init(jax.random.key(0), x)
  y, updated = bn.apply(variables, x, mutable=["batch_stats"])
  np.testing.assert_allclose(y, y_ref.detach().numpy(), atol=1e-5)
  np.testing.assert_allclose(updated["batch_stats"]["mean"],
                             ref.running_mean.numpy(), rtol=1e-5)
  np.testing.assert_allclose(updated["batch_stats"]["var"],
                             ref.running_var.numpy(), rtol=1e-5)
  # flax's convention (biased variance) differs by the factor n / (n - 1).
  _, biased = BatchNorm().apply(variables, x, mutable=["batch_stats"])
  assert not np.allclose(biased["batch_stats"]["var"], ref.running_var.numpy(),
                         rtol=1e-5)


def test_checkpoint_of_another_architecture_is_a_one_line_error(tmp_path):
  small = get_model("small_cnn", num_classes=10, mean=MEAN, std=STD)
  other = get_model("small_cnn", num_classes=7, mean=MEAN, std=STD)
  x = jnp.zeros((1, 8, 8, 3))
  mngr = ckpt_lib.manager(str(tmp_path / "ckpt"))
  ckpt_lib.save(mngr, 0, small.init(jax.random.key(0), x))
  abstract = jax.eval_shape(lambda k: other.init(k, x), jax.random.key(0))
  with pytest.raises(UserError) as error:
    ckpt_lib.restore(mngr, abstract)
  message = str(error.value)
  assert "\n" not in message
  assert "['params']['head']['bias'] has shape (10,) in the checkpoint but (7,)" in message

