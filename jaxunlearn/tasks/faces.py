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

Config: ``config.face`` (``default_config()``): the margin, and either
``synthetic`` (``dataset="synthetic_faces"``: a generated folder-per-identity
set prepared by the ``image_folder`` builder) or any identity dataset name
(``vggface2:min_images=500,image_size=112``, ``image_folder:image_size=48``)
with ``num_identities`` / ``train_per_identity`` / ``test_per_identity``
selecting the protocol's subset.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import NamedTuple, Optional, Sequence

import jax
import ml_collections
import numpy as np

from jaxunlearn import loop, parallel
from jaxunlearn.data import default_data_dir, load_dataset, pipeline
from jaxunlearn.data import synthetic_faces
from jaxunlearn.data.pipeline import Split
from jaxunlearn.data.splits import ForgetSplit, class_forget_split, save_forget_ids
from jaxunlearn.errors import UserError
from jaxunlearn.losses import accuracy_count, weighted_mean
from jaxunlearn.methods import delete as delete_lib
from jaxunlearn.metrics.predict import make_predict_fn, predict
from jaxunlearn.models import MODELS, get_model
from jaxunlearn.models.margin import MARGINS, margin_cross_entropy
from jaxunlearn.state import TrainState, apply_train, gradient_update, sgd
from jaxunlearn.train import for_axis, init_variables, make_optimizer

METHODS = ("delete", "finetune")
ROLES = ("original", "unlearned", "retrained")


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
      verification_max_images=2000,  # per AUC (all pairs among them)
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


def train_margin_model(model, train_cfg, margin: Margin, split: Split,
                       image_shape, key: jax.Array, mesh, *,
                       augment: loop.Augment = loop.Augment(),
                       checkpoint_dir: Optional[str] = None, desc: str = "train",
                       progress: bool = True) -> dict:
  """Trains from scratch on ``split`` with the margin loss; returns variables.
  With ``checkpoint_dir`` a finished training is reused, an interrupted one
  resumes (``loop.run_epochs``)."""
  init_key, data_key = jax.random.split(key)
  steps = train_cfg.epochs * pipeline.num_batches(len(split), train_cfg.batch_size)
  tx = make_optimizer(train_cfg, steps)
  state = TrainState.create(init_variables(model, image_shape, init_key), tx)
  step = parallel.jit_step(make_margin_step(model, tx, margin), mesh)
  state = loop.run_epochs(step, state, split, batch_size=train_cfg.batch_size,
                          epochs=train_cfg.epochs, key=data_key, mesh=mesh,
                          augment=augment, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=train_cfg.get("checkpoint_every", 5),
                          desc=desc, progress=progress)
  return jax.device_get(state.variables)


def unlearn(method: str, method_cfg, model, variables: dict, data: ForgetSplit,
            num_classes: int, margin: Margin, key: jax.Array, mesh, *,
            augment: loop.Augment, checkpoint_dir: Optional[str] = None,
            progress: bool = True) -> dict:
  """DELETE on the forget images, or margin fine-tuning on the retain ones."""
  tx = sgd(method_cfg.lr, method_cfg.momentum, method_cfg.weight_decay)
  augment = augment if method_cfg.get("augment", True) else loop.Augment()
  if method == "delete":
    class_mask = delete_lib.forget_class_mask_for(
        method_cfg.mask, data.forget_classes, num_classes)
    retain_weight = float(method_cfg.get("retain_weight", 0.0))
    step = delete_lib.make_step(model, tx, freeze_bn=method_cfg.freeze_bn,
                                forget_class_mask=class_mask,
                                retain_weight=retain_weight)
    state = delete_lib.DeleteState(train=TrainState.create(variables, tx),
                                   teacher=variables)
    split, unwrap = data.forget, lambda s: s.train.variables
    paired = data.retain if retain_weight else None
  elif method == "finetune":
    step = make_margin_step(model, tx, margin)
    state = TrainState.create(variables, tx)
    split, unwrap, paired = data.retain, lambda s: s.variables, None
  else:
    raise UserError(f"face task: method {method!r} is not supported; use "
                    f"{' or '.join(METHODS)}")
  state = loop.run_epochs(parallel.jit_step(step, mesh), state, split,
                          batch_size=method_cfg.batch_size,
                          epochs=method_cfg.epochs, key=key, mesh=mesh,
                          augment=augment, checkpoint_dir=checkpoint_dir,
                          checkpoint_every=method_cfg.get("checkpoint_every", 5),
                          desc=method, progress=progress, paired=paired)
  return jax.device_get(unwrap(state))


