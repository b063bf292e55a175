"""Segmentation unlearning: per-pixel DELETE loss, IoU, shapes data, VOC
builder, and the DELETE step under shard_map on 2 CPU devices."""
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxunlearn import parallel
from jaxunlearn.data import shapes, voc
from jaxunlearn.errors import UserError
from jaxunlearn.models import get_model
from jaxunlearn.optim import sgd
from jaxunlearn.state import TrainState
from jaxunlearn.tasks import segmentation as seg


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _numpy_pixel_delete(student, teacher, labels, valid):
  """Independent: loop over pixels, mask the label, KL with 0 log 0 = 0."""
  total, count = 0.0, 0.0
  b, h, w, c = student.shape
  for i in range(b):
    for y in range(h):
      for x in range(w):
        if not valid[i, y, x]:
          continue
        t = teacher[i, y, x].astype(np.float64).copy()
        t[labels[i, y, x]] = -np.inf
        q = np.exp(t - t.max())
        q /= q.sum()
        log_p = _log_softmax(student[i, y, x].astype(np.float64))
        nz = q > 0
        total += np.sum(q[nz] * (np.log(q[nz]) - log_p[nz]))
        count += 1
  return total / count


def test_pixel_delete_loss_matches_numpy_and_skips_invalid_pixels():
  rng = np.random.default_rng(0)
  student = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) * 3
  teacher = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) * 3
  labels = rng.integers(0, 5, size=(2, 3, 4)).astype(np.int32)
  labels[0, 0, :2] = 255  # ignore pixels
  batch_mask = np.array([1.0, 1.0], np.float32)
  for forget in (None, (2,)):
    valid = np.asarray(seg.pixel_valid(jnp.asarray(labels), jnp.asarray(batch_mask),
                                       forget))
    expected_valid = (labels != 255) & (np.isin(labels, forget) if forget else True)
    np.testing.assert_array_equal(valid, expected_valid.astype(np.float32))
    got = float(seg.pixel_delete_loss(student, teacher, labels, valid))
    want = _numpy_pixel_delete(student, teacher, labels, expected_valid)
    np.testing.assert_allclose(got, want, rtol=1e-5)
  # Garbage in an invalid pixel changes nothing.
  valid = np.asarray(seg.pixel_valid(labels, batch_mask, (2,)))
  student2 = student.copy()
  student2[valid == 0] = 1e3
  np.testing.assert_allclose(seg.pixel_delete_loss(student2, teacher, labels, valid),
                             seg.pixel_delete_loss(student, teacher, labels, valid),
                             rtol=1e-6)


def test_rest_weight_adds_unmasked_kl_on_the_other_pixels():
  rng = np.random.default_rng(1)
  student = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
  teacher = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 3, 3)).astype(np.int32)
  labels[1, 2, 2] = 255
  batch_mask = np.array([1.0, 0.0], np.float32)  # example 1 is padding
  forget = labels == 1
  forget[1] = False
  rest = (labels != 255) & ~forget
  rest[1] = False
  q = np.exp(_log_softmax(teacher.astype(np.float64)))
  plain_kl = np.sum(q * (np.log(q) - _log_softmax(student.astype(np.float64))), -1)
  want = (_numpy_pixel_delete(student, teacher, labels, forget)
          + 2.0 * plain_kl[rest].mean())
  got = seg.delete_objective(student, teacher, labels, batch_mask, (1,),
                             rest_weight=2.0)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  # pixels="all" (selected=None): the masked KL everywhere, no rest term.
  all_valid = (labels != 255) & (batch_mask[:, None, None] > 0)
  np.testing.assert_allclose(
      float(seg.delete_objective(student, teacher, labels, batch_mask, None,
                                 rest_weight=2.0)),
      _numpy_pixel_delete(student, teacher, labels, all_valid), rtol=1e-5)


