"""PyTorch checkpoints in and out: state_dict <-> flax variables.

Users of the seeds' code own PyTorch weights (the DLFD release's
``*_original.pth`` / ``*_retrained.pth``, L2UL's CIFAR-10 ResNet-18); this
module brings them into the flax models and sends unlearned models back.

Supported layouts (detected from the keys):

- torchvision ResNet-18/50: ``conv1``, ``bn1``, ``layer{s}.{b}.conv{1,2,3}``,
  ``layer{s}.{b}.bn{1,2,3}``, ``layer{s}.{b}.downsample.{0,1}``, ``fc``;
- CIFAR ResNet-18 (kuangliu/pytorch-cifar style, also L2UL/SalUn):
  the same but ``shortcut.{0,1}`` and ``linear``;
- wrappers around either (DLFD): the backbone under any prefix
  (``base_model.``, ``features.``, ``model.``...), or torchvision's children in
  an ``nn.Sequential`` (``features.0`` = conv1, ``features.1`` = bn1,
  ``features.4..7`` = layer1..4). The wrapper's other layers (an MLP head of
  Linear/BatchNorm1d) pair with the flax model's remaining modules in order
  of definition; shapes are checked;
- ``module.`` prefixes (DataParallel) are stripped; a file may hold the
  state_dict itself or a dict with it under ``state_dict``/``model``/``net``.

Layout conversion: convolution weights OIHW -> HWIO, linear weights
[out, in] -> [in, out], BatchNorm ``weight``/``bias``/``running_mean``/
``running_var`` -> ``scale``/``bias``/``mean``/``var``;
``num_batches_tracked`` is ignored (exported as 0). The flax ResNets use
PyTorch's BatchNorm epsilon (1e-5) and momentum, so an imported model gives
PyTorch's inference-mode logits (tests/test_torch_io.py: to 1e-4); build the
model with ``torch_bn=True`` to also update the running variance as PyTorch
does when training further.

torch is an optional extra (``pip install jaxunlearn[torch]``): it is
imported only inside the functions that read or write ``.pt`` files.
"""
from __future__ import annotations

import collections
import re
from typing import Any, Mapping, Optional, Sequence

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
                    style: str = "torchvision", prefix: str = "",
                    template: Optional[Mapping[str, Any]] = None) -> None:
  """Writes ``export_state_dict(...)`` with ``torch.save``."""
  torch = _torch()
  torch.save(export_state_dict(model, variables, image_shape=image_shape,
                               style=style, prefix=prefix, template=template),
             path)


# --------------------------------------------------------------------------
# Name mapping.

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


def _resnet_root(modules) -> Optional[tuple]:
  for path in modules:
    if path and path[-1] == "stem_conv":
      return path[:-1]
  return None


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


def _torch_leaf(module_leaves: Mapping[str, tuple]) -> dict[str, str]:
  """flax leaf name -> torch parameter name within one module."""
  if "mean" in module_leaves or "scale" in module_leaves and "kernel" not in module_leaves:
    return {leaf: _BN_NAMES[leaf] for leaf in module_leaves}
  names = {"kernel": "weight", "bias": "bias", "negative_slope": "weight"}
  return {leaf: names.get(leaf, leaf) for leaf in module_leaves}


def _module_map(modules, torch_shapes: Mapping[str, tuple], style: Optional[str],
                prefix: Optional[str]) -> "collections.OrderedDict[tuple, str]":
  """flax module path -> torch module name (without the parameter suffix).

  ResNet modules are named; each other flax module (a wrapper's head) takes,
  in order, the next torch module no ResNet name claimed whose parameter
  names and shapes fit. With ``torch_shapes`` empty the canonical names for
  ``style``/``prefix`` are produced (other modules: their flax path).
  """
  root = _resnet_root(modules)
  if root is None:
    raise UserError("PyTorch import/export supports ResNet-18/50 and models "
                    "wrapping them (DLFD); this model has no ResNet backbone")
  torch_keys = [k for k in torch_shapes if not k.endswith("num_batches_tracked")]
  torch_modules = list(dict.fromkeys(k.rpartition(".")[0] for k in torch_keys))
  sequential = False
  if torch_keys:
    prefix, sequential = _resnet_prefix(torch_keys)
    if style is None:
      style = "cifar" if any(".shortcut." in k or k == prefix + "linear.weight"
                             for k in torch_keys) else "torchvision"
  prefix = prefix or ""
  mapping, leftovers = collections.OrderedDict(), []
  for path in modules:
    rel = path[len(root):] if path[:len(root)] == root else None
    name = _resnet_torch_name(rel, style) if rel else None
    if name is not None and sequential:
      name = _sequential_name(name)
    if name is not None and (not torch_keys or rel != ("head",)
                             or prefix + name in torch_modules):
      mapping[path] = prefix + name
    else:
      leftovers.append(path)
  claimed = set(mapping.values())
  free = [m for m in torch_modules if m not in claimed]
  for path in leftovers:
    mapping[path] = ".".join(path)
    expected = {torch_leaf: _torch_shape(modules[path][leaf][1])
                for leaf, torch_leaf in _torch_leaf(modules[path]).items()}
    for i, module in enumerate(free):
      found = {k.rpartition(".")[2]: tuple(torch_shapes[k]) for k in torch_keys
               if k.rpartition(".")[0] == module}
      if found == expected:
        mapping[path] = free.pop(i)
        break
  return mapping


