"""Face recognition: forget identities from a margin-trained (ArcFace/CosFace) model.

The model embeds a face and scores identities with a cosine head; it returns
``s · cos θ`` (``jaxunlearn/models/margin.py``). Training (the original and
the retrained gold standard) minimises cross-entropy on the margin logits
(ArcFace ``s·cos(θ_y + m)`` or CosFace ``s·(cos θ_y − m)``). Forgetting an
identity = forgetting every training image of it (``config.forget.classes``
are identity indices). Methods:

- ``delete``: DELETE's masked distillation (``methods/delete.make_step``) on
  the ``s · cos θ`` logits of the forget images — "the same loss on identity
  logits" (METHODS.md §1); forget data only.
- ``finetune``: margin cross-entropy on the retain identities.

Evaluation per model (original / unlearned / retrained): identity accuracy on
the forgotten identities' training images (``forget_acc``) and held-out
images (``test_forget_acc``), on the remaining identities (``retain_acc``,
``test_retain_acc``); and verification in embedding space on held-out images:
the ROC-AUC of the cosine similarity of same-identity pairs of a forgotten
identity vs pairs of a forgotten-identity image with another identity's
(``forget_verification_auc``), the same for the remaining identities
(``retain_verification_auc``), plus the mean same-identity
cosine (``forget_intra_cosine``, ``retain_intra_cosine``) and the mean
``cos θ_y`` of a held-out image to its own identity's class weight
(``forget_label_cosine``, ``retain_label_cosine``).

Evaluators: ``accuracy`` and ``face_verification`` (its options in
``config.eval.face_verification``: ``max_images`` per AUC).

Config: ``config.face`` (``default_config()``): the margin, and either
``synthetic`` (``dataset="synthetic_faces"``: a generated folder-per-identity
set prepared by the ``image_folder`` builder) or any identity dataset name
(``vggface2:min_images=500,image_size=112``, ``image_folder:image_size=48``)
with ``num_identities`` / ``train_per_identity`` / ``test_per_identity``
selecting the protocol's subset.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import jax
import ml_collections
import numpy as np

from jaxunlearn import loop, optim, parallel
from jaxunlearn.batches import ForgetSplit, Split
from jaxunlearn.data import default_data_dir, load_dataset
from jaxunlearn.data import synthetic_faces
from jaxunlearn.data.splits import class_forget_split
from jaxunlearn.errors import UserError
from jaxunlearn.losses import accuracy_count, weighted_mean
from jaxunlearn.methods import METHODS as ALL_METHODS
from jaxunlearn.methods import Method, UnlearnTask
from jaxunlearn.methods import delete as delete_lib
from jaxunlearn.metrics import audit
from jaxunlearn.metrics.evaluators import register as register_evaluator
from jaxunlearn.models import MODELS, get_model
from jaxunlearn.models.margin import MARGINS, margin_cross_entropy
from jaxunlearn.state import TrainState, apply_train, gradient_update
from jaxunlearn.tasks import Task, TaskData, register, three_keys
from jaxunlearn.models import for_axis

METHODS = ("delete", "finetune")


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      margin="arcface",     # arcface | cosface | none
      s=16.0,               # the cosine head's scale (set on the model)
      m=0.3,
      easy_margin=False,    # ArcFace: margin only where cos θ > 0
      # "synthetic_faces" datasets: generated, then prepared by image_folder.
      synthetic=ml_collections.ConfigDict(dict(
          seed=0, num_identities=40, images_per_identity=60,
          test_per_identity=12, size=32)),
      # The protocol's subset of a real dataset (0 = all).
      num_identities=0, train_per_identity=0, test_per_identity=0,
  ))


class Margin(NamedTuple):
  kind: str = "arcface"
  s: float = 16.0
  m: float = 0.3
  easy_margin: bool = False


def margin_from(face_cfg) -> Margin:
  if face_cfg.margin not in MARGINS:
    raise UserError(f"unknown face.margin {face_cfg.margin!r}; use "
                    f"{', '.join(MARGINS)}")
  return Margin(face_cfg.margin, float(face_cfg.s), float(face_cfg.m),
                bool(face_cfg.get("easy_margin", False)))


# ------------------------------------------------------------------ training

def make_margin_step(model, tx, margin: Margin):
  """``step(state, batch, key, axis_name=None)``: one SGD step on the mean
  margin cross-entropy (mean over the global batch under ``axis_name``)."""
  def step(state: TrainState, batch: dict, key: jax.Array, axis_name=None):
    del key
    net = for_axis(model, axis_name)

    def loss_fn(params):
      logits, _, batch_stats = apply_train(net, params, state.batch_stats,
                                           batch["image"], batch["mask"])
      per_example = margin_cross_entropy(
          logits, batch["label"], kind=margin.kind, s=margin.s, m=margin.m,
          easy_margin=margin.easy_margin)
      loss = weighted_mean(per_example, batch["mask"], axis_name)
      correct = accuracy_count(logits, batch["label"], batch["mask"])
      return loss, (batch_stats, {"correct": correct})
    return gradient_update(state, tx, loss_fn, axis_name)
  return step


def make_unlearn(name: str, margin: Margin):
  """The face task's method ``name``: DELETE on the forget images, or margin
  fine-tuning on the retain ones; ``unlearn(task, cfg, key) -> (variables,
  stats)`` as every method."""
  def unlearn(task: UnlearnTask, method_cfg, key: jax.Array):
    data, model, mesh = task.data, task.model, task.mesh
    tx = optim.for_method(method_cfg)
    augment = task.augment if method_cfg.get("augment", True) else loop.Augment()
    if name == "delete":
      class_mask = delete_lib.forget_class_mask_for(
          method_cfg.mask, data.forget_classes, task.num_classes)
      retain_weight = float(method_cfg.get("retain_weight", 0.0))
      step = delete_lib.make_step(model, tx, freeze_bn=method_cfg.freeze_bn,
                                  forget_class_mask=class_mask,
                                  retain_weight=retain_weight)
      state = delete_lib.DeleteState(train=TrainState.create(task.variables, tx),
                                     teacher=task.variables)
      split, unwrap = data.forget, lambda s: s.train.variables
      paired = data.retain if retain_weight else None
    else:
      step = make_margin_step(model, tx, margin)
      state = TrainState.create(task.variables, tx)
      split, unwrap, paired = data.retain, lambda s: s.variables, None
    state = loop.run_epochs(parallel.jit_step(step, mesh), state, split,
                            batch_size=method_cfg.batch_size,
                            epochs=method_cfg.epochs, key=key, mesh=mesh,
                            augment=augment, checkpoint_dir=task.checkpoint_dir,
                            checkpoint_every=method_cfg.get("checkpoint_every", 5),
                            desc=name, progress=task.progress, paired=paired,
                            learning_rate=method_cfg.lr)
    return jax.device_get(unwrap(state)), {}
  return unlearn


def method(cfg, name: str) -> Method:
  if name not in METHODS:
    raise UserError(f"face task: method {name!r} is not supported; use "
                    f"{' or '.join(METHODS)}")
  return Method(name, make_unlearn(name, margin_from(cfg.face)),
                ALL_METHODS.get(name).default_config)


# ---------------------------------------------------------------------- data

def select_identities(train: Split, test: Split, num_identities: int = 0,
                      train_per_identity: int = 0, test_per_identity: int = 0
                      ) -> tuple[Split, Split, int]:
  """The first ``num_identities`` identities with at least the requested
  number of train/test images, the first images of each (by id), relabelled
  0..K-1 (0 = keep all). Returns (train, test, K)."""
  size = int(max(train.labels.max(initial=-1), test.labels.max(initial=-1))) + 1
  train_counts = np.bincount(train.labels, minlength=size)
  test_counts = np.bincount(test.labels, minlength=size)
  enough = np.flatnonzero((train_counts > 0) & (train_counts >= train_per_identity)
                          & (test_counts >= test_per_identity))
  if num_identities and len(enough) < num_identities:
    raise UserError(
        f"only {len(enough)} identities have >= {train_per_identity} train and "
        f">= {test_per_identity} test images; lower face.num_identities "
        f"({num_identities}) or the per-identity counts")
  chosen = enough[:num_identities] if num_identities else enough
  relabel = np.full(size, -1, np.int32)
  relabel[chosen] = np.arange(len(chosen), dtype=np.int32)

  def take(split: Split, per_identity: int) -> Split:
    index = []
    for k in chosen:
      rows = np.flatnonzero(split.labels == k)
      rows = rows[np.argsort(split.ids[rows], kind="stable")]
      index.extend(rows[:per_identity] if per_identity else rows)
    part = split.take(np.asarray(index, np.int64))
    return Split(part.images, relabel[part.labels], part.ids)
  return take(train, train_per_identity), take(test, test_per_identity), len(chosen)


def load(cfg, root, split_key) -> TaskData:
  """Generates (once) and prepares the synthetic faces, or loads
  ``cfg.dataset``; selects the protocol's identities; every image of the
  identities ``config.forget.classes`` is forgotten."""
  del root, split_key
  data_dir = os.path.expanduser(cfg.data_dir or default_data_dir())
  name, manual_dir = cfg.dataset, cfg.manual_dir or None
  if cfg.dataset == "synthetic_faces":
    syn = cfg.face.synthetic
    variant = os.path.join(data_dir, synthetic_faces.variant_name(
        syn.seed, syn.num_identities, syn.images_per_identity,
        syn.test_per_identity, syn.size))
    manual_dir = synthetic_faces.write_image_folder(
        os.path.join(variant, "manual"), seed=syn.seed,
        num_identities=syn.num_identities,
        images_per_identity=syn.images_per_identity,
        test_per_identity=syn.test_per_identity, size=syn.size)
    # Its own tfds data dir: image_folder variants are keyed by shape only.
    data_dir, name = variant, f"image_folder:image_size={syn.size}"
  spec, splits = load_dataset(name, data_dir, manual_dir,
                              lazy_above_mb=cfg.get("lazy_above_mb", 2048),
                              accept_archives=cfg.get("accept_archives", ""))
  train, test, num_classes = select_identities(
      splits["train"], splits["test"], cfg.face.num_identities,
      cfg.face.train_per_identity, cfg.face.test_per_identity)
  augment = (loop.Augment(spec.crop_padding, spec.flip) if cfg.train.augment
             else loop.Augment())
  data = identity_forget_split(train, test, cfg.forget.classes, num_classes)
  return TaskData(cfg.dataset, train, data, num_classes, tuple(spec.image_shape),
                  tuple(spec.mean), tuple(spec.std), augment,
                  dict(kind="identity", classes=list(data.forget_classes)))


def identity_forget_split(train: Split, test: Split, identities: Sequence[int],
                          num_identities: int) -> ForgetSplit:
  """Every train image of ``identities`` is forgotten; their test images are
  D_t,f. Identities are indices 0..num_identities-1."""
  identities = tuple(int(k) for k in identities)
  bad = [k for k in identities if not 0 <= k < num_identities]
  if bad:
    raise UserError(f"forget identity {bad[0]} is out of range: the data set "
                    f"has identities 0..{num_identities - 1}; fix forget.classes")
  return class_forget_split(train, test, identities, num_identities)


# ---------------------------------------------------------------- evaluation

def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
  """P(score of a positive > score of a negative) + ½ P(tie)."""
  scores = np.concatenate([positive, negative]).astype(np.float64)
  labels = np.concatenate([np.ones(len(positive), int), np.zeros(len(negative), int)])
  return audit.roc_auc(scores, labels)


def pair_similarities(embeddings: np.ndarray, labels: np.ndarray,
                      in_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Cosine similarities of the pairs i < j touching the group: (same-identity
  pairs inside it, different-identity pairs with at least one image in it)."""
  unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True),
                                 1e-12)
  i, j = np.triu_indices(len(labels), k=1)
  touching = in_group[i] | in_group[j]
  i, j = i[touching], j[touching]
  sims = np.sum(unit[i] * unit[j], axis=1)
  same = labels[i] == labels[j]
  return sims[same], sims[~same]


