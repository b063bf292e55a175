"""PyTorch checkpoints in and out: state_dict <-> flax variables.

Users own PyTorch weights (the DLFD release's ``*_original.pth`` /
``*_retrained.pth``, L2UL's CIFAR-10 ResNet-18, models trained with
torchvision, timm or insightface); this module brings them into the flax
models and sends unlearned models back under the same names.

Supported layouts (detected from the keys on import; ``style`` on export):

- ResNet-18/50 (``resnet18``, ``resnet50``), ``style="torchvision"``:
  ``conv1``, ``bn1``, ``layer{s}.{b}.conv{1,2,3}``, ``layer{s}.{b}.bn{1,2,3}``,
  ``layer{s}.{b}.downsample.{0,1}``, ``fc``; ``style="cifar"`` (kuangliu's
  pytorch-cifar, also L2UL/SalUn): the same but ``shortcut.{0,1}`` and
  ``linear``;
- VGG16-bn (``vgg16_bn``, ``head="imagenet"``): torchvision ``vgg16_bn``,
  ``features.{i}`` (i counts every conv, BatchNorm, ReLU and pool),
  ``classifier.{0,3,6}``;
- ViT-S/16 (``vit_s16``), ``style="timm"``: timm ``vit_small_patch16_224``,
  ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
  ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``,
  ``head``; the position embedding's length follows ``image_shape`` (timm's
  ``img_size``);
- Swin-T (``swin_t``), ``style="torchvision"``: torchvision ``swin_t``,
  ``features.{0..7}`` (patch embedding, stage, merging, stage, ...), block
  MLPs ``mlp.{0,3}``, each block's ``attn.relative_position_index`` buffer;
  ``style="timm"``: timm ``swin_tiny_patch4_window7_224``, ``patch_embed.{proj,
  norm}``, ``layers.{s}.downsample`` (the merging that starts stage s+1),
  ``layers.{s}.blocks.{b}``, ``head.fc``;
- IResNet-18/50 (``iresnet18``, ``iresnet50``), ``style="insightface"``:
  arcface_torch's ``backbones/iresnet.py``, ``conv1``, ``bn1``, ``prelu``,
  ``layer{s}.{b}.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.{0,1}}``, ``bn2``,
  ``fc``, ``features``. That module is the backbone alone (ArcFace's
  classifier lives in the loss): import it into ``num_classes=0``. A flax
  classifier is written as ``head.weight``/``head.bias`` (the cosine head's
  weights as ``head.weight``, [classes, dim]);
- wrappers around any of them: the model under any prefix (``base_model.``,
  ``backbone.``, ``model.``...), or torchvision ResNet's children in an
  ``nn.Sequential`` (``features.0`` = conv1, ``features.1`` = bn1,
  ``features.4..7`` = layer1..4). The wrapper's other layers (an MLP head of
  Linear/BatchNorm1d) pair with the flax model's remaining modules in order
  of definition; shapes are checked;
- ``module.`` prefixes (DataParallel) are stripped; a file may hold the
  state_dict itself or a dict with it under ``state_dict``/``model``/``net``.

Layout conversion: convolution weights OIHW -> HWIO, linear weights
[out, in] -> [in, out]; the linear layer after a flatten (VGG's
``classifier.0``, IResNet's ``fc``) also reorders its inputs from torch's
(c, h, w) flatten to flax's (h, w, c). BatchNorm and LayerNorm ``weight``/
``bias``/``running_mean``/``running_var`` -> ``scale``/``bias``/``mean``/
``var``; ``num_batches_tracked`` is ignored (exported as 0). Tensors the flax
model fixes (torchvision Swin's relative position index, insightface's
embedding BatchNorm1d scale, frozen at 1) are checked on import and written
on export, so the reference loads the export with ``strict=True``.

An imported model gives the reference's inference-mode logits and features
to 1e-4 (tests/test_torch_io.py, against torchvision, timm and a copy of
arcface_torch's iresnet.py): the flax models use PyTorch's BatchNorm epsilon
and momentum and the references' LayerNorm epsilons and exact GELU. Swin
agrees at 224 px, where every stage is a multiple of the 7x7 window; on a
map smaller than the window flax and timm shrink the window to the map while
torchvision pads to it, and maps larger than the window but not a multiple
of it are rejected here (torchvision and timm pad them, differently). Build
BatchNorm models with ``torch_bn=True`` to also update the running variance
as PyTorch does when training further.

torch is an optional extra (``pip install jaxunlearn[torch]``): it is
imported only inside the functions that read or write ``.pt`` files.
"""
from __future__ import annotations

