"""Face-identity unlearning on any folder-per-identity data set.

Put the images in $JAXUNLEARN_DATA_DIR/downloads/manual/image_folder/train/
<identity>/*.jpg|png (and optionally test/<identity>/...; otherwise every
5th image of an identity is held out). Identities are numbered in sorted
folder order; ``forget.classes`` names them by that index. Images are resized
(centre crop to square) to ``image_size``; a small CNN with an ArcFace-trained
cosine head (``face_cnn``); for 112 px faces use ``iresnet18``/``iresnet50``
with ``model.head="cosine"``. The prepared copy is keyed by image size only:
for a second folder of the same size use another ``--config.data_dir``.

jaxunlearn run --config configs/face_image_folder.py:48 --workdir runs/face_folder \
    --config.forget.classes=0,1
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.tasks import faces


def get_config(image_size: str = "48"):
  config = base_config()
  config.task = "face"
  config.method = "delete"
  config.dataset = f"image_folder:image_size={int(image_size)}"
  config.model.name = "face_cnn"
  config.face = faces.default_config()
  config.eval.evaluators = ("accuracy", "face_verification")
  config.face.update(margin="arcface", s=32.0, m=0.4)
  config.forget.kind = "identity"
  config.forget.classes = (0,)
  config.train.update(epochs=30, batch_size=64, lr=0.1, momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", augment=True)
  config.delete.update(lr=0.01, epochs=20, batch_size=64)
  return config