def _to_torch_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.transpose(array, (3, 2, 0, 1))  # HWIO -> OIHW
  if array.ndim == 2:
    return array.T  # [in, out] -> [out, in]
  return array


def _from_torch_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:
    return np.transpose(array, (2, 3, 1, 0))  # OIHW -> HWIO
  if array.ndim == 2:
    return array.T
  return array


def _torch_shape(flax_shape: tuple) -> tuple:
  return tuple(_to_torch_layout(np.empty(flax_shape, np.uint8)).shape)


def _leaf_map(modules, module_map) -> "collections.OrderedDict[tuple, str]":
  """(collection, *flax path) -> full torch key, for every flax leaf."""
  leaves = collections.OrderedDict()
  for path, module_leaves in modules.items():
    for leaf, torch_leaf in _torch_leaf(module_leaves).items():
      collection = module_leaves[leaf][0]
      leaves[(collection, *path, leaf)] = f"{module_map[path]}.{torch_leaf}"
  return leaves


def _short(items: list, limit: int = 4) -> str:
  shown = ", ".join(items[:limit])
  return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------
# Import / export.

def import_state_dict(model, state_dict: Mapping[str, Any], *,
                      image_shape: Sequence[int] = (32, 32, 3),
                      where: str = "the state_dict") -> dict:
  """PyTorch state_dict -> flax ``{"params", "batch_stats"}`` (numpy arrays).

  Raises a one-line UserError listing missing keys, unexpected keys and
  shape mismatches (in PyTorch's layout) when the weights do not fit.
  """
  arrays = state_dict_to_numpy(state_dict, where)
  target = _abstract_variables(model, image_shape)
  modules = _modules(target)
  shapes = {k: tuple(v.shape) for k, v in arrays.items()}
  leaves = _leaf_map(modules, _module_map(modules, shapes, None, None))
  missing, mismatched, out = [], [], {}
  for (collection, *path), key in leaves.items():
    expected = _torch_shape(modules[tuple(path[:-1])][path[-1]][1])
    if key not in arrays:
      missing.append(key)
    elif tuple(arrays[key].shape) != expected:
      mismatched.append(f"{key} {tuple(arrays[key].shape)} vs model {expected}")
    else:
      out[(collection, *path)] = _from_torch_layout(arrays[key]).astype(np.float32)
  used = set(leaves.values())
  unexpected = [k for k in arrays if k not in used
                and not k.endswith("num_batches_tracked")]
  if missing or unexpected or mismatched:
    parts = [f"{label}: {_short(items)}" for label, items in
             (("missing keys", missing), ("unexpected keys", unexpected),
              ("shape mismatches", mismatched)) if items]
    raise UserError(f"{where} does not fit model {type(model).__name__}: "
                    + "; ".join(parts)
                    + " (check the architecture, stem and num_classes)")
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
                      style: str = "torchvision", prefix: str = "",
                      template: Optional[Mapping[str, Any]] = None,
                      as_torch: bool = True) -> "collections.OrderedDict":
  """Flax variables -> a PyTorch state_dict (torch tensors unless ``as_torch``
  is False), with torchvision (``style="torchvision"``) or CIFAR
  (``style="cifar"``) names under ``prefix``, or exactly the names of
  ``template`` (e.g. the state_dict the model was imported from). BatchNorm
  ``num_batches_tracked`` is written as 0."""
  if style not in ("torchvision", "cifar"):
    raise UserError(f"unknown export style {style!r}; use torchvision or cifar")
  target = _abstract_variables(model, image_shape)
  modules = _modules(target)
  template_shapes = ({k: tuple(v.shape) for k, v in
                      state_dict_to_numpy(template).items()}
                     if template is not None else {})
  template_keys = list(template_shapes)
  module_map = _module_map(modules, template_shapes,
                           None if template_keys else style, prefix)
  leaves = _leaf_map(modules, module_map)
  flat = {}
  for collection in ("params", "batch_stats"):
    for path, value in traverse_util.flatten_dict(
        dict(variables.get(collection, {}))).items():
      flat[(collection, *path)] = np.asarray(value)
  out = collections.OrderedDict()
  for leaf, key in leaves.items():
    if leaf not in flat:
      raise UserError(f"the variables lack {'/'.join(leaf)} that "
                      f"{type(model).__name__} has; export the variables of "
                      "this model")
    out[key] = np.ascontiguousarray(_to_torch_layout(flat[leaf]))
    if leaf[-1] == "var":
      out[key.rpartition(".")[0] + ".num_batches_tracked"] = np.zeros((), np.int64)
  if template_keys:  # the template's order
    order = {k: i for i, k in enumerate(template_keys)}
    out = collections.OrderedDict(sorted(out.items(),
                                         key=lambda kv: order.get(kv[0], 1 << 30)))
  if not as_torch:
    return out
  torch = _torch()
  return collections.OrderedDict((k, torch.from_numpy(v.copy()))
                                 for k, v in out.items())
