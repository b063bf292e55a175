"""PyTorch state_dict import/export against the reference implementations.

ResNet-18 (torchvision and kuangliu's CIFAR variant with ``shortcut``/
``linear`` names) is written out in plain torch.nn below, to also cover the
CIFAR stems and DLFD-style wrappers; the zoo at the end (ResNet-50, VGG16-bn,
ViT-S/16, Swin-T, IResNet-18/50) is compared with torchvision, timm and
insightface's arcface_torch (tests/arcface_iresnet.py, a verbatim copy).
BatchNorm running statistics and affine parameters are non-trivial so
inference mode exercises every imported tensor.
"""
import collections
import os

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")
from torch import nn  # noqa: E402

import arcface_iresnet  # noqa: E402  (tests/, on pytest's path)

import flax.linen as fnn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxunlearn import torch_io  # noqa: E402
from jaxunlearn.errors import UserError  # noqa: E402
from jaxunlearn.models import get_model  # noqa: E402
from jaxunlearn.models.resnet import ResNet18  # noqa: E402

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class TorchBasicBlock(nn.Module):
  def __init__(self, inplanes, planes, stride, shortcut_name):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.shortcut_name = shortcut_name
    projection = None
    if stride != 1 or inplanes != planes:
      projection = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes))
    setattr(self, shortcut_name, projection if projection is not None
            else nn.Sequential())

  def forward(self, x):
    out = torch.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return torch.relu(out + getattr(self, self.shortcut_name)(x))


class TorchResNet18(nn.Module):
  """torchvision.models.resnet18 (naming="torchvision") or the kuangliu CIFAR
  ResNet-18 (naming="cifar": shortcut.N, linear); returns (logits, features)."""

  def __init__(self, num_classes, stem="imagenet", naming="torchvision"):
    super().__init__()
    self.stem = stem
    if stem == "imagenet":
      self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    else:
      self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    shortcut = "downsample" if naming == "torchvision" else "shortcut"
    inplanes = 64
    for i, planes in enumerate((64, 128, 256, 512)):
      stride = 1 if i == 0 else 2
      blocks = [TorchBasicBlock(inplanes, planes, stride, shortcut),
                TorchBasicBlock(planes, planes, 1, shortcut)]
      setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
      inplanes = planes
    self.head_name = "fc" if naming == "torchvision" else "linear"
    setattr(self, self.head_name, nn.Linear(512, num_classes))

  def forward(self, x):
    x = torch.relu(self.bn1(self.conv1(x)))
    if self.stem in ("imagenet", "cifar_maxpool"):
      x = nn.functional.max_pool2d(x, 3, 2, 1)
    for i in range(4):
      x = getattr(self, f"layer{i + 1}")(x)
    features = x.mean(dim=(2, 3))
    return getattr(self, self.head_name)(features), features


def randomize_bn(module, generator):
  for m in module.modules():
    if isinstance(m, nn.BatchNorm2d):
      c = m.num_features
      m.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
      m.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
      m.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
      m.bias.data.copy_(torch.randn(c, generator=generator) * 0.1)
      m.num_batches_tracked.fill_(7)


def torch_model(num_classes=10, stem="imagenet", naming="torchvision", seed=0):
  generator = torch.Generator().manual_seed(seed)
  torch.manual_seed(seed)
  net = TorchResNet18(num_classes, stem, naming)
  with torch.no_grad():
    randomize_bn(net, generator)
  return net.eval()


def images(shape, seed=0):
  return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def torch_outputs(net, x):
  normalized = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
  with torch.no_grad():
    logits, features = net(torch.from_numpy(normalized).permute(0, 3, 1, 2))
  return logits.numpy(), features.numpy()


def flax_model(stem, num_classes=10):
  return get_model("resnet18", num_classes=num_classes, mean=MEAN, std=STD,
                   stem=stem, torch_bn=True)


@pytest.fixture(scope="module")
def imagenet_net():
  return torch_model(stem="imagenet")