import collections
import re
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxunlearn.errors import UserError

_BN_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean",
             "var": "running_var"}
_WRAPPED_KEYS = ("state_dict", "model_state_dict", "model", "net", "state")


def _torch():
  try:
    import torch
  except ImportError:
    raise UserError("reading/writing PyTorch checkpoints needs torch: "
                    "pip install 'jaxunlearn[torch]'") from None
  return torch


# --------------------------------------------------------------------------
# Files.

def load_torch_file(path: str) -> "collections.OrderedDict[str, np.ndarray]":
  """Reads a ``.pt``/``.pth`` state_dict (``torch.load(weights_only=True)``)
  and returns it as numpy arrays, in the file's order."""
  torch = _torch()
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError:
    raise UserError(f"PyTorch checkpoint {path} does not exist") from None
  except Exception as error:  # noqa: BLE001 (pickle of a whole module, etc.)
    first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    raise UserError(f"could not read {path} with torch.load(weights_only=True) "
                    f"({first[:200]}); save model.state_dict() instead of the "
                    "model object") from None
  return state_dict_to_numpy(obj, where=path)


def state_dict_to_numpy(obj: Any, where: str = "state_dict"
                        ) -> "collections.OrderedDict[str, np.ndarray]":
  """A state_dict (or a checkpoint dict wrapping one) as numpy arrays."""
  if isinstance(obj, Mapping):
    for key in _WRAPPED_KEYS:
      if isinstance(obj.get(key), Mapping) and obj[key] and all(
          hasattr(v, "shape") for v in obj[key].values()):
        obj = obj[key]
        break
  if not isinstance(obj, Mapping) or not any(hasattr(v, "shape")
                                             for v in obj.values()):
    raise UserError(f"{where} holds no state_dict (a mapping of names to "
                    "tensors); save model.state_dict()")
  arrays = collections.OrderedDict()
  for key, value in obj.items():
    if not hasattr(value, "shape"):
      continue
    if hasattr(value, "detach"):  # a torch tensor
      value = value.detach().cpu()
      value = value.float() if value.is_floating_point() else value
      value = value.numpy()
    arrays[key] = np.asarray(value)
  keys = list(arrays)
  if keys and all(k.startswith("module.") for k in keys):  # DataParallel
    arrays = collections.OrderedDict((k[len("module."):], v)
                                     for k, v in arrays.items())
  return arrays


def save_torch_file(path: str, model, variables: dict, *,
                    image_shape: Sequence[int] = (32, 32, 3),
                    style: Optional[str] = None, prefix: str = "",
                    template: Optional[Mapping[str, Any]] = None) -> None:
  """Writes ``export_state_dict(...)`` with ``torch.save``."""
  torch = _torch()
  torch.save(export_state_dict(model, variables, image_shape=image_shape,
                               style=style, prefix=prefix, template=template),
             path)


# --------------------------------------------------------------------------
# Layouts: which flax module is which torch module.

# Naming styles each model family can be written in; the first is the default.
_STYLES = {"resnet": ("torchvision", "cifar"), "vgg": ("torchvision",),
           "vit": ("timm",), "swin": ("torchvision", "timm"),
           "iresnet": ("insightface",)}
_FAMILIES = ("ResNet-18/50, VGG16-bn, ViT-S/16, Swin-T, IResNet-18/50 and "
             "models wrapping them")