def test_class_forget_split_takes_images_containing_the_class():
  data = shapes.load(seed=0, num_train=40, num_test=10, image_size=16)
  split = seg.class_forget_split(data["train"], data["test"], (2, 4))
  has = lambda s: np.array([bool(np.isin(m, (2, 4)).any()) for m in s.labels])
  assert has(split.forget).all() and not has(split.retain).any()
  assert has(split.test_forget).all() and not has(split.test_retain).any()
  assert len(split.forget) + len(split.retain) == 40
  assert sorted(np.r_[split.forget.ids, split.retain.ids]) == list(range(40))


def test_iou_and_miou_match_hand_made_case():
  labels = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
  preds = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
  conf = np.zeros((3, 3), np.int64)
  for t, p in zip(labels.ravel(), preds.ravel()):
    if t != 255:
      conf[t, p] += 1
  # class 0: TP 2, FP 1 (a 2 predicted 0), FN 1 -> 2/4; class 1: TP 2, FP 1,
  # FN 0 -> 2/3; class 2: TP 1, FN 1 -> 1/2.
  np.testing.assert_allclose(seg.class_iou(conf), [0.5, 2 / 3, 0.5])
  assert seg.mean_iou(conf, [0, 1]) == pytest.approx((0.5 + 2 / 3) / 2)
  assert seg.pixel_accuracy(conf) == pytest.approx(5 / 7)
  # The jitted confusion pass agrees (logits = one-hot predictions; padding
  # and 255 left out).
  mesh = parallel.make_mesh(1)

  class OneHot:
    def apply(self, variables, images, train=False):
      return jax.nn.one_hot(images[..., 0].astype(jnp.int32), 3), None
  fn = seg.confusion_fn(OneHot(), 3, mesh)
  images = np.stack([preds, np.zeros_like(preds)])[..., None].astype(np.float32)
  lab = np.stack([labels, np.zeros_like(labels)]).astype(np.int32)
  got = fn({}, images, lab, np.array([1.0, 0.0], np.float32))
  np.testing.assert_array_equal(np.asarray(got), conf)


def test_shapes_are_deterministic_and_masks_match_the_drawn_shapes():
  a = shapes.load(seed=3, num_train=20, num_test=5, image_size=24)
  b = shapes.load(seed=3, num_train=20, num_test=5, image_size=24)
  c = shapes.load(seed=4, num_train=20, num_test=5, image_size=24)
  for split in ("train", "test"):
    np.testing.assert_array_equal(a[split].images, b[split].images)
    np.testing.assert_array_equal(a[split].labels, b[split].labels)
  assert not np.array_equal(a["train"].images, c["train"].images)
  assert a["train"].labels.shape == (20, 24, 24)
  assert a["train"].labels.dtype == np.uint8
  np.testing.assert_array_equal(a["test"].ids, 20 + np.arange(5))
  split, drawn = shapes.generate(30, seed=1, split_index=0, image_size=32)
  for mask, shape_list in zip(split.labels, drawn):
    present = set(np.unique(mask)) - {0}
    assert present <= {s.label for s in shape_list}
    top = shape_list[-1]  # drawn last: never occluded
    assert top.label in present
    assert mask[top.cy, top.cx] == top.label  # the centre is inside every shape
    area = np.sum(shapes.shape_mask(top.label, top.cy, top.cx, top.size, 32, 32))
    assert np.sum(mask == top.label) >= area
  disc = shapes.shape_mask(1, 10, 10, 5, 32, 32)
  assert abs(disc.sum() - np.pi * 25) < 10


def _palette_png(mask, path):
  from PIL import Image
  pil = Image.fromarray(mask.astype(np.uint8), mode="P")
  pil.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
  pil.save(path)