@pytest.fixture(scope="module")
def imagenet_imported(imagenet_net, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("pt") / "resnet18.pth")
  torch.save(imagenet_net.state_dict(), path)
  model = flax_model("imagenet")
  return model, torch_io.load_variables(path, model, image_shape=(64, 64, 3))


def test_the_plain_resnet18_has_torchvisions_names_and_shapes(imagenet_net):
  ours = {k: tuple(v.shape) for k, v in imagenet_net.state_dict().items()}
  reference = torchvision.models.resnet18(num_classes=10).state_dict()
  assert list(ours) == list(reference)
  assert ours == {k: tuple(v.shape) for k, v in reference.items()}


def test_imported_torchvision_resnet18_gives_torch_logits(imagenet_net,
                                                          imagenet_imported):
  model, variables = imagenet_imported
  x = images((4, 64, 64, 3))
  ref_logits, ref_features = torch_outputs(imagenet_net, x)
  logits, features = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, x)
  assert np.abs(ref_logits).max() > 0.1  # a non-trivial comparison
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=1e-4)
  np.testing.assert_allclose(np.asarray(features), ref_features, rtol=0, atol=1e-4)


@pytest.mark.parametrize("stem", ["cifar", "cifar_maxpool"])
def test_imported_cifar_resnet18_gives_torch_logits(stem):
  net = torch_model(stem=stem, naming="cifar", seed=1)
  assert "linear.weight" in net.state_dict()
  assert "layer2.0.shortcut.0.weight" in net.state_dict()
  model = flax_model(stem)
  variables = torch_io.import_state_dict(model, net.state_dict())
  x = images((3, 32, 32, 3), seed=1)
  ref_logits, _ = torch_outputs(net, x)
  logits, _ = model.apply(variables, x, train=False)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=1e-4)


def test_export_import_round_trips_exactly(imagenet_net, imagenet_imported):
  model, variables = imagenet_imported
  exported = torch_io.export_state_dict(model, variables)
  reference = imagenet_net.state_dict()
  assert list(exported) == list(reference)  # same names, same order
  for key, value in exported.items():
    assert tuple(value.shape) == tuple(reference[key].shape), key
    if not key.endswith("num_batches_tracked"):
      assert torch.equal(value, reference[key]), key
  again = torch_io.import_state_dict(model, exported)
  same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                      variables, again)
  assert all(jax.tree.leaves(same))
  assert jax.tree.structure(variables) == jax.tree.structure(again)
  # And PyTorch accepts it strictly and computes the same logits.
  clone = TorchResNet18(10, "imagenet", "torchvision").eval()
  clone.load_state_dict(exported, strict=True)
  x = images((2, 64, 64, 3), seed=2)
  np.testing.assert_array_equal(torch_outputs(clone, x)[0],
                                torch_outputs(imagenet_net, x)[0])


def test_changed_flax_weights_reach_torch(imagenet_imported):
  """Export is not the identity on the original tensors: a flax-side change
  (as unlearning makes) shows up in the exported PyTorch model's logits."""
  model, variables = imagenet_imported
  changed = jax.tree.map(lambda a: a, variables)
  changed["params"]["head"]["bias"] = variables["params"]["head"]["bias"] + 1.0
  net = TorchResNet18(10, "imagenet", "torchvision").eval()
  net.load_state_dict(torch_io.export_state_dict(model, changed))
  x = images((2, 64, 64, 3), seed=3)
  logits, _ = model.apply(changed, x, train=False)
  np.testing.assert_allclose(torch_outputs(net, x)[0], np.asarray(logits),
                             rtol=0, atol=1e-4)


class TorchDLFD(nn.Module):
  """A DLFD-style wrapper: torchvision ResNet-18 as ``base_model`` (fc removed)
  and a 512-256-128-C MLP head with dropout."""

  def __init__(self, num_classes):
    super().__init__()
    self.base_model = TorchResNet18(1, "imagenet", "torchvision")
    del self.base_model.fc
    self.base_model.fc = nn.Identity()
    self.classifier = nn.Sequential(
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 128),
        nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes))

  def forward(self, x):
    _, features = self.base_model(x)
    return self.classifier(features), features