class _Leaf(NamedTuple):
  """One flax leaf's torch key and how its array is laid out there."""
  key: str
  kind: str = "same"  # "conv", "linear", "flatten" (a linear after a flatten)
  channels: int = 0  # "flatten": channels of the flattened feature map


def _to_torch_layout(array: np.ndarray, leaf: _Leaf) -> np.ndarray:
  if leaf.kind == "conv":
    return np.transpose(array, (3, 2, 0, 1))  # HWIO -> OIHW
  if leaf.kind == "linear":
    return array.T  # [in, out] -> [out, in]
  if leaf.kind == "flatten":
    # flax flattens an NHWC map as (h, w, c), torch an NCHW one as (c, h, w).
    out = array.shape[-1]
    return array.reshape(-1, leaf.channels, out).transpose(2, 1, 0).reshape(out, -1)
  return array


def _from_torch_layout(array: np.ndarray, leaf: _Leaf) -> np.ndarray:
  if leaf.kind == "conv":
    return np.transpose(array, (2, 3, 1, 0))  # OIHW -> HWIO
  if leaf.kind == "linear":
    return array.T
  if leaf.kind == "flatten":
    out = array.shape[0]
    return array.reshape(out, leaf.channels, -1).transpose(2, 1, 0).reshape(-1, out)
  return array


def _torch_shape(flax_shape: tuple, leaf: _Leaf) -> tuple:
  if leaf.kind == "conv":
    return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
  if leaf.kind in ("linear", "flatten"):
    return (flax_shape[1], flax_shape[0])
  return tuple(flax_shape)


def _abstract_variables(model, image_shape) -> dict:
  """Shapes of ``model``'s variables, in the order flax created them.

  ``jax.eval_shape`` returns dicts with sorted keys (pytree flattening), which
  would lose the definition order that PyTorch's state_dict follows; the
  traced function records the nested key order and it is restored here.
  """
  orders = []

  def init(key):
    variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32))
    orders.append(_key_order(variables))
    return variables

  return _reorder(jax.eval_shape(init, jax.random.key(0)), orders[0])


def _key_order(tree):
  if isinstance(tree, Mapping):
    return [(k, _key_order(v)) for k, v in tree.items()]
  return None


def _reorder(tree, order):
  if order is None:
    return tree
  return {k: _reorder(tree[k], sub) for k, sub in order}


def _modules(variables: Mapping) -> "collections.OrderedDict[tuple, dict]":
  """flax module path -> {leaf name: (collection, shape)}, in creation order."""
  modules = collections.OrderedDict()
  for collection in ("params", "batch_stats"):
    flat = traverse_util.flatten_dict(dict(variables.get(collection, {})))
    for path, leaf in flat.items():
      modules.setdefault(path[:-1], {})[path[-1]] = (collection, tuple(leaf.shape))
  return modules


def _find_family(modules) -> tuple[str, tuple]:
  """(model family, flax path of its root module) of the supported model in
  the variables (the model itself or a backbone inside a wrapper)."""
  for path, leaves in modules.items():
    if "cls_token" in leaves and "pos_embed" in leaves:
      return "vit", path
  for path in modules:
    if path and path[-1] == "stem_prelu":
      return "iresnet", path[:-1]
    if path and path[-1] == "patch_norm":
      return "swin", path[:-1]
  for path in modules:
    if path and path[-1] == "stem_conv":
      return "resnet", path[:-1]
    if path and path[-1] == "conv0" and path[:-1] + ("bn0",) in modules:
      return "vgg", path[:-1]
  raise UserError(f"PyTorch import/export supports {_FAMILIES}; this model "
                  "is none of them")


