"""Mixed precision (config.model.dtype): every model computes its
convolutions and matmuls in bfloat16 when asked, keeps float32 parameters,
gradients, optimiser state and BatchNorm statistics, and returns float32
logits; the float32 build has no bfloat16 anywhere. The default digits
DELETE job runs end to end in bfloat16.

The programs are lowered from abstract values (``jax.eval_shape``), never
compiled: the text of every model's training step costs a fraction of a
second."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxunlearn import config as base_config
from jaxunlearn import parallel
from jaxunlearn import run as run_lib
from jaxunlearn.errors import UserError
from jaxunlearn.models import MODELS, get_model, init_variables
from jaxunlearn.state import TrainState
from jaxunlearn.tasks.faces import Margin, make_margin_step
from jaxunlearn.tasks.segmentation import make_ce_step
from jaxunlearn.train import make_supervised_step

CLASSES = 7  # a size no other dimension of these small models has

# name -> (model options for a small instance, image shape, its training step)
ZOO = {
    "small_cnn": (dict(widths=(4, 8, 8)), (8, 8, 1), make_supervised_step),
    "cnn28": (dict(widths=(4, 8, 8), hidden=16), (28, 28, 1), make_supervised_step),
    "resnet18": (dict(width=4, stage_sizes=(1, 1)), (8, 8, 3), make_supervised_step),
    "resnet50": (dict(width=4, stage_sizes=(1, 1)), (16, 16, 3), make_supervised_step),
    "vgg16_bn": (dict(layers=(4, "M", 8, "M"), hidden=16), (8, 8, 3),
                 make_supervised_step),
    "vit_s16": (dict(patch_size=4, hidden=16, depth=1, num_heads=2, mlp_dim=32),
                (8, 8, 3), make_supervised_step),
    "swin_t": (dict(patch_size=2, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                    window_size=2), (16, 16, 3), make_supervised_step),
    "iresnet18": (dict(stage_sizes=(1, 1), embedding_dim=16), (8, 8, 3),
                  make_supervised_step),
    "iresnet50": (dict(stage_sizes=(1, 1), embedding_dim=16, head="cosine"),
                  (8, 8, 3), make_supervised_step),
    "resnet18_mlp": (dict(width=4, hidden=(8, 8), stem="cifar"), (8, 8, 3),
                     make_supervised_step),
    "small_unet": (dict(widths=(4, 8)), (8, 8, 3), make_ce_step),
    "face_cnn": (dict(widths=(4, 8), embedding_dim=8), (8, 8, 3),
                 lambda model, tx: make_margin_step(model, tx,
                                                    Margin("arcface", 16.0, 0.5))),
}
# The cosine heads compute s * cos(theta) in float32 on purpose (models/margin.py).
COSINE_HEAD = {"iresnet50", "face_cnn"}


def test_the_zoo_is_covered():
  assert set(ZOO) == set(MODELS.names())


def _abstract_step(name, dtype):
  """(step, abstract state, abstract batch, abstract key) of ``name``."""
  options, shape, make_step = ZOO[name]
  model = get_model(name, num_classes=CLASSES, mean=(0.5,) * shape[-1],
                    std=(0.25,) * shape[-1], dtype=dtype, **options)
  tx = optax.sgd(0.1, momentum=0.9)
  images = jax.ShapeDtypeStruct((4, *shape), jnp.float32)
  state = jax.eval_shape(lambda key: TrainState.create(
      model.init(key, jnp.zeros((1, *shape))), tx), jax.random.key(0))
  labels = (4, *shape[:2]) if name == "small_unet" else (4,)
  batch = dict(image=images, label=jax.ShapeDtypeStruct(labels, jnp.int32),
               mask=jax.ShapeDtypeStruct((4,), jnp.float32))
  key = jax.eval_shape(lambda: jax.random.key(1))
  return (model, parallel.jit_step(make_step(model, tx), parallel.make_mesh(1)),
          state, batch, key)


def _matmul_lines(text):
  """The convolutions and dot_generals of a StableHLO module, one line each."""
  return [line for line in text.splitlines()
          if "stablehlo.convolution" in line or "stablehlo.dot_general" in line]


def _operand_types(line):
  """[(shape, element type)] of an op's operands and result."""
  return [(tuple(int(d) for d in dims.split("x") if d), kind) for dims, kind in
          re.findall(r"tensor<((?:\d+x)*)(bf16|f32)>", line.rsplit(" : ", 1)[-1])]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state(name):
  model, step, state, batch, key = _abstract_step(name, "bfloat16")
  text = step.lower(state, batch, key).as_text()
  lines = _matmul_lines(text)
  bf16 = [l for l in lines if {t for _, t in _operand_types(l)} == {"bf16"}]
  f32 = [l for l in lines if l not in bf16]
  assert bf16, name
  assert any("stablehlo.convolution" in l for l in bf16) or name == "vit_s16"
  if name in COSINE_HEAD:  # only the head's forward and backward dots
    assert f32 and all(any(CLASSES in shape for shape, _ in _operand_types(l))
                       for l in f32), f32
  else:
    assert not f32, f32
  # Parameters, gradients (the momentum is the gradient after one step),
  # optimiser state and BatchNorm statistics stay float32 after a step.
  new_state, metrics = jax.eval_shape(step, state, batch, key)
  for leaf in jax.tree.leaves((new_state.params, new_state.opt_state,
                               new_state.batch_stats, metrics)):
    assert leaf.dtype in (jnp.float32, jnp.int32), (name, leaf.dtype)
  grads = jax.eval_shape(jax.grad(lambda p, s, x: jnp.sum(model.apply(
      {"params": p, "batch_stats": s}, x)[0])),
      state.params, state.batch_stats, batch["image"])
  assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
  # Logits and features leave the model in float32: every loss sees float32.
  logits, features = jax.eval_shape(
      lambda v, x: model.apply(v, x), {"params": state.params,
                                       "batch_stats": state.batch_stats},
      batch["image"])
  assert logits.dtype == features.dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(ZOO))
