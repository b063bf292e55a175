"""Every step donates what it replaces: after one call the input state's
buffers are deleted (XLA reused them for the output), so a step never holds
two copies of the model, its optimiser state and its teachers."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxunlearn import loop, parallel
from jaxunlearn.methods import (_common, bad_teacher, delete, dlfd, finetune, ieu,
                                l1_sparse, l2ul, neggrad, neggrad_plus,
                                random_label, salun, scrub)
from jaxunlearn.metrics import rcd
from jaxunlearn.models import get_model, init_variables
from jaxunlearn.optim import sgd
from jaxunlearn.state import TrainState
from jaxunlearn.tasks import faces, segmentation
from jaxunlearn.train import make_supervised_step

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def parts():
  model = get_model("small_cnn", num_classes=10, mean=(0.5,), std=(0.3,),
                    widths=(4, 8, 8))
  variables = jax.device_get(init_variables(model, SHAPE, jax.random.key(0)))
  rng = np.random.default_rng(0)

  def host_batch(n=8, shift=0):
    return {"image": rng.random((n, *SHAPE)).astype(np.float32),
            "label": ((np.arange(n) + shift) % 10).astype(np.int32),
            "mask": np.ones(n, np.float32)}
  return model, variables, host_batch


def assert_donated(tree):
  leaves = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]
  assert leaves and all(x.is_deleted() for x in leaves), (
      f"{sum(not x.is_deleted() for x in leaves)} of {len(leaves)} buffers kept")


def _run_step(make, state, batch, devices=1, wrap=parallel.jit_step):
  mesh = parallel.make_mesh(devices)
  state = parallel.replicate(state, mesh)
  step = wrap(make, mesh)
  new, _ = step(state, parallel.shard_batch(batch, mesh),
                jax.device_put(jax.random.key(1), parallel.replicated(mesh)))
  assert_donated(state)
  assert not any(x.is_deleted() for x in jax.tree.leaves(new))


def test_supervised_step(parts):
  model, variables, batch = parts
  tx = sgd(0.1, 0.9)
  _run_step(make_supervised_step(model, tx), TrainState.create(variables, tx), batch())


@pytest.mark.parametrize("retain_weight", [0.0, 0.5])
def test_delete_step(parts, retain_weight):
  model, variables, batch = parts
  tx = sgd(0.1, 0.9)
  b = batch()
  if retain_weight:
    b["paired"] = batch(shift=3)
  _run_step(delete.make_step(model, tx, retain_weight=retain_weight,
                             forget_class_mask=np.eye(10, dtype=bool)[3]),
            delete.DeleteState(TrainState.create(variables, tx), variables), b)


def test_shard_map_step(parts):
  model, variables, batch = parts
  tx = sgd(0.1, 0.9)
  _run_step(delete.make_step(model, tx),
            delete.DeleteState(TrainState.create(variables, tx), variables),
            batch(), devices=2, wrap=parallel.shard_map_step)


BASELINE_LOSSES = {
    "finetune": lambda v: (finetune.finetune_loss, {}),
    "neggrad": lambda v: (neggrad.neggrad_loss, {}),
    "neggrad_plus": lambda v: (neggrad_plus.make_loss(0.95), {}),
    "random_label": lambda v: (random_label.loss_fn, {}),
    "l1_sparse": lambda v: (l1_sparse.make_loss(5e-4, 10, True), {}),
    "bad_teacher": lambda v: (bad_teacher.make_loss(1.0), {"good": v, "bad": v}),
    "scrub_max": lambda v: (scrub.make_loss("max", scrub.default_config()),
                            {"teacher": v}),
    "scrub_min": lambda v: (scrub.make_loss("min", scrub.default_config()),
                            {"teacher": v}),
    "salun": lambda v: (salun.random_label_loss(10), {}),
}


@pytest.mark.parametrize("name", sorted(BASELINE_LOSSES))
def test_baseline_steps(parts, name):
  model, variables, batch = parts
  loss_fn, frozen = BASELINE_LOSSES[name](variables)
  tx = (salun.masked_sgd(ml_collections.ConfigDict(dict(lr=0.1)),
                         jax.tree.map(np.ones_like, variables["params"]))
        if name == "salun" else sgd(0.1, 0.9))
  b = dict(batch(), paired=batch(shift=3))
  _run_step(_common.make_step(model, tx, loss_fn),
            _common.MethodState(TrainState.create(variables, tx), frozen), b,
            devices=2)


def test_ieu_step(parts):
  model, variables, batch = parts
  _run_step(ieu.make_step(model, ieu.default_config(), 10), ieu.init_state(variables),
            dict(batch(), paired=batch(shift=3)), devices=2)


def test_face_and_segmentation_steps(parts):
  face_model = get_model("face_cnn", num_classes=5, mean=(0.5,) * 3, std=(0.3,) * 3,
                         widths=(4, 8), embedding_dim=6, scale=8.0)
  images = np.random.default_rng(1).random((8, 8, 8, 3)).astype(np.float32)
  face_vars = jax.device_get(init_variables(face_model, (8, 8, 3), jax.random.key(1)))
  tx = sgd(0.1, 0.9)
  _run_step(faces.make_margin_step(face_model, tx, faces.Margin("arcface", 8.0, 0.3)),
            TrainState.create(face_vars, tx),
            {"image": images, "label": np.arange(8) % 5, "mask": np.ones(8, np.float32)})
  unet = get_model("small_unet", num_classes=3, mean=(0.5,) * 3, std=(0.3,) * 3,
                   widths=(4, 8))
  unet_vars = jax.device_get(init_variables(unet, (8, 8, 3), jax.random.key(2)))
  pixels = {"image": images, "label": (np.arange(8 * 64) % 3).reshape(8, 8, 8),
            "mask": np.ones(8, np.float32)}
  _run_step(segmentation.make_ce_step(unet, tx), TrainState.create(unet_vars, tx),
            pixels)
  _run_step(segmentation.make_delete_step(unet, tx, forget_classes=(2,)),
            segmentation.DeleteState(TrainState.create(unet_vars, tx), unet_vars),
            pixels)


@pytest.mark.parametrize("devices", [1, 2])
def test_dlfd_steps(parts, devices):
  """Synthesis and fine-tune steps donate the state, the ascent step δ."""
  model, variables, batch = parts
  cfg = ml_collections.ConfigDict(dict(dlfd.default_config(), steps=2,
                                      sinkhorn_max_iters=10))
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
  mesh = parallel.make_mesh(devices)
  rep = parallel.replicated(mesh)
  steps = dlfd.jit_each_step(model, tx, cfg, model.mean, model.std, mesh)
  fresh = lambda: parallel.replicate(TrainState.create(variables, tx), mesh)
  b, f = parallel.shard_batch(batch(), mesh), parallel.shard_batch(batch(shift=3), mesh)
  w_r, key = jax.device_put((np.float32(0.5), jax.random.key(4)), rep)
  for name in ("synth", "finetune"):
    state = fresh()
    args = (b, f, w_r, key) if name == "synth" else (b, key)
    getattr(steps, name)(state, *args)
    assert_donated(state)
  state = fresh()
  features = steps.fixed(state, b, f, key)
  delta = jax.device_put(np.zeros((8, *SHAPE), np.float32), parallel.batch_sharded(mesh))
  delta_out, stats = steps.ascend(state, b, f, features, w_r, key,
                                  jax.device_put(np.int32(0), rep), delta,
                                  parallel.replicate(state.batch_stats, mesh))
  assert_donated(delta)
  steps.finish(state, b, features, w_r, key, delta_out, stats)
  # The step's batch statistics are the ascent's (``stats``): the state's own
  # are not an input of the program, nothing to donate.
  assert_donated((state.params, state.opt_state, state.step))


@pytest.mark.parametrize("device_loop", [False, True])
def test_l2ul_loop_donates_its_carry(parts, device_loop):
  model, variables, batch = parts
  cfg = ml_collections.ConfigDict(dict(l2ul.default_config(), forget_batch_size=4,
                                      adv_batch_size=4, max_iter=1))
  tx = sgd(cfg.lr, cfg.momentum, cfg.weight_decay)
  # Toward label 0: a random model's stop rule does not hold at the start.
  cond, body = l2ul.make_loop(model, tx, cfg, relabel=0)
  forget = batch(6)
  adv_x = jnp.asarray(batch(6)["image"])
  omega = jax.tree.map(np.ones_like, variables["params"])
  jit_fn, carry, args = l2ul.prepare_loop(
      tx, parallel.make_mesh(1), variables, omega, jax.random.key(3),
      (forget["image"], forget["label"]), forget, adv_x, jnp.arange(6) % 10)
  if device_loop:
    whole = lambda c, *a: jax.lax.while_loop(lambda x: cond(x, *a),
                                             lambda x: body(x, *a), c)
    new = jit_fn(whole, donate=True)(carry, *args)
  else:
    new = jit_fn(body, donate=True)(carry, *args)
  assert_donated(carry)
  assert int(jax.device_get(new[0])) >= 1
  assert not any(x.is_deleted() for x in jax.tree.leaves(args))  # θ0, D_f, ...


def test_rcd_step_donates_its_carry(parts):
  model, variables, batch = parts
  b = batch()
  start, stats, images, labels = jax.device_put(
      (variables["params"], variables["batch_stats"], b["image"], b["label"]))
  index = jax.device_put(np.arange(4))
  carry, _, eval_images, eval_labels = rcd._host_start(
      model, 0.01, 0.9, start, stats, images, labels, index)
  rcd._host_step(model, 0.01, 0.9, carry, start, images, labels, eval_images,
                 eval_labels, index)
  assert_donated(carry)
  assert not any(x.is_deleted() for x in jax.tree.leaves(start))


def test_augmenter_donates_the_batch(parts):
  _, _, batch = parts
  mesh = parallel.make_mesh(2)
  augment = loop._augmenter(mesh, loop.Augment(1, True))
  sharded = parallel.shard_batch(batch(), mesh)
  augment(jax.device_put(jax.random.key(0), parallel.replicated(mesh)), sharded)
  assert_donated(sharded)