def _resnet_prefix(torch_keys: Sequence[str]) -> tuple[str, bool]:
  """(prefix of the ResNet backbone in the torch keys, is it an nn.Sequential
  of torchvision's children)."""
  for key in torch_keys:
    if key.endswith("layer1.0.conv1.weight"):
      return key[:-len("layer1.0.conv1.weight")], False
  for key in torch_keys:
    match = re.fullmatch(r"(.*?)4\.0\.conv1\.weight", key)
    if match and match.group(1) + "0.weight" in torch_keys:
      return match.group(1), True
  return "", False


def _resnet_torch_name(rel: tuple, style: str) -> Optional[str]:
  """torchvision (or CIFAR 'kuangliu') module name of a ResNet flax module."""
  if rel == ("stem_conv",):
    return "conv1"
  if rel == ("stem_bn",):
    return "bn1"
  if rel == ("head",):
    return "linear" if style == "cifar" else "fc"
  match = re.fullmatch(r"stage(\d+)_block(\d+)", rel[0]) if len(rel) == 2 else None
  if not match:
    return None
  shortcut = "shortcut" if style == "cifar" else "downsample"
  inner = {"shortcut_conv": f"{shortcut}.0",
           "shortcut_bn": f"{shortcut}.1"}.get(rel[1], rel[1])
  return f"layer{match.group(1)}.{match.group(2)}.{inner}"


def _sequential_name(name: str) -> str:
  """torchvision child name -> its index in nn.Sequential(*children)."""
  head, _, rest = name.partition(".")
  index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5",
           "layer3": "6", "layer4": "7"}.get(head)
  return name if index is None else ".".join(filter(None, [index, rest]))


def _vgg_torch_name(rel: tuple, layers: Sequence) -> Optional[str]:
  """torchvision ``vgg*_bn``: ``features.i`` counts every conv, BatchNorm,
  ReLU and max-pool of ``layers``; the classifier is Linear, ReLU, Dropout,
  Linear, ReLU, Dropout, Linear."""
  index, position, conv = {}, 0, 0
  for layer in layers:
    if layer == "M":
      position += 1
      continue
    index[f"conv{conv}"], index[f"bn{conv}"] = position, position + 1
    position, conv = position + 3, conv + 1
  if len(rel) == 1 and rel[0] in index:
    return f"features.{index[rel[0]]}"
  return {("fc1",): "classifier.0", ("fc2",): "classifier.3",
          ("head",): "classifier.6"}.get(rel)


def _vit_torch_name(rel: tuple) -> Optional[str]:
  """timm ``vit_*``: the class token and position embedding at the top."""
  if rel == ():
    return ""
  if rel == ("patch_embed",):
    return "patch_embed.proj"
  match = re.fullmatch(r"block(\d+)", rel[0])
  if match:  # norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2
    return ".".join((f"blocks.{match.group(1)}",) + rel[1:])
  return {("norm",): "norm", ("head",): "head"}.get(rel)


def _swin_torch_name(rel: tuple, style: str) -> Optional[str]:
  """torchvision ``swin_t``: ``features`` = [patch embedding, stage 1,
  merging 1, stage 2, ...], the MLP an nn.Sequential (``mlp.0``, ``mlp.3``).
  timm ``swin_*``: ``layers.s`` holds the merging that starts stage s+1
  (``downsample``) and its ``blocks``; the head is ``head.fc``."""
  tv = style == "torchvision"
  if rel == ("patch_embed",):
    return "features.0.0" if tv else "patch_embed.proj"
  if rel == ("patch_norm",):
    return "features.0.2" if tv else "patch_embed.norm"
  if rel == ("norm",):
    return "norm"
  if rel == ("head",):
    return "head" if tv else "head.fc"
  block = re.fullmatch(r"stage(\d+)_block(\d+)", rel[0]) if rel else None
  if block:
    stage, index = int(block.group(1)), block.group(2)
    inner = ".".join(rel[1:])
    if tv:
      inner = {"mlp.fc1": "mlp.0", "mlp.fc2": "mlp.3"}.get(inner, inner)
    base = (f"features.{2 * stage - 1}.{index}" if tv
            else f"layers.{stage - 1}.blocks.{index}")
    return ".".join(filter(None, [base, inner]))
  merge = re.fullmatch(r"merge(\d+)", rel[0]) if rel else None
  if merge and len(rel) == 2:
    stage = int(merge.group(1))
    base = f"features.{2 * stage}" if tv else f"layers.{stage}.downsample"
    return f"{base}.{rel[1]}"
  return None