def verification(embeddings: np.ndarray, labels: np.ndarray, in_group: np.ndarray,
                 max_images: int, seed: int = 0) -> dict:
  """{"auc", "intra_cosine"} of a group of identities on held-out images.

  Genuine pairs: two images of the same group identity; impostor pairs: a
  group image with an image of any other identity (so one identity alone is
  enough). At most ``max_images // 2`` group and as many other images are
  used (seeded subsample), every pair among them.
  """
  rng = np.random.default_rng(seed)
  half = max(max_images // 2, 2)
  pick = lambda rows: np.sort(rng.choice(rows, min(len(rows), half), replace=False))
  keep = np.concatenate([pick(np.flatnonzero(in_group)),
                         pick(np.flatnonzero(~in_group))])
  same, different = pair_similarities(embeddings[keep], labels[keep], in_group[keep])
  return {"auc": roc_auc(same, different),
          "intra_cosine": float(same.mean()) if len(same) else float("nan")}


def verification_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(max_images=2000))  # per AUC: all pairs


@register_evaluator("face_verification", verification_config, tasks=("face",))
def verification_evaluator(ctx, role: str, options):
  """Verification in embedding space on held-out images, and how close a
  held-out face stays to its identity's class weight:
  ``{forget,retain}_verification_auc``, ``{forget,retain}_intra_cosine``,
  ``{forget,retain}_label_cosine`` (the logits are ``scale · cos θ``)."""
  out, held_out = {}, {}
  for group in ("forget", "retain"):
    o = ctx.outputs(role, f"test_{group}")
    held_out[group] = (o.features, o.labels)
    label_cos = np.take_along_axis(o.logits, o.labels[:, None], 1) / ctx.model.scale
    out[f"{group}_label_cosine"] = float(label_cos.mean())
  embeddings = np.concatenate([held_out["forget"][0], held_out["retain"][0]])
  labels = np.concatenate([held_out["forget"][1], held_out["retain"][1]])
  is_forget = np.arange(len(labels)) < len(held_out["forget"][1])
  for group, in_group in (("forget", is_forget), ("retain", ~is_forget)):
    v = verification(embeddings, labels, in_group, options.max_images, ctx.seed)
    out[f"{group}_verification_auc"] = v["auc"]
    out[f"{group}_intra_cosine"] = v["intra_cosine"]
  yield from out.items()