def test_voc_builder_round_trips_a_fixture(tmp_path):
  from PIL import Image
  root = tmp_path / "manual" / "VOCdevkit" / "VOC2012"
  for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
    (root / sub).mkdir(parents=True)
  rng = np.random.default_rng(0)
  masks = {}
  for name in ("2007_000001", "2007_000002", "2007_000003"):
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(
        root / "JPEGImages" / f"{name}.jpg")
    mask = np.zeros((12, 16), np.uint8)
    mask[2:6, 4:10] = int(name[-1]) + 10   # an object class
    mask[2, 4:10] = 255                    # its border
    masks[name] = mask
    _palette_png(mask, root / "SegmentationClass" / f"{name}.png")
  (root / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000003\n")
  (root / "ImageSets/Segmentation/val.txt").write_text("2007_000002\n")
  splits = voc.load(str(tmp_path / "data"), str(tmp_path / "manual"), image_size=12)
  assert len(splits["train"]) == 2 and len(splits["test"]) == 1
  np.testing.assert_array_equal(splits["train"].ids, [0, 1])
  np.testing.assert_array_equal(splits["test"].ids, [2])
  assert splits["train"].images.shape == (2, 12, 12, 3)
  # 12x16 -> centre 12x12 crop (columns 2..13), no resize: the mask is exact.
  np.testing.assert_array_equal(splits["train"].labels[1], masks["2007_000003"][:, 2:14])
  np.testing.assert_array_equal(splits["test"].labels[0], masks["2007_000002"][:, 2:14])
  assert 255 in splits["test"].labels
  # The same tree as the published tar, read in place.
  import tarfile
  tar_dir = tmp_path / "manual_tar"
  tar_dir.mkdir()
  with tarfile.open(tar_dir / voc.TAR_NAME, "w") as tar:
    tar.add(tmp_path / "manual" / "VOCdevkit", arcname="VOCdevkit")
  import hashlib
  tar_sha256 = hashlib.sha256((tar_dir / voc.TAR_NAME).read_bytes()).hexdigest()
  from_tar = voc.load(str(tmp_path / "data_tar"), str(tar_dir), image_size=12,
                      accept_archives=tar_sha256)  # a fixture, not the official tar
  for split in ("train", "test"):
    np.testing.assert_array_equal(from_tar[split].labels, splits[split].labels)
    np.testing.assert_array_equal(from_tar[split].images, splits[split].images)


def test_voc_missing_files_fail_fast_in_one_line(tmp_path):
  start = time.perf_counter()
  with pytest.raises(UserError) as error:
    voc.load(str(tmp_path / "data"), str(tmp_path / "manual"), image_size=16)
  assert time.perf_counter() - start < 5
  message = str(error.value)
  assert "\n" not in message
  assert voc.TAR_NAME in message and str(tmp_path / "manual") in message


def _random_variables(model, image_shape, seed=0):
  """Variables of the model's shapes filled from NumPy (flax's jitted init of
  a U-Net takes ~10 s to compile on this CPU; the tests need any weights)."""
  shapes_tree = jax.eval_shape(model.init, jax.random.key(0),
                               jnp.zeros((1, *image_shape)))
  rng = np.random.default_rng(seed)
  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "var" in name:
      return np.ones(leaf.shape, leaf.dtype)
    if "mean" in name:
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) or 1
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(fill, dict(shapes_tree))


def test_delete_step_under_shard_map_on_2_devices_equals_1_device():
  assert len(jax.devices()) >= 2, "tests/conftest.py forces 2 CPU devices"
  data = shapes.load(seed=0, num_train=8, num_test=1, image_size=16)["train"]
  model = get_model("small_unet", num_classes=shapes.NUM_CLASSES, mean=shapes.MEAN,
                    std=shapes.STD, widths=(4, 8))
  variables = _random_variables(model, (16, 16, 3))
  tx = sgd(0.1, 0.9)
  batch = {"image": data.images.astype(np.float32) / 255.0,
           "label": data.labels.astype(np.int32),
           "mask": np.array([1] * 7 + [0], np.float32)}  # one padded example
  student = jax.tree.map(lambda x: x * 1.01, variables)  # differs from teacher
  step = seg.make_delete_step(model, tx, forget_classes=(2,),
                              pixels="forget_classes", rest_weight=10.0)
  key = jax.random.key(1)

  def run(mapped, mesh):
    state = seg.DeleteState(train=TrainState.create(student, tx), teacher=variables)
    state = parallel.replicate(state, mesh)
    new, metrics = mapped(state, parallel.shard_batch(batch, mesh), key)
    return jax.device_get(new.train), float(metrics["loss"])
  one, loss1 = run(parallel.jit_step(step, parallel.make_mesh(1)),
                   parallel.make_mesh(1))
  two, loss2 = run(parallel.shard_map_step(step, parallel.make_mesh(2)),
                   parallel.make_mesh(2))
  assert loss1 > 0
  assert loss2 == pytest.approx(loss1, rel=1e-5)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def test_unknown_method_and_pixel_mode_are_user_errors(tmp_path):
  import ml_collections
  from jaxunlearn import run as run_lib
  cfg = ml_collections.ConfigDict(dict(task="segmentation", method="neggrad"))
  with pytest.raises(UserError, match="delete or finetune"):
    run_lib.run(cfg, str(tmp_path))
  with pytest.raises(UserError, match="pixels"):
    seg.make_delete_step(None, None, forget_classes=(1,), pixels="some")