def _iresnet_torch_name(rel: tuple) -> Optional[str]:
  """insightface ``arcface_torch/backbones/iresnet.py``. Its classifier lives
  in the loss, not the backbone; the flax head is written as ``head``."""
  fixed = {(): "", ("stem_conv",): "conv1", ("stem_bn",): "bn1",
           ("stem_prelu",): "prelu", ("out_bn",): "bn2", ("fc",): "fc",
           ("embedding_bn",): "features", ("head",): "head"}
  if rel in fixed:
    return fixed[rel]
  match = re.fullmatch(r"stage(\d+)_block(\d+)", rel[0]) if len(rel) == 2 else None
  if not match:
    return None
  inner = {"shortcut_conv": "downsample.0",
           "shortcut_bn": "downsample.1"}.get(rel[1], rel[1])
  return f"layer{match.group(1)}.{match.group(2)}.{inner}"


def _family_torch_name(family: str, rel: tuple, style: str,
                       vgg_layers: Sequence) -> Optional[str]:
  if family == "resnet":
    return _resnet_torch_name(rel, style) if rel else None
  if family == "vgg":
    return _vgg_torch_name(rel, vgg_layers)
  if family == "vit":
    return _vit_torch_name(rel)
  if family == "swin":
    return _swin_torch_name(rel, style)
  return _iresnet_torch_name(rel)


def _torch_leaf(module_leaves: Mapping[str, tuple]) -> dict[str, str]:
  """flax leaf name -> torch parameter name within one module."""
  if "mean" in module_leaves or ("scale" in module_leaves
                                 and "kernel" not in module_leaves):
    return {leaf: _BN_NAMES.get(leaf, leaf) for leaf in module_leaves}
  names = {"kernel": "weight", "bias": "bias", "negative_slope": "weight"}
  return {leaf: names.get(leaf, leaf) for leaf in module_leaves}


class _Mapping(NamedTuple):
  family: str
  root: tuple
  style: str
  modules: "collections.OrderedDict[tuple, str]"  # flax path -> torch module


def _first_key(family: str, style: str, vgg_layers: Sequence) -> str:
  """The first torch key of a family's naming style (finds the prefix)."""
  first = {"vgg": _vgg_torch_name(("conv0",), vgg_layers) or "",
           "vit": "patch_embed.proj",
           "swin": _swin_torch_name(("patch_embed",), style),
           "iresnet": "conv1"}[family]
  return first + ".weight"


def _detect(family: str, torch_keys: Sequence[str], vgg_layers: Sequence
            ) -> tuple[Optional[str], str]:
  """(naming style, prefix) of a state_dict of ``family``, or (None, "")."""
  for style in _STYLES[family]:
    first = _first_key(family, style, vgg_layers)
    for key in torch_keys:
      if key == first or key.endswith("." + first):
        return style, key[:-len(first)]
  return None, ""


