"""Segmentation class forgetting on Pascal VOC 2012 (manual download).

Put VOCtrainval_11-May-2012.tar (or its extracted VOCdevkit/VOC2012/) in
$JAXUNLEARN_DATA_DIR/downloads/manual/voc2012/ (or --config.manual_dir); it
is prepared once as array_record at ``segmentation.image_size`` (centre
square crop; bilinear images, nearest masks; 255 = ignore). Test = VOC val.

DELETE's optimiser as METHODS.md §1 gives it: SGD, momentum 0.9,
no weight decay, lr 5e-5, 20 epochs, the last partial batch kept; the teacher
in inference mode, the student in training mode. The segmentation network
here is the library's small U-Net trained from scratch (the paper's
segmentation network is not part of the library), so lr 5e-5 may be too
small for it: tune ``--config.delete.lr`` against the shapes demo's 1e-2.
The loss runs on the forgotten class's pixels plus the unmasked
distillation of the other pixels (``segmentation.rest_weight``, measured on
the shapes); ``--config.segmentation.pixels=all
--config.segmentation.rest_weight=0`` is the literal per-pixel reading.
Not run on this machine (no VOC here).

jaxunlearn run --config configs/segmentation_voc.py --workdir runs/seg_voc
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.tasks import segmentation


def get_config():
  config = base_config()
  config.task = "segmentation"
  config.dataset = "voc2012"
  config.model.update(dict(name="small_unet", widths=(32, 64, 128, 256)))
  config.forget.kind = "class"
  config.forget.classes = (15,)  # person
  config.segmentation = segmentation.default_config()
  # Per-pixel metrics; the per-image evaluators (accuracy, MIA) do not apply.
  config.eval.evaluators = ("segmentation",)
  config.eval.gap_metrics = ("forget_iou", "retain_miou")
  config.segmentation.image_size = 128
  config.eval.batch_size = 32
  config.train.update(dict(epochs=60, batch_size=16, lr=0.05, momentum=0.9,
                           weight_decay=1e-4, schedule="cosine", augment=False,
                           checkpoint_every=5))
  config.delete.update(dict(lr=5e-5, momentum=0.9, weight_decay=0.0, epochs=20,
                            batch_size=16, augment=False))
  config.finetune.update(dict(lr=0.01, epochs=5, batch_size=16, augment=False))
  return config