class FlaxDLFD(fnn.Module):
  num_classes: int

  @fnn.compact
  def __call__(self, x, train=False, mask=None):
    _, features = ResNet18(0, MEAN, STD, stem="imagenet", name="backbone")(
        x, train, mask)
    h = fnn.relu(fnn.Dense(256, name="mlp1")(features))
    h = fnn.relu(fnn.Dense(128, name="mlp2")(h))
    return fnn.Dense(self.num_classes, name="out")(h), features


def test_dlfd_wrapper_imports_and_exports_with_its_names():
  torch.manual_seed(4)
  net = TorchDLFD(7)
  with torch.no_grad():
    randomize_bn(net, torch.Generator().manual_seed(4))
  net.eval()
  state = net.state_dict()
  assert "base_model.layer1.0.conv1.weight" in state
  model = FlaxDLFD(7)
  variables = torch_io.import_state_dict(model, state, image_shape=(64, 64, 3))
  x = images((2, 64, 64, 3), seed=4)
  ref_logits, _ = torch_outputs(net, x)
  logits, _ = model.apply(variables, x)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=1e-4)
  exported = torch_io.export_state_dict(model, variables, image_shape=(64, 64, 3),
                                        template=state)
  assert list(exported) == list(state)
  net.load_state_dict(exported, strict=True)


def test_sequential_features_wrapper():
  """``features = nn.Sequential(*resnet.children()[:-1])`` keys (features.0,
  features.4.0.conv1...) map to the same backbone."""
  net = torch_model(stem="imagenet", seed=5)
  renamed = collections.OrderedDict()
  index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5",
           "layer3": "6", "layer4": "7", "fc": None}
  for key, value in net.state_dict().items():
    head, _, rest = key.partition(".")
    renamed[f"features.{index[head]}.{rest}" if index[head] else f"head.{rest}"] = value
  model = flax_model("imagenet")
  variables = torch_io.import_state_dict(model, renamed)
  reference = torch_io.import_state_dict(model, net.state_dict())
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, variables, reference)))


def test_wrong_architecture_is_a_one_line_error(imagenet_net, tmp_path):
  state = imagenet_net.state_dict()
  with pytest.raises(UserError) as info:  # 7x7 stem weights into a CIFAR stem
    torch_io.import_state_dict(flax_model("cifar"), state)
  message = str(info.value)
  assert "\n" not in message
  assert "conv1.weight (64, 3, 7, 7) vs model (64, 3, 3, 3)" in message

  resnet50 = get_model("resnet50", num_classes=10, mean=MEAN, std=STD)
  with pytest.raises(UserError) as info:
    torch_io.import_state_dict(resnet50, state)
  message = str(info.value)
  assert "\n" not in message and "missing keys: " in message
  assert "layer1.0.conv3.weight" in message and "unexpected keys: " not in message

  truncated = collections.OrderedDict(state)
  del truncated["layer4.1.bn2.running_var"]
  truncated["extra.weight"] = torch.zeros(3)
  with pytest.raises(UserError, match=r"missing keys: layer4\.1\.bn2\.running_var; "
                     r"unexpected keys: extra\.weight"):
    torch_io.import_state_dict(flax_model("imagenet"), truncated)

  path = tmp_path / "module.pth"
  torch.save(imagenet_net, path)  # a pickled module, not a state_dict
  with pytest.raises(UserError, match="weights_only"):
    torch_io.load_torch_file(str(path))