def _module_map(model, modules, torch_shapes: Mapping[str, tuple],
                style: Optional[str], prefix: Optional[str]) -> _Mapping:
  """flax module path -> torch module name (without the parameter suffix).

  The supported model's modules are named; each other flax module (a
  wrapper's head) takes, in order, the next torch module nobody claimed whose
  parameter names and shapes fit. With ``torch_shapes`` empty the canonical
  names for ``style``/``prefix`` are produced (other modules: their flax path).
  """
  family, root = _find_family(modules)
  # The VGG layer list sets torchvision's indices; a VGG inside a wrapper is
  # taken to be VGG16.
  from jaxunlearn.models.vgg import VGG16
  vgg_layers = getattr(model, "layers", VGG16) if root == () else VGG16
  if family == "vgg" and root + ("fc1",) not in modules:
    raise UserError("only the torchvision VGG (head='imagenet') has a PyTorch "
                    "layout; this VGG has head='cifar'")
  torch_keys = [k for k in torch_shapes if not k.endswith("num_batches_tracked")]
  torch_modules = list(dict.fromkeys(k.rpartition(".")[0] for k in torch_keys))
  sequential = False
  if torch_keys and family == "resnet":
    prefix, sequential = _resnet_prefix(torch_keys)
    if style is None:
      style = "cifar" if any(".shortcut." in k or k == prefix + "linear.weight"
                             for k in torch_keys) else "torchvision"
  elif torch_keys:
    detected, prefix = _detect(family, torch_keys, vgg_layers)
    style = style or detected
  style = style or _STYLES[family][0]
  if style not in _STYLES[family]:
    raise UserError(f"unknown PyTorch naming style {style!r} for this "
                    f"{family}; use {' or '.join(_STYLES[family])}")
  prefix = prefix or ""
  mapping, leftovers = collections.OrderedDict(), []
  for path in modules:
    rel = _relative(path, root)
    name = (_family_torch_name(family, rel, style, vgg_layers)
            if rel is not None else None)
    if name is not None and sequential:
      name = _sequential_name(name)
    if name is not None and (not torch_keys or rel != ("head",)
                             or prefix + name in torch_modules):
      mapping[path] = prefix + name if name else prefix.rstrip(".")
    else:
      leftovers.append(path)
  claimed = set(mapping.values())
  free = [m for m in torch_modules if m not in claimed]
  for path in leftovers:
    mapping[path] = ".".join(path)
    leaves = _module_leaves(family, root, path, modules, mapping[path])
    expected = {leaf.key.rpartition(".")[2]:
                _torch_shape(modules[path][name][1], leaf)
                for name, leaf in leaves.items()}
    for i, module in enumerate(free):
      found = {k.rpartition(".")[2]: tuple(torch_shapes[k]) for k in torch_keys
               if k.rpartition(".")[0] == module}
      if found == expected:
        mapping[path] = free.pop(i)
        break
  return _Mapping(family, root, style, mapping)


def _module_leaves(family: str, root: tuple, path: tuple, modules,
                   torch_module: str) -> dict[str, _Leaf]:
  """flax leaf name -> _Leaf for the leaves of one flax module."""
  rel = _relative(path, root)
  out = {}
  for name, torch_name in _torch_leaf(modules[path]).items():
    shape = modules[path][name][1]
    kind = "same"
    if name == "kernel":
      kind = {4: "conv", 2: "linear"}.get(len(shape), "same")
    channels = 0
    if kind == "linear" and (family, rel) in (("vgg", ("fc1",)),
                                              ("iresnet", ("fc",))):
      # The Dense after the flatten of the last feature map.
      source = "out_bn" if family == "iresnet" else _last_bn(modules, root)
      channels = modules[root + (source,)]["mean"][1][0]
      kind = "flatten"
    if family == "iresnet" and rel == () and name == "head":
      torch_name, kind = "head.weight", "linear"  # cosine head: [classes, dim]
    key = f"{torch_module}.{torch_name}" if torch_module else torch_name
    out[name] = _Leaf(key, kind, channels)
  return out


def _relative(path: tuple, root: tuple) -> Optional[tuple]:
  """``path`` below ``root``, or None outside it."""
  return path[len(root):] if path[:len(root)] == root else None


def _last_bn(modules, root: tuple) -> str:
  count = sum(1 for p in modules if _relative(p, root) is not None
              and len(p) == len(root) + 1 and re.fullmatch(r"bn\d+", p[-1]))
  return f"bn{count - 1}"


