"""Class forgetting in semantic segmentation (DELETE per pixel; fine-tune baseline).

DELETE (Zhou et al., CVPR 2025) applied per pixel: the frozen original model
(teacher, inference mode) gives logits at every pixel; the pixel's own label
is set to -1e10, ``q = softmax(mask_y(f_θ0(x)))``, and the student (training
mode) minimises ``KL(q || softmax(f_θ(x)))`` averaged over valid pixels.

Which pixels are valid (``segmentation.pixels``):

- ``"forget_classes"``: only pixels labelled with a forgotten class. The rest
  of a forget image (background, other objects) gets no push at all.
- ``"all"``: every non-ignore pixel of a forget image (the literal reading of
  "the same loss per pixel"): background pixels are pushed away from
  background too.

``segmentation.rest_weight`` (an extension, still forget data only): with
``"forget_classes"``, the other valid pixels of the forget images are
distilled from the unmasked teacher with this weight, so the background and
the remaining objects in them stay where the teacher had them.

Forget set for class forgetting: the training images that contain a
forgotten class; retain = the other training images; the test set is split
the same way. Metrics from one confusion matrix per (model, split):

- ``forget_iou``: IoU of the forgotten class(es) (mean) on D_t,f;
- ``retain_miou``: mIoU over the remaining classes (background included) on
  D_t,r (images without a forgotten class);
- ``test_miou_remaining``: the same classes on the whole test set (counts
  forgotten pixels predicted as a remaining class as false positives);
- ``pixel_acc`` (whole test set), ``class_iou`` (per class, whole test set),
  ``forget_set_iou`` (forgotten classes on D_f: did the training images
  themselves stop being segmented?).

The evaluator ``segmentation`` reports them (``config.eval.evaluators``);
the per-image ones (accuracy, MIA) do not apply. No augmentation here: the
library's augmenter moves images, not masks.
"""
from __future__ import annotations

from typing import Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxunlearn import batches, loop, optim, parallel
from jaxunlearn.batches import ForgetSplit, Split
from jaxunlearn.errors import UserError
from jaxunlearn.losses import kl_divergence, weighted_mean
from jaxunlearn.methods import METHODS as ALL_METHODS
from jaxunlearn.methods import Method, UnlearnTask
from jaxunlearn.methods.delete import forget_class_mask_for, masked_teacher_targets
from jaxunlearn.metrics.evaluators import register as register_evaluator
from jaxunlearn.models import get_model
from jaxunlearn.state import TrainState, apply_eval, apply_train, gradient_update
from jaxunlearn.tasks import Task, TaskData, register, three_keys
from jaxunlearn.models import for_axis

IGNORE_LABEL = 255
PIXEL_MODES = ("forget_classes", "all")
METHODS = ("delete", "finetune")


def default_config() -> ml_collections.ConfigDict:
  """``config.segmentation``: data size, which pixels DELETE pushes."""
  return ml_collections.ConfigDict(dict(
      num_train=2000, num_test=500, image_size=32,  # shapes; VOC: image_size
      # "all" also pushes background pixels off background, which wrecks the
      # remaining classes (experiments/results/segmentation_shapes.md).
      pixels="forget_classes",
      # DELETE on forget-class pixels + rest_weight x unmasked distillation on
      # the other pixels of the forget images (0 = the paper's loss alone; see
      # delete_objective): without it the rest of a forget image drifts.
      rest_weight=10.0,
  ))


# ----------------------------------------------------------------- losses

def pixel_valid(labels: jnp.ndarray, batch_mask: jnp.ndarray,
                forget_classes: Optional[Sequence[int]] = None) -> jnp.ndarray:
  """Float [B,H,W]: 1 where the pixel counts (real example, not 255, and —
  when ``forget_classes`` is given — labelled with a forgotten class)."""
  valid = (labels != IGNORE_LABEL) & (batch_mask[:, None, None] > 0)
  if forget_classes is not None:
    in_forget = jnp.zeros(labels.shape, bool)
    for c in forget_classes:
      in_forget = in_forget | (labels == c)
    valid = valid & in_forget
  return valid.astype(jnp.float32)


def pixel_delete_loss(student_logits: jnp.ndarray, teacher_logits: jnp.ndarray,
                      labels: jnp.ndarray, valid: jnp.ndarray,
                      forget_class_mask: Optional[jnp.ndarray] = None,
                      axis_name: Optional[str] = None) -> jnp.ndarray:
  """mean over valid pixels of KL(q || softmax(student)), q = softmax of the
  teacher logits with the pixel's label (and ``forget_class_mask``) at -1e10.

  Logits [B,H,W,C], labels [B,H,W] (255 = ignore), valid [B,H,W] in {0,1}.
  """
  safe_labels = jnp.where(labels == IGNORE_LABEL, 0, labels)
  q = masked_teacher_targets(teacher_logits, safe_labels, forget_class_mask)
  per_pixel = kl_divergence(q, student_logits)
  return weighted_mean(per_pixel, valid, axis_name)