def test_float32_has_no_bfloat16(name):
  _, step, state, batch, key = _abstract_step(name, "float32")
  text = step.lower(state, batch, key).as_text()
  assert "bf16" not in text
  assert _matmul_lines(text)


def test_one_bfloat16_step_keeps_float32_numbers():
  model, step, state, batch, key = _abstract_step("small_cnn", "bfloat16")
  rng = np.random.default_rng(0)
  variables = init_variables(model, (8, 8, 1), jax.random.key(0))
  tx = optax.sgd(0.1, momentum=0.9)
  state = TrainState.create(variables, tx)
  batch = dict(image=jnp.asarray(rng.uniform(size=(4, 8, 8, 1)), jnp.float32),
               label=jnp.asarray([0, 1, 2, 3], jnp.int32), mask=jnp.ones(4))
  new_state, metrics = step(state, batch, jax.random.key(1))
  leaves = jax.tree.leaves((new_state.params, new_state.opt_state,
                            new_state.batch_stats))
  assert all(x.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(x)))
             for x in leaves)
  assert metrics["loss"].dtype == jnp.float32


def test_an_unknown_dtype_is_a_one_line_user_error():
  with pytest.raises(UserError, match="float32, bfloat16") as error:
    get_model("small_cnn", num_classes=10, mean=(0.5,), std=(0.25,), dtype="float16")
  assert "\n" not in str(error.value)
  cfg = base_config.get_config()
  cfg.model.dtype = "half"
  with pytest.raises(UserError, match="model.dtype 'half'"):
    run_lib.validate(cfg)


def test_default_delete_job_in_bfloat16(data_dir, tmp_path):
  """The default job (configs/delete_digits.py) with model.dtype=bfloat16,
  a shorter pretraining: DELETE forgets class 3 and keeps the rest."""
  cfg = base_config.load_file(base_config.DEFAULT_RUN)
  cfg.data_dir, cfg.progress = data_dir, False
  cfg.model.dtype = "bfloat16"
  cfg.train.epochs = 12
  cfg.with_retrained = False
  report = run_lib.run(cfg, str(tmp_path), log=lambda *_: None)
  original, unlearned = report["models"]["original"], report["models"]["unlearned"]
  # Margins far from the measured values (original forget 1.0, unlearned
  # forget 0.0, remaining classes within a point): last-bit noise between
  # CPUs cannot flip them.
  assert original["forget_acc"] > 0.9 and original["test_retain_acc"] > 0.9
  assert unlearned["forget_acc"] < 0.1 and unlearned["test_forget_acc"] < 0.1
  assert unlearned["test_retain_acc"] > original["test_retain_acc"] - 0.05
  assert unlearned["retain_acc"] > original["retain_acc"] - 0.05