def _leaf_map(modules, mapping: _Mapping) -> "collections.OrderedDict[tuple, _Leaf]":
  """(collection, *flax path) -> _Leaf, for every flax leaf."""
  leaves = collections.OrderedDict()
  for path, module_leaves in modules.items():
    for name, leaf in _module_leaves(mapping.family, mapping.root, path, modules,
                                     mapping.modules[path]).items():
      leaves[(module_leaves[name][0], *path, name)] = leaf
  return leaves


def _constants(modules, mapping: _Mapping
               ) -> list[tuple[Optional[str], str, np.ndarray]]:
  """Tensors the reference's state_dict holds that the flax model fixes:
  (torch key it follows in the state_dict or None: first of its module,
  key, value). torchvision's Swin stores each block's relative position
  index (a function of the window); insightface's embedding BatchNorm1d its
  scale, frozen at 1."""
  from jaxunlearn.models.swin import relative_position_index
  out = []
  for path, leaves in modules.items():
    rel = _relative(path, mapping.root)
    name = mapping.modules[path]
    if (mapping.family, mapping.style) == ("swin", "torchvision") and \
        "relative_position_bias_table" in leaves:
      rows = leaves["relative_position_bias_table"][1][0]
      window = (int(round(np.sqrt(rows))) + 1) // 2  # rows = (2w - 1)^2
      out.append((f"{name}.relative_position_bias_table",
                  f"{name}.relative_position_index",
                  relative_position_index(window).reshape(-1).astype(np.int64)))
    if (mapping.family == "iresnet" and rel == ("embedding_bn",)
        and "scale" not in leaves):
      out.append((None, f"{name}.weight",
                  np.ones(leaves["mean"][1], np.float32)))
  return out


def _fresh(array: np.ndarray, source: np.ndarray) -> np.ndarray:
  """``array`` as C-contiguous float32 memory of its own: the result must not
  change when the tensors it came from do (a model trained further), and
  copying once is what the 138M parameters of VGG16 can afford."""
  if np.may_share_memory(array, source):
    return np.array(array, np.float32, order="C")
  return np.ascontiguousarray(array, np.float32)


def _short(items: list, limit: int = 4) -> str:
  shown = ", ".join(items[:limit])
  return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------
# Import / export.

def import_state_dict(model, state_dict: Mapping[str, Any], *,
                      image_shape: Sequence[int] = (32, 32, 3),
                      where: str = "the state_dict") -> dict:
  """PyTorch state_dict -> flax ``{"params", "batch_stats"}`` (numpy arrays).

  ``image_shape`` is the input the model is built for (it sets the length
  of ViT's position embedding and the size of IResNet's FC). Raises a
  one-line UserError listing missing keys, unexpected keys and shape
  mismatches (in PyTorch's layout) when the weights do not fit.
  """
  arrays = state_dict_to_numpy(state_dict, where)
  target = _abstract_variables(model, image_shape)
  modules = _modules(target)
  shapes = {k: tuple(v.shape) for k, v in arrays.items()}
  mapping = _module_map(model, modules, shapes, None, None)
  leaves = _leaf_map(modules, mapping)
  missing, mismatched, out = [], [], {}
  for (collection, *path), leaf in leaves.items():
    expected = _torch_shape(modules[tuple(path[:-1])][path[-1]][1], leaf)
    if leaf.key not in arrays:
      missing.append(leaf.key)
    elif tuple(arrays[leaf.key].shape) != expected:
      mismatched.append(
          f"{leaf.key} {tuple(arrays[leaf.key].shape)} vs model {expected}")
    else:
      out[(collection, *path)] = _fresh(
          _from_torch_layout(arrays[leaf.key], leaf), arrays[leaf.key])
  used = {leaf.key for leaf in leaves.values()}
  differing = []
  for _, key, value in _constants(modules, mapping):
    used.add(key)
    if key in arrays and (arrays[key].shape != value.shape
                          or not np.array_equal(arrays[key], value)):
      differing.append(key)
  unexpected = [k for k in arrays if k not in used
                and not k.endswith("num_batches_tracked")]
  if missing or unexpected or mismatched or differing:
    parts = [f"{label}: {_short(items)}" for label, items in
             (("missing keys", missing), ("unexpected keys", unexpected),
              ("shape mismatches", mismatched),
              ("values the model fixes differ", differing)) if items]
    head = mapping.modules.get(mapping.root + ("head",))
    hint = "check the architecture, num_classes and image_shape"
    if (mapping.family in ("resnet", "iresnet") and head and not unexpected
        and all(k.startswith(head + ".") for k in missing)):
      hint = ("the state_dict has no classifier: build the model with "
              "num_classes=0 for the backbone alone")
    raise UserError(f"{where} does not fit model {type(model).__name__}: "
                    + "; ".join(parts) + f" ({hint})")
  variables = traverse_util.unflatten_dict(out)
  return {"params": variables.get("params", {}),
          "batch_stats": variables.get("batch_stats", {})}