def test_run_imports_the_original_from_torch_and_exports_the_unlearned(data_dir,
                                                                       tmp_path):
  """config.original_from + export_torch: the main job starts from a PyTorch
  CIFAR ResNet-18 file (no pretraining) and writes unlearned.pth, which loads
  strictly into the PyTorch model and gives the report's test accuracy."""
  from jaxunlearn import config as base_config
  from jaxunlearn import run as run_lib
  from jaxunlearn.data import load_dataset
  def grey(net):  # digits are 8x8x1
    net.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    return net
  net = grey(torch_model(stem="cifar", naming="cifar"))
  source = str(tmp_path / "original.pth")
  torch.save(net.state_dict(), source)
  cfg = base_config.get_config()
  cfg.data_dir, cfg.progress, cfg.with_retrained = data_dir, False, False
  cfg.model = ml_collections.ConfigDict(dict(name="resnet18", stem="cifar",
                                             torch_bn=True))
  cfg.original_from, cfg.export_torch = source, True
  cfg.delete.epochs = 1
  cfg.eval.evaluators = ("accuracy",)
  workdir = str(tmp_path / "run")
  report = run_lib.run(cfg, workdir, log=lambda *_: None)
  assert report["runtime_s"]["pretrain"] is None

  unlearned = grey(TorchResNet18(10, "cifar", "cifar"))
  exported = torch.load(os.path.join(workdir, "unlearned.pth"), weights_only=True)
  unlearned.load_state_dict(exported, strict=True)
  assert list(exported) == list(net.state_dict())
  assert not torch.equal(exported["conv1.weight"], net.state_dict()["conv1.weight"])
  spec, splits = load_dataset("digits", data_dir)
  test = splits["test"]
  x = (test.images.astype(np.float32) / 255.0 - np.array(spec.mean, np.float32)) \
      / np.array(spec.std, np.float32)
  with torch.no_grad():
    logits, _ = unlearned.eval()(torch.from_numpy(x).permute(0, 3, 1, 2))
  accuracy = float(np.mean(logits.argmax(1).numpy() == test.labels))
  assert accuracy == pytest.approx(report["models"]["unlearned"]["test_acc"], abs=1e-9)


# --------------------------------------------------------------------------
# The zoo against the libraries people train it with: torchvision, timm and
# insightface's arcface_torch (tests/arcface_iresnet.py, a verbatim copy).


