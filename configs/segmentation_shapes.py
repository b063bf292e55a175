"""Segmentation class forgetting on the synthetic shapes (embedded, no download).

2000 train / 500 test 32x32 images with 1..3 shapes each (classes: 0
background, 1 disc, 2 square, 3 triangle, 4 cross); a small U-Net; forget
class 2 (square): D_f = the training images with a square. DELETE per pixel
on D_f; the report gives forget_iou (square IoU on the test images with a
square) and retain_miou (mIoU of the other classes on the test images
without one) for the original, unlearned and retrained models.

jaxunlearn run --config configs/segmentation_shapes.py --workdir runs/seg
jaxunlearn run --config configs/segmentation_shapes.py --config.method=finetune
jaxunlearn run --config configs/segmentation_shapes.py \
    --config.segmentation.pixels=all
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.tasks import segmentation


def get_config():
  config = base_config()
  config.task = "segmentation"
  config.dataset = "shapes"
  config.model.update(dict(name="small_unet", widths=(16, 32, 64)))
  config.forget.kind = "class"
  config.forget.classes = (2,)
  config.segmentation = segmentation.default_config()
  # Per-pixel metrics; the per-image evaluators (accuracy, MIA) do not apply.
  config.eval.evaluators = ("segmentation",)
  config.eval.gap_metrics = ("forget_iou", "retain_miou")
  config.train.update(dict(epochs=12, batch_size=32, lr=0.05, momentum=0.9,
                           weight_decay=5e-4, schedule="cosine",
                           augment=False, checkpoint_every=4))
  # DELETE on the square pixels of D_f + 10 x unmasked distillation on the
  # other pixels of the same images (segmentation.rest_weight; see
  # jaxunlearn/tasks/segmentation.py for the measured alternatives).
  config.segmentation.rest_weight = 10.0
  config.delete.update(dict(lr=0.003, epochs=5, batch_size=32, augment=False))
  config.finetune.update(dict(lr=0.01, epochs=3, batch_size=32, augment=False))
  return config