def delete_objective(student_logits, teacher_logits, labels, batch_mask,
                     selected: Optional[Sequence[int]],
                     forget_class_mask: Optional[jnp.ndarray] = None,
                     rest_weight: float = 0.0,
                     axis_name: Optional[str] = None) -> jnp.ndarray:
  """The segmentation DELETE loss of one batch.

  ``selected`` = the forgotten classes (``pixels="forget_classes"``: the
  masked KL only on their pixels) or None (``"all"``: on every non-ignore
  pixel). ``rest_weight`` x the unmasked KL(softmax(teacher) ||
  softmax(student)) over the remaining valid pixels (only with ``selected``).
  """
  valid = pixel_valid(labels, batch_mask, selected)
  loss = pixel_delete_loss(student_logits, teacher_logits, labels, valid,
                           forget_class_mask, axis_name)
  if rest_weight and selected is not None:
    rest = pixel_valid(labels, batch_mask) - valid
    teacher_probs = jax.nn.softmax(teacher_logits.astype(jnp.float32))
    loss = loss + rest_weight * weighted_mean(
        kl_divergence(teacher_probs, student_logits), rest, axis_name)
  return loss


def pixel_cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-pixel CE [B,H,W]; ignore pixels get 0 (weight them out)."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  safe_labels = jnp.where(labels == IGNORE_LABEL, 0, labels).astype(jnp.int32)
  return -jnp.take_along_axis(log_probs, safe_labels[..., None], axis=-1)[..., 0]


# ------------------------------------------------------------------ steps

def make_ce_step(model, tx):
  """``step(state, batch, key, axis_name=None)``: SGD on mean pixel CE."""
  def step(state: TrainState, batch: dict, key: jax.Array, axis_name=None):
    del key
    net = for_axis(model, axis_name)
    valid = pixel_valid(batch["label"], batch["mask"])

    def loss_fn(params):
      logits, _, batch_stats = apply_train(net, params, state.batch_stats,
                                           batch["image"], batch["mask"])
      loss = weighted_mean(pixel_cross_entropy(logits, batch["label"]), valid,
                           axis_name)
      return loss, (batch_stats, {})
    return gradient_update(state, tx, loss_fn, axis_name)
  return step


@flax.struct.dataclass
class DeleteState:
  train: TrainState
  teacher: dict  # frozen original variables


def make_delete_step(model, tx, *, forget_classes: Sequence[int],
                     pixels: str = "forget_classes", freeze_bn: bool = False,
                     forget_class_mask: Optional[jnp.ndarray] = None,
                     rest_weight: float = 0.0):
  """``step(state, batch, key, axis_name=None)``: one DELETE step per pixel.

  Teacher: the frozen original in inference mode. Student: training mode
  (BatchNorm batch statistics over the forget batch) unless ``freeze_bn``.
  ``rest_weight > 0`` (with ``pixels="forget_classes"``) adds
  ``rest_weight`` x the plain, unmasked distillation KL(softmax(teacher) ||
  softmax(student)) averaged over the other valid pixels of the same forget
  images: still forget data only, but the background and the remaining
  objects in them are held where the teacher had them.
  """
  if pixels not in PIXEL_MODES:
    raise UserError(f"unknown segmentation.pixels {pixels!r}; use "
                    + " or ".join(PIXEL_MODES))
  selected = tuple(forget_classes) if pixels == "forget_classes" else None

  def step(state: DeleteState, batch: dict, key: jax.Array, axis_name=None):
    del key
    net = for_axis(model, axis_name)
    teacher_logits, _ = apply_eval(net, state.teacher, batch["image"])
    teacher_logits = jax.lax.stop_gradient(teacher_logits)

    def loss_fn(params):
      if freeze_bn:
        batch_stats = state.train.batch_stats
        logits, _ = apply_eval(net, {"params": params, "batch_stats": batch_stats},
                               batch["image"])
      else:
        logits, _, batch_stats = apply_train(net, params, state.train.batch_stats,
                                             batch["image"], batch["mask"])
      loss = delete_objective(logits, teacher_logits, batch["label"],
                              batch["mask"], selected, forget_class_mask,
                              rest_weight, axis_name)
      return loss, (batch_stats, {})

    train, metrics = gradient_update(state.train, tx, loss_fn, axis_name)
    return state.replace(train=train), metrics
  return step


# --------------------------------------------------------------- metrics