def calibrate(net, images_nhwc, seed, branch_ends=()):
  """Realistic, non-trivial inference state: BatchNorm running statistics
  from one training-mode pass (cumulative average, so they equal that batch's
  statistics), then every affine norm parameter, PReLU slope and bias
  perturbed so that none keeps its constant initialisation. The scales of the
  BatchNorms in ``branch_ends`` (the last of each residual branch) are
  multiplied by 0.25, which keeps the features of order 1 as in a trained
  network: with unit scales the residual stream of a random ResNet-50 grows
  to features in the hundreds, where float32 rounding alone exceeds 1e-4."""
  generator = torch.Generator().manual_seed(seed)
  norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
  batch_norms = [m for m in net.modules()
                 if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
  for m in batch_norms:
    m.reset_running_stats()
    m.momentum = None
  with torch.no_grad():
    if batch_norms:
      net.train()(torch.from_numpy(normalize(images_nhwc)).permute(0, 3, 1, 2))
    for name, p in net.named_parameters():
      module = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
      noise = torch.randn(p.shape, generator=generator)
      if not p.requires_grad:  # insightface's embedding BatchNorm1d scale: 1
        continue
      if isinstance(module, norms) and name.endswith("weight"):
        p.copy_(1 + 0.2 * noise)
      elif isinstance(module, nn.PReLU):
        p.copy_(0.25 + 0.05 * noise)
      elif name.endswith("bias") or name.endswith("token"):
        p.copy_(0.05 * noise)
    for m in branch_ends(net) if branch_ends else ():
      m.weight.mul_(0.25)
  for m in batch_norms:
    m.momentum = 0.1
    m.num_batches_tracked.fill_(3)
  return net.eval()


def normalize(x):
  return (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)


def reference_outputs(net, head, x):
  """(logits, features) of a torch model in inference mode: the features are
  what its classifier ``head`` receives (the model's output if None)."""
  captured = []
  handle = head.register_forward_pre_hook(
      lambda _, args: captured.append(args[0].detach().clone())) if head else None
  try:
    with torch.no_grad():
      logits = net(torch.from_numpy(normalize(x)).permute(0, 3, 1, 2))
  finally:
    if handle:
      handle.remove()
  logits = logits.numpy()
  return logits, (captured[0].numpy() if head else logits)


class Zoo(collections.namedtuple(
    "Zoo", "build head flax_name flax_kwargs size branch_ends")):
  """A reference model: its constructor, its classifier module (whose input
  is the features; None: the output is the features), the flax model, the
  input size, and the last BatchNorm of each residual branch (``calibrate``)."""


def _branch_ends(net):
  return [block.bn3 for layer in (net.layer1, net.layer2, net.layer3, net.layer4)
          for block in layer]


# Inputs are reduced where the reference allows it. Swin stays at 224 px: its
# four stages must be multiples of the 7x7 window (at other sizes torchvision
# pads before the shift and timm after it, two different models); IResNet at
# 112 px, the 7x7 map its FC expects.
ZOO = {
    "torchvision_resnet50": Zoo(
        lambda: torchvision.models.resnet50(num_classes=10), lambda n: n.fc,
        "resnet50", {"torch_bn": True}, 64, _branch_ends),
    "torchvision_vgg16_bn": Zoo(
        lambda: torchvision.models.vgg16_bn(num_classes=10),
        lambda n: n.classifier[6], "vgg16_bn", {"torch_bn": True}, 64, None),
    "timm_vit_small_patch16_224": Zoo(
        lambda: timm.create_model("vit_small_patch16_224", img_size=64,
                                  num_classes=10),
        lambda n: n.head, "vit_s16", {}, 64, None),
    "torchvision_swin_t": Zoo(
        lambda: torchvision.models.swin_t(num_classes=10), lambda n: n.head,
        "swin_t", {}, 224, None),
    "timm_swin_tiny_patch4_window7_224": Zoo(
        lambda: timm.create_model("swin_tiny_patch4_window7_224", num_classes=10),
        lambda n: n.head.fc, "swin_t", {}, 224, None),
    "insightface_iresnet18": Zoo(
        arcface_iresnet.iresnet18, None, "iresnet18",
        {"num_classes": 0, "torch_bn": True}, 112, _branch_ends),
    "insightface_iresnet50": Zoo(
        arcface_iresnet.iresnet50, None, "iresnet50",
        {"num_classes": 0, "torch_bn": True}, 112, _branch_ends),
}
_APPLY = {}  # one jitted apply per flax model configuration (Swin is shared)


def zoo_flax(name):
  """(flax model, its jitted inference apply, image shape) for a ZOO entry."""
  zoo = ZOO[name]
  kwargs = {"num_classes": 10, **zoo.flax_kwargs}
  model = get_model(zoo.flax_name, mean=MEAN, std=STD, **kwargs)
  key = (zoo.flax_name, tuple(sorted(kwargs.items())))
  if key not in _APPLY:
    _APPLY[key] = jax.jit(lambda v, x: model.apply(v, x, train=False))
  return model, _APPLY[key], (zoo.size, zoo.size, 3)


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_imports_with_reference_logits_and_exports_strictly(name):
  """Import -> flax logits and features; export -> the reference's keys,
  loaded with strict=True into the zeroed reference, bit-identical to its
  weights; the reference then computes (one forward each) the flax outputs."""
  zoo = ZOO[name]
  torch.manual_seed(11)
  net = calibrate(zoo.build(), images((4, zoo.size, zoo.size, 3), seed=12),
                  seed=13, branch_ends=zoo.branch_ends)
  state = {k: v.clone() for k, v in net.state_dict().items()}
  model, apply, image_shape = zoo_flax(name)

  variables = torch_io.import_state_dict(model, state, image_shape=image_shape)
  x = images((2, zoo.size, zoo.size, 3), seed=14)
  logits, features = (np.asarray(a) for a in apply(variables, x))

  exported = torch_io.export_state_dict(model, variables, image_shape=image_shape,
                                        style=name.split("_")[0])
  assert sorted(exported) == sorted(state)
  with torch.no_grad():
    for value in net.state_dict().values():
      value.zero_()
  net.load_state_dict(exported, strict=True)
  for key, value in net.state_dict().items():
    if not key.endswith("num_batches_tracked"):
      assert torch.equal(value, state[key]), key

  ref_logits, ref_features = reference_outputs(
      net, zoo.head(net) if zoo.head else None, x)
  assert np.abs(ref_logits).max() > 0.1 and np.std(ref_logits) > 0.01
  print(f"\n{name}: max |logits - reference| "
        f"{np.abs(logits - ref_logits).max():.1e}, max |features - reference| "
        f"{np.abs(features - ref_features).max():.1e}")
  np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=1e-4)
  np.testing.assert_allclose(features, ref_features, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def iresnet18_state():
  torch.manual_seed(16)
  return arcface_iresnet.iresnet18().eval().state_dict()


def test_zoo_wrong_architecture_is_a_one_line_error(iresnet18_state):
  face = lambda name, **kw: get_model(name, num_classes=0, mean=MEAN, std=STD, **kw)
  cases = [
      (face("iresnet50"), iresnet18_state, (112, 112, 3),
       r"missing keys: layer1\.2\.bn1\.weight, .* \(\+\d+ more\)"),
      (face("iresnet18"), iresnet18_state, (64, 64, 3),
       r"shape mismatches: fc\.weight \(512, 25088\) vs model \(512, 8192\)"),
      (face("iresnet18"), {**iresnet18_state,
                           "features.weight": 2 * torch.ones(512)}, (112, 112, 3),
       r"values the model fixes differ: features\.weight"),
      (get_model("vit_s16", num_classes=10, mean=MEAN, std=STD),
       iresnet18_state, (32, 32, 3),
       r"missing keys: patch_embed\.proj\.weight, .*; unexpected keys: conv1\.weight"),
      (get_model("vgg16_bn", num_classes=10, mean=MEAN, std=STD, head="cifar"),
       iresnet18_state, (32, 32, 3), r"only the torchvision VGG"),
  ]
  for model, state, shape, pattern in cases:
    with pytest.raises(UserError, match=pattern) as info:
      torch_io.import_state_dict(model, state, image_shape=shape)
    assert "\n" not in str(info.value)
  with pytest.raises(UserError, match=r"naming style 'torchvision' for this vit; "
                     r"use timm$"):
    torch_io.export_state_dict(get_model("vit_s16", num_classes=10, mean=MEAN,
                                         std=STD), {}, style="torchvision")


def test_zoo_backbone_under_a_prefix_imports_and_exports_with_it(iresnet18_state):
  """A wrapper's state_dict (``backbone.conv1.weight``...) imports like the
  bare one and exports with its names."""
  model = get_model("iresnet18", num_classes=0, mean=MEAN, std=STD)
  wrapped = collections.OrderedDict(
      (f"backbone.{k}", v) for k, v in iresnet18_state.items())
  variables = torch_io.import_state_dict(model, wrapped, image_shape=(112, 112, 3))
  bare = torch_io.import_state_dict(model, iresnet18_state, image_shape=(112, 112, 3))
  assert all(jax.tree.leaves(jax.tree.map(np.array_equal, variables, bare)))
  exported = torch_io.export_state_dict(model, variables, image_shape=(112, 112, 3),
                                        template=wrapped)
  assert list(exported) == list(wrapped)
  exported = torch_io.export_state_dict(model, variables, image_shape=(112, 112, 3),
                                        prefix="backbone.")
  assert sorted(exported) == sorted(wrapped)
