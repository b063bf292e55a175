"""Face-identity unlearning on VGGFace2 (the seeds' protocol; not run here).

Identities with >= 500 images (the ``vggface2`` builder's ``min_images``),
the first 100 of them used, 400 train / 100 test images each, 112x112; an
IResNet-50 with the cosine head trained with ArcFace (insightface's s = 64,
m = 0.5). DELETE with the authors' VGGFace2 settings (METHODS.md §1): SGD
lr 5e-5, momentum 0.9, no weight decay, batch 64, 20 epochs, training
augmentation on the forget images.

Note: the builder prepares every identity with >= 500 images and the run
reads them all into memory before keeping 100 (about 18 GB at 112 px if
~1000 identities qualify); to keep memory small, put only the identities you
want in the manual dir.

Put VGGFace2's ``train/`` (one folder per identity) in
$JAXUNLEARN_DATA_DIR/downloads/manual/vggface2, then
jaxunlearn run --config configs/face_vggface2.py --workdir runs/face_vggface2
jaxunlearn run --config configs/face_vggface2.py:0,1,2,3,4   # forget 5 identities
"""
from jaxunlearn.config import get_config as base_config
from jaxunlearn.tasks import faces


def get_config(identities: str = "0"):
  config = base_config()
  config.task = "face"
  config.method = "delete"
  config.dataset = "vggface2:min_images=500,image_size=112"
  config.model.name = "iresnet50"
  config.model.head = "cosine"
  config.face = faces.default_config()
  config.eval.evaluators = ("accuracy", "face_verification")
  config.face.update(margin="arcface", s=64.0, m=0.5, num_identities=100,
                     train_per_identity=400, test_per_identity=100)
  config.forget.kind = "identity"
  config.forget.classes = tuple(int(k) for k in identities.split(","))
  config.train.update(epochs=30, batch_size=128, lr=0.1, momentum=0.9,
                      weight_decay=5e-4, schedule="cosine", warmup_steps=300,
                      augment=True)
  config.delete.update(lr=5e-5, momentum=0.9, weight_decay=0.0, epochs=20,
                       batch_size=64, augment=True)
  config.finetune.update(lr=0.01, epochs=5, batch_size=64)
  config.eval.batch_size = 128
  return config