# ----------------------------------------------------------------------- task

def build_model(cfg, data: TaskData):
  """The configured model with the cosine head at scale ``face.s``."""
  MODELS.get(cfg.model.name)
  kwargs = {k: v for k, v in cfg.model.to_dict().items() if k != "name"}
  if cfg.model.name.startswith("iresnet"):
    kwargs.setdefault("head", "cosine")
    if kwargs["head"] != "cosine":
      raise UserError("the face task needs a cosine head: set model.head='cosine'")
  return get_model(cfg.model.name, num_classes=data.num_classes, mean=data.mean,
                   std=data.std, scale=float(cfg.face.s), **kwargs)


def check(cfg) -> None:
  if cfg.get("face") is None:
    raise UserError("config.task='face' needs a config.face section; start from "
                    "configs/face_synthetic.py or set config.face = "
                    "jaxunlearn.tasks.faces.default_config()")
  method(cfg, cfg.method)


FACE = register(Task(
    "face", load=load, build_model=build_model,
    train_step=lambda cfg: (lambda model, tx: make_margin_step(
        model, tx, margin_from(cfg.face))),
    method=method, check=check, keys=three_keys,
    datasets=(("synthetic_faces", 40, "32x32x3",
               "generated; face.synthetic sets identities and size"),),
    fingerprint=lambda cfg: ("face", cfg.face.to_dict()),
    report=lambda cfg: {"margin": margin_from(cfg.face)._asdict()}))