def confusion_fn(model, num_classes: int, mesh):
  """jitted ``(variables, images, labels, mask) -> [C,C]`` confusion counts
  (rows = true class, columns = prediction; 255 and padding left out)."""
  def fn(variables, images, labels, mask):
    logits, _ = apply_eval(model, variables, images)
    pred = jnp.argmax(logits, -1)
    valid = (labels != IGNORE_LABEL) & (mask[:, None, None] > 0)
    index = jnp.where(valid, labels.astype(jnp.int32) * num_classes + pred, 0)
    # Integer counts: float32 stops being exact at 2^24 pixels (VOC val at
    # 128 px has 24M).
    counts = jnp.bincount(index.reshape(-1), weights=valid.reshape(-1).astype(
        jnp.int32), length=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)
  rep, data = parallel.replicated(mesh), parallel.batch_sharded(mesh)
  return jax.jit(fn, in_shardings=(rep, data, data, data), out_shardings=rep)


def confusion_matrix(fn, variables, split: Split, batch_size: int, mesh,
                     num_classes: int) -> np.ndarray:
  """Sums the per-batch confusion counts over ``split`` (one host sync)."""
  total = jnp.zeros((num_classes, num_classes), jnp.int32)
  if len(split) == 0:
    return np.zeros((num_classes, num_classes), np.int64)
  for batch in batches.in_order(split, batch_size):
    batch = parallel.shard_batch(batch, mesh)
    total = total + fn(variables, batch["image"], batch["label"], batch["mask"])
  return np.asarray(jax.device_get(total)).astype(np.int64)


def class_iou(confusion: np.ndarray) -> np.ndarray:
  """Per-class IoU = TP / (TP + FP + FN); NaN where the class is absent from
  both the labels and the predictions."""
  tp = np.diag(confusion).astype(np.float64)
  union = confusion.sum(0) + confusion.sum(1) - tp
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(confusion: np.ndarray, classes: Sequence[int]) -> Optional[float]:
  """Mean IoU over ``classes``, skipping classes absent from the split."""
  values = class_iou(confusion)[list(classes)]
  values = values[~np.isnan(values)]
  return float(values.mean()) if values.size else None


def pixel_accuracy(confusion: np.ndarray) -> float:
  return float(np.trace(confusion) / max(confusion.sum(), 1))


def segmentation_metrics(conf_test, conf_test_forget, conf_test_retain,
                         conf_forget, forget_classes: Sequence[int],
                         num_classes: int) -> dict:
  remaining = [c for c in range(num_classes) if c not in set(forget_classes)]
  ious = class_iou(conf_test)
  return {
      "forget_iou": mean_iou(conf_test_forget, forget_classes),
      "retain_miou": mean_iou(conf_test_retain, remaining),
      "test_miou_remaining": mean_iou(conf_test, remaining),
      "pixel_acc": pixel_accuracy(conf_test),
      "retain_pixel_acc": pixel_accuracy(conf_test_retain),
      "forget_set_iou": mean_iou(conf_forget, forget_classes),
      "class_iou": [None if np.isnan(v) else float(v) for v in ious],
  }


# ------------------------------------------------------------------ data

def class_forget_split(train: Split, test: Split,
                       classes: Sequence[int]) -> ForgetSplit:
  """D_f = training images containing a forgotten class; D_r = the rest;
  the test set split the same way."""
  def contains(split):
    return np.isin(split.labels.reshape(len(split), -1), list(classes)).any(1)
  f_train, f_test = contains(train), contains(test)
  take = lambda s, m: s.take(np.flatnonzero(m))
  return ForgetSplit(take(train, f_train), take(train, ~f_train),
                     take(test, f_test), take(test, ~f_test), tuple(classes))


def seg_config(cfg) -> ml_collections.ConfigDict:
  """``config.segmentation`` over ``default_config()``."""
  seg = default_config()
  if cfg.get("segmentation") is not None:
    seg.update(cfg.segmentation.to_dict())
  return seg


def load(cfg, root, split_key) -> TaskData:
  """The shapes (generated) or VOC 2012; D_f = the training images that
  contain a class of ``config.forget.classes``."""
  del root, split_key
  seg = seg_config(cfg)
  name = cfg.dataset.split(":")[0]
  if name == "shapes":
    from jaxunlearn.data import shapes as source
    splits = source.load(cfg.seed, seg.num_train, seg.num_test, seg.image_size)
    name = "shapes"
  elif name in ("voc2012", "voc"):
    from jaxunlearn.data import voc as source
    splits = source.load(cfg.data_dir or None, cfg.manual_dir or None,
                         seg.image_size, cfg.get("accept_archives", ""))
    name = "voc2012"
  else:
    raise UserError(f"segmentation dataset {cfg.dataset!r} is unknown; use shapes "
                    "or voc2012")
  num_classes = source.NUM_CLASSES
  forget_classes = tuple(int(c) for c in cfg.forget.classes)
  bad = [c for c in forget_classes if not 0 < c < num_classes]
  if not forget_classes or bad:
    raise UserError(f"forget.classes={forget_classes} must be object classes "
                    f"1..{num_classes - 1} (0 is background)")
  data = class_forget_split(splits["train"], splits["test"], forget_classes)
  size = seg.image_size
  return TaskData(name, splits["train"], data, num_classes, (size, size, 3),
                  tuple(source.MEAN), tuple(source.STD), loop.Augment(),
                  dict(kind="class", classes=list(forget_classes)))