def test_small_unet_gives_pixel_logits_and_ignores_padding_in_batchnorm():
  model = get_model("small_unet", num_classes=5, mean=shapes.MEAN, std=shapes.STD,
                    widths=(4, 8))
  images = np.random.default_rng(0).uniform(size=(3, 8, 8, 3)).astype(np.float32)
  mask = np.array([1, 1, 0], np.float32)

  variables = _random_variables(model, (8, 8, 3))
  forward = jax.jit(lambda x: model.apply(variables, x, train=True, mask=mask,
                                          mutable=["batch_stats"])[0])
  logits, features = forward(images)
  assert logits.shape == (3, 8, 8, 5) and features.shape == (3, 8, 8, 4)
  changed = images.copy()
  changed[2] = 1.0  # only the padded example differs
  np.testing.assert_allclose(forward(changed)[0][:2], logits[:2], rtol=1e-5,
                             atol=1e-6)


def test_segmentation_job_end_to_end_tiny(tmp_path):
  """The whole job (train the original and the retrained model, DELETE per
  pixel, evaluate, report) on a tiny generated shapes set: the per-pixel
  metrics are computed for every model, the phases are checkpointed, and a
  second run reuses them and gives the same report."""
  import json

  import ml_collections

  from jaxunlearn import run as run_lib
  from jaxunlearn.config import get_config
  cfg = get_config()
  cfg.task, cfg.method, cfg.dataset = "segmentation", "delete", "shapes"
  cfg.model = ml_collections.ConfigDict(dict(name="small_unet", widths=(4, 8)))
  cfg.segmentation = seg.default_config()
  cfg.segmentation.update(num_train=48, num_test=24, image_size=12)
  cfg.forget.kind, cfg.forget.classes = "class", (2,)
  cfg.train.update(epochs=2, batch_size=16, augment=False)
  cfg.delete.update(epochs=1, batch_size=16, augment=False)
  cfg.eval.update(batch_size=16, evaluators=("segmentation",),
                  gap_metrics=("forget_iou", "retain_miou"))
  cfg.num_devices, cfg.progress = 1, False
  report = run_lib.run(cfg, str(tmp_path), log=lambda *_: None)
  assert report["task"] == "segmentation" and report["pixels"] == "forget_classes"
  assert report["forget"]["classes"] == [2] and report["forget"]["size"] > 0
  for role in ("original", "unlearned", "retrained"):
    metrics = report["models"][role]
    assert 0.0 <= metrics["pixel_acc"] <= 1.0 and len(metrics["class_iou"]) == 5
    assert metrics["retain_miou"] is not None
  # DELETE changed the weights (the report would say it returned them
  # unchanged).
  assert not any("unchanged" in note for note in report["notes"])
  saved = json.loads((tmp_path / "report.json").read_text())
  assert saved["models"] == json.loads(json.dumps(report["models"]))
  again = run_lib.run(cfg, str(tmp_path), log=lambda *_: None)
  assert again["models"] == report["models"]