# ---------------------------------------------------------------------- data

@dataclasses.dataclass(frozen=True)
class FaceData:
  name: str
  train: Split
  test: Split
  num_classes: int
  image_shape: tuple
  mean: tuple
  std: tuple
  augment: loop.Augment


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


def load_face_data(cfg) -> FaceData:
  """Generates (once) and prepares the synthetic faces, or loads ``cfg.dataset``."""
  data_dir = os.path.expanduser(cfg.data_dir or default_data_dir())
  name, manual_dir = cfg.dataset, cfg.manual_dir or None
  if cfg.dataset == "synthetic_faces":
    syn = cfg.face.synthetic
    root = os.path.join(data_dir, synthetic_faces.variant_name(
        syn.seed, syn.num_identities, syn.images_per_identity,
        syn.test_per_identity, syn.size))
    manual_dir = synthetic_faces.write_image_folder(
        os.path.join(root, "manual"), seed=syn.seed,
        num_identities=syn.num_identities,
        images_per_identity=syn.images_per_identity,
        test_per_identity=syn.test_per_identity, size=syn.size)
    # Its own tfds data dir: image_folder variants are keyed by shape only.
    data_dir, name = root, f"image_folder:image_size={syn.size}"
  spec, splits = load_dataset(name, data_dir, manual_dir)
  train, test, num_classes = select_identities(
      splits["train"], splits["test"], cfg.face.num_identities,
      cfg.face.train_per_identity, cfg.face.test_per_identity)
  augment = (loop.Augment(spec.crop_padding, spec.flip) if cfg.train.augment
             else loop.Augment())
  return FaceData(cfg.dataset, train, test, num_classes, tuple(spec.image_shape),
                  tuple(spec.mean), tuple(spec.std), augment)


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
  """P(score of a positive > score of a negative) + ½ P(tie) (Mann–Whitney)."""
  n_pos, n_neg = len(positive), len(negative)
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  scores = np.concatenate([positive, negative]).astype(np.float64)
  _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
  average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based, ties averaged
  ranks = average_rank[inverse]
  return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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


def evaluate_model(predict_fn, variables: dict, data: ForgetSplit, mesh,
                   batch_size: int, max_images: int, seed: int,
                   scale: float) -> dict:
  """Identity accuracies and verification metrics of one model; the logits
  are ``scale · cos θ``."""
  out, held_out = {}, {}
  for key, split in (("forget_acc", data.forget), ("retain_acc", data.retain),
                     ("test_forget_acc", data.test_forget),
                     ("test_retain_acc", data.test_retain)):
    logits, embeddings = predict(predict_fn, variables, split, batch_size, mesh,
                                 with_features=True)
    out[key] = float(np.mean(logits.argmax(-1) == split.labels))
    if key.startswith("test_"):
      group = key[len("test_"):-len("_acc")]
      held_out[group] = (embeddings, split.labels)
      # How close a held-out face stays to its identity's class weight.
      label_cos = np.take_along_axis(logits, split.labels[:, None], 1) / scale
      out[f"{group}_label_cosine"] = float(label_cos.mean())
  embeddings = np.concatenate([held_out["forget"][0], held_out["retain"][0]])
  labels = np.concatenate([held_out["forget"][1], held_out["retain"][1]])
  is_forget = np.arange(len(labels)) < len(held_out["forget"][1])
  for group, in_group in (("forget", is_forget), ("retain", ~is_forget)):
    v = verification(embeddings, labels, in_group, max_images, seed)
    out[f"{group}_verification_auc"] = v["auc"]
    out[f"{group}_intra_cosine"] = v["intra_cosine"]
  return out


# ----------------------------------------------------------------------- job

def build_model(cfg, data: FaceData):
  """The configured model with the cosine head at scale ``face.s``."""
  MODELS.get(cfg.model.name)
  kwargs = {k: v for k, v in cfg.model.to_dict().items() if k != "name"}
  if cfg.model.name.startswith("iresnet"):
    kwargs.setdefault("head", "cosine")
    if kwargs["head"] != "cosine":
      raise UserError("the face task needs a cosine head: set model.head='cosine'")
  model = get_model(cfg.model.name, num_classes=data.num_classes, mean=data.mean,
                    std=data.std, scale=float(cfg.face.s), **kwargs)
  return model