def load_variables(path: str, model, *, image_shape: Sequence[int] = (32, 32, 3)
                   ) -> dict:
  """A ``.pt``/``.pth`` file -> flax variables for ``model``."""
  return import_state_dict(model, load_torch_file(path), image_shape=image_shape,
                           where=path)


def export_state_dict(model, variables: dict, *,
                      image_shape: Sequence[int] = (32, 32, 3),
                      style: Optional[str] = None, prefix: str = "",
                      template: Optional[Mapping[str, Any]] = None,
                      as_torch: bool = True) -> "collections.OrderedDict":
  """Flax variables -> a PyTorch state_dict (torch tensors unless ``as_torch``
  is False) with the names of the reference implementation in ``style``
  (ResNet: ``"torchvision"`` or ``"cifar"``; VGG: ``"torchvision"``; ViT:
  ``"timm"``; Swin: ``"torchvision"`` or ``"timm"``; IResNet:
  ``"insightface"``; None: the first of these) under ``prefix``, or exactly the
  names of ``template`` (e.g. the state_dict the model was imported from).
  BatchNorm ``num_batches_tracked`` is written as 0."""
  target = _abstract_variables(model, image_shape)
  modules = _modules(target)
  template_shapes = ({k: tuple(v.shape) for k, v in
                      state_dict_to_numpy(template).items()}
                     if template is not None else {})
  template_keys = list(template_shapes)
  mapping = _module_map(model, modules, template_shapes,
                        None if template_keys else style, prefix)
  leaves = _leaf_map(modules, mapping)
  flat = {}
  for collection in ("params", "batch_stats"):
    for path, value in traverse_util.flatten_dict(
        dict(variables.get(collection, {}))).items():
      flat[(collection, *path)] = np.asarray(value)
  after = collections.defaultdict(list)  # torch key -> constants that follow it
  before = []
  for neighbour, key, value in _constants(modules, mapping):
    (after[neighbour] if neighbour else before).append((key, value))
  out = collections.OrderedDict()
  for path, leaf in leaves.items():
    if path not in flat:
      raise UserError(f"the variables lack {'/'.join(path)} that "
                      f"{type(model).__name__} has; export the variables of "
                      "this model")
    for key, value in before:  # a frozen BatchNorm scale precedes its bias
      if key not in out and key.rpartition(".")[0] == leaf.key.rpartition(".")[0]:
        out[key] = value
    out[leaf.key] = _fresh(_to_torch_layout(flat[path], leaf), flat[path])
    out.update(after[leaf.key])
    if path[-1] == "var":
      module = leaf.key.rpartition(".")[0]
      out[module + ".num_batches_tracked"] = np.zeros((), np.int64)
  if template_keys:  # the template's order
    order = {k: i for i, k in enumerate(template_keys)}
    out = collections.OrderedDict(sorted(out.items(),
                                         key=lambda kv: order.get(kv[0], 1 << 30)))
  if not as_torch:
    return out
  torch = _torch()
  return collections.OrderedDict((k, torch.from_numpy(v))
                                 for k, v in out.items())
