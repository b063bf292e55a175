"""L2UL against independent torch transcriptions of the authors' code:
advertorch's L2 PGD, their loaders, stop budget and importance
(csm9493/L2UL main_unlearn_cifar10_mixed_label_resnet18.py, utils.py)."""
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn.attacks import pgd_l2_targeted

torch = pytest.importorskip("torch")
# --------------------------------------------------------------------------
# PGD against an independent torch transcription of advertorch's L2PGDAttack
# (rand_init=True, targeted=True, clip [0, 1]; BorealisAI/advertorch
# attacks/utils.py rand_init_delta, attacks/iterative_projected_gradient.py).

def _torch_l2_norm(x):
  return x.abs().pow(2).reshape(len(x), -1).sum(1).pow(0.5)


def _torch_clamp_by_l2(x, eps):
  factor = torch.min(eps / _torch_l2_norm(x), torch.ones(len(x)))
  return (x.transpose(0, -1) * factor).transpose(0, -1)


def _torch_advertorch_l2_pgd(predict, x, y, uniform, eps, eps_iter, nb_iter):
  """advertorch's computation, the random draw ``uniform`` given."""
  delta = uniform.clone()                    # delta.uniform_(clip_min, clip_max)
  delta = delta - x
  delta = _torch_clamp_by_l2(delta, eps)
  delta = torch.clamp(x + delta, 0.0, 1.0) - x   # end of rand_init_delta
  delta = torch.clamp(x + delta, 0.0, 1.0) - x   # PGDAttack.perturb
  delta.requires_grad_()
  for _ in range(nb_iter):
    loss = -torch.nn.functional.cross_entropy(predict(x + delta), y, reduction="sum")
    loss.backward()
    grad = delta.grad.data
    norm = torch.max(_torch_l2_norm(grad), torch.ones(len(x)) * 1e-6)
    grad = (grad.transpose(0, -1) * (1.0 / norm)).transpose(0, -1)
    delta.data = delta.data + eps_iter * grad
    delta.data = torch.clamp(x + delta.data, 0.0, 1.0) - x
    delta.data = _torch_clamp_by_l2(delta.data, eps)
    delta.grad.data.zero_()
  return torch.clamp(x + delta, 0.0, 1.0).detach()


class _TinyMLP(flax.linen.Module):
  @flax.linen.compact
  def __call__(self, images, train=False, mask=None):
    hidden = jnp.tanh(flax.linen.Dense(16, name="hidden")(images.reshape(len(images), -1)))
    logits = flax.linen.Dense(10, name="out")(hidden)
    return logits, hidden


def _tiny_mlp_pair():
  model = _TinyMLP()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  p = jax.tree.map(np.asarray, variables["params"])
  def predict(x):
    h = torch.tanh(x.reshape(len(x), -1) @ torch.from_numpy(p["hidden"]["kernel"])
                   + torch.from_numpy(p["hidden"]["bias"]))
    return h @ torch.from_numpy(p["out"]["kernel"]) + torch.from_numpy(p["out"]["bias"])
  return model, variables, predict


@pytest.mark.parametrize("steps", [0, 1, 6])
def test_pgd_is_advertorchs_l2_pgd_given_the_same_uniform_draw(steps):
  """Start (steps = 0), first iterate and 6 iterates equal advertorch's on a
  tiny MLP: the start is the random image U[0,1] pulled to within eps of x
  (so on the eps-sphere, not at a uniform radius), clipped to [0, 1]."""
  model, variables, predict = _tiny_mlp_pair()
  x = jax.random.uniform(jax.random.key(1), (12, 8, 8, 1))
  x = x.at[:3].set(jnp.round(x[:3]))  # pixels at 0 and 1: the clip acts
  targets = jnp.arange(12) % 10
  key = jax.random.key(2)
  kw = dict(epsilon=1.5, step_size=0.4, steps=steps)
  ours = np.asarray(pgd_l2_targeted(model, variables, x, targets, key, **kw))
  uniform = torch.from_numpy(np.array(jax.random.uniform(key, x.shape)))
  theirs = _torch_advertorch_l2_pgd(
      predict, torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(targets)).long(),
      uniform, 1.5, 0.4, steps).numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-6)
  radius = np.sqrt(np.sum((ours - np.asarray(x)) ** 2, axis=(1, 2, 3)))
  assert np.all(radius <= 1.5 + 1e-5)
  if steps == 0:  # every random image is farther than eps: starts on the sphere
    far = np.asarray(_flat(uniform.numpy() - np.asarray(x))) > 1.5
    np.testing.assert_allclose(radius[far & (np.arange(12) >= 3)], 1.5, rtol=1e-5)


def _flat(x):
  return np.sqrt(np.sum(x ** 2, axis=tuple(range(1, x.ndim))))


def test_l2_normalisation_and_ball_clamp_handle_zero_like_advertorch():
  from jaxunlearn.attacks import clamp_l2, normalise_l2
  g = jnp.stack([jnp.zeros((2, 2, 1)), jnp.full((2, 2, 1), 1e-8),
                 jnp.full((2, 2, 1), 3.0)])
  np.testing.assert_array_equal(np.asarray(normalise_l2(g))[0], 0.0)
  # ||g|| = 2e-8 < 1e-6: divided by 1e-6, not normalised to length 1.
  np.testing.assert_allclose(np.asarray(normalise_l2(g))[1], 1e-2, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(normalise_l2(g))[2], 0.5, rtol=1e-6)
  clamped = np.asarray(clamp_l2(g, 1.0))
  np.testing.assert_array_equal(clamped[:2], np.asarray(g)[:2])  # inside: kept
  np.testing.assert_allclose(_flat(clamped[2:]), 1.0, rtol=1e-6)