def run(cfg: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
  """Trains original + retrained, unlearns, evaluates; writes report.json."""
  from jaxunlearn import checkpoint as ckpt_lib
  from jaxunlearn.run import timed_phase, fingerprint
  if cfg.get("face") is None:
    raise UserError("config.task='face' needs a config.face section; start from "
                    "configs/face_synthetic.py or set config.face = "
                    "jaxunlearn.tasks.faces.default_config()")
  if cfg.method not in METHODS:
    raise UserError(f"face task: method {cfg.method!r} is not supported; use "
                    f"{' or '.join(METHODS)}")
  margin = margin_from(cfg.face)
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh(cfg.num_devices or None)
  data = load_face_data(cfg)
  split = identity_forget_split(data.train, data.test, cfg.forget.classes,
                                data.num_classes)
  forget_spec = dict(kind="identity", classes=list(split.forget_classes))
  save_forget_ids(os.path.join(workdir, "forget_ids.json"), split, forget_spec)
  log(f"faces {data.name}: {data.num_classes} identities, |D_f|={len(split.forget)} "
      f"|D_r|={len(split.retain)} |D_t,f|={len(split.test_forget)} "
      f"|D_t,r|={len(split.test_retain)}; {mesh.devices.size} device(s)")
  model = build_model(cfg, data)

  root = jax.random.key(cfg.seed)
  pretrain_key, retrain_key, unlearn_key = jax.random.split(root, 3)
  ckpt_root = os.path.join(workdir, "checkpoints")
  trained_by = {k: v for k, v in cfg.face.to_dict().items()
                if k != "verification_max_images"}  # evaluation only
  base = ("face", data.name, trained_by, cfg.model.to_dict(),
          cfg.train.to_dict(), cfg.seed)
  forget_hash = fingerprint(sorted(int(i) for i in split.forget.ids))
  train = lambda part, key, desc: (lambda d: train_margin_model(
      model, cfg.train, margin, part, data.image_shape, key, mesh,
      augment=data.augment, checkpoint_dir=d, desc=desc, progress=cfg.progress))
  original, t_pretrain = timed_phase(
      os.path.join(ckpt_root, f"face-original-{fingerprint(*base)}"),
      train(data.train, pretrain_key, "pretrain"))
  retrained, t_retrain = None, None
  if cfg.with_retrained:
    retrained, t_retrain = timed_phase(
        os.path.join(ckpt_root, f"face-retrained-{fingerprint(*base, forget_hash)}"),
        train(split.retain, retrain_key, "retrain"))
  method_cfg = cfg[cfg.method]
  unlearned, t_unlearn = timed_phase(
      os.path.join(ckpt_root, f"face-unlearn-{cfg.method}-" + fingerprint(
          *base, forget_hash, method_cfg.to_dict())),
      lambda d: unlearn(cfg.method, method_cfg, model, original, split,
                        data.num_classes, margin, unlearn_key, mesh,
                        augment=data.augment, checkpoint_dir=d,
                        progress=cfg.progress))

  start = time.perf_counter()
  predict_fn = make_predict_fn(model, mesh)
  seconds = {"original": t_pretrain, "unlearned": t_unlearn, "retrained": t_retrain}
  results = {}
  for role, variables in zip(ROLES, (original, unlearned, retrained)):
    if variables is None:
      results[role] = None
      continue
    results[role] = dict(evaluate_model(
        predict_fn, variables, split, mesh, cfg.eval.batch_size,
        cfg.face.verification_max_images, cfg.seed, float(cfg.face.s)),
        runtime_s=seconds[role])
  t_evaluate = time.perf_counter() - start
  report = {
      "task": "face", "method": cfg.method, "dataset": data.name,
      "seed": int(cfg.seed), "margin": margin._asdict(),
      "forget": dict(forget_spec, size=len(split.forget)),
      "models": results,
      "runtime_s": {"pretrain": t_pretrain, "retrain": t_retrain,
                    "unlearn": t_unlearn, "evaluate": t_evaluate},
      "rte": (t_retrain / t_unlearn if t_retrain and t_unlearn else None),
  }
  ckpt_lib.write_json(os.path.join(workdir, "report.json"), report)
  return report