# ------------------------------------------------------------------- methods

def make_unlearn(name: str, seg: ml_collections.ConfigDict):
  """DELETE per pixel on D_f, or fine-tuning (pixel CE) on D_r."""
  def unlearn(task: UnlearnTask, mcfg, key: jax.Array):
    data = task.data
    tx = optim.for_method(mcfg)
    if name == "delete":
      state = DeleteState(train=TrainState.create(task.variables, tx),
                          teacher=task.variables)
      class_mask = forget_class_mask_for(mcfg.mask, data.forget_classes,
                                         task.num_classes)
      step = make_delete_step(task.model, tx, forget_classes=data.forget_classes,
                              pixels=seg.pixels, freeze_bn=mcfg.freeze_bn,
                              forget_class_mask=class_mask,
                              rest_weight=seg.rest_weight)
      split = data.forget
    else:
      state = TrainState.create(task.variables, tx)
      step = make_ce_step(task.model, tx)
      split = data.retain
    state = loop.run_epochs(parallel.jit_step(step, task.mesh), state, split,
                            batch_size=mcfg.batch_size, epochs=mcfg.epochs, key=key,
                            mesh=task.mesh, checkpoint_dir=task.checkpoint_dir,
                            desc=name, progress=task.progress,
                            learning_rate=mcfg.lr)
    final = state.train if name == "delete" else state
    return jax.device_get(final.variables), {}
  return unlearn


def method(cfg, name: str) -> Method:
  if name not in METHODS:
    raise UserError(f"segmentation supports method delete or finetune, not "
                    f"{name!r}")
  return Method(name, make_unlearn(name, seg_config(cfg)),
                ALL_METHODS.get(name).default_config)


@register_evaluator("segmentation", tasks=("segmentation",))
def segmentation_evaluator(ctx, role: str, options=None):
  """forget_iou, retain_miou, test_miou_remaining, pixel_acc,
  retain_pixel_acc, forget_set_iou, class_iou (one confusion matrix per
  split)."""
  fn = ctx.cached("confusion_fn", lambda: confusion_fn(ctx.model, ctx.num_classes,
                                                       ctx.mesh))
  conf = lambda split: confusion_matrix(
      fn, parallel.replicate(ctx.models[role], ctx.mesh), ctx.split(split),
      ctx.batch_size, ctx.mesh, ctx.num_classes)
  yield from segmentation_metrics(
      conf("test"), conf("test_forget"), conf("test_retain"), conf("forget"),
      ctx.data.forget_classes, ctx.num_classes).items()


def check(cfg) -> None:
  method(cfg, cfg.method)
  seg = seg_config(cfg)
  if seg.pixels not in PIXEL_MODES:
    raise UserError(f"unknown segmentation.pixels {seg.pixels!r}; "
                    "use " + " or ".join(PIXEL_MODES))


def build_model(cfg, data: TaskData):
  return get_model(cfg.model.name, num_classes=data.num_classes, mean=data.mean,
                   std=data.std, **{k: v for k, v in cfg.model.to_dict().items()
                                    if k != "name"})


def _pixels(cfg) -> Optional[tuple]:
  seg = seg_config(cfg)
  return (seg.pixels, seg.rest_weight) if cfg.method == "delete" else None


SEGMENTATION = register(Task(
    "segmentation", load=load, build_model=build_model,
    train_step=lambda cfg: make_ce_step, method=method, check=check,
    keys=three_keys,
    fingerprint=lambda cfg: ("segmentation", {
        k: seg_config(cfg)[k] for k in ("num_train", "num_test", "image_size")}),
    unlearn_fingerprint=lambda cfg: (_pixels(cfg),),
    datasets=(("shapes", 5, "32x32x3", "generated; segmentation.image_size"),
              ("voc2012", 21, "128x128x3", "segmentation.image_size")),
    report=lambda cfg: {"pixels": _pixels(cfg) and _pixels(cfg)[0],
                        "rest_weight": _pixels(cfg) and _pixels(cfg)[1]}))
