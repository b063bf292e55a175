"""PyTorch versions of the library's models, for the benchmarks' comparators.

The same architectures as ``jaxunlearn/models`` (small CNN, CIFAR ResNet-18),
and ``small_cnn_from_flax``, which copies a flax small CNN's weights into
the PyTorch one so both frameworks start from the same model.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TorchSmallCNN(nn.Module):
  def __init__(self, num_classes=10, widths=(32, 64, 128), in_channels=3):
    super().__init__()
    layers, cin = [], in_channels
    for i, w in enumerate(widths):
      layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                 nn.ReLU()]
      if i == 1:
        layers.append(nn.MaxPool2d(2))
      cin = w
    self.body = nn.Sequential(*layers)
    self.head = nn.Linear(cin, num_classes)

  def forward(self, x):
    return self.head(self.body(x).mean((2, 3)))


class Block(nn.Module):
  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.shortcut = nn.Sequential()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                    nn.BatchNorm2d(cout))

  def forward(self, x):
    y = torch.relu(self.bn1(self.conv1(x)))
    return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class TorchResNet18(nn.Module):
  def __init__(self, num_classes=10):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    blocks, cin = [], 64
    for stage, cout in enumerate((64, 128, 256, 512)):
      for b in range(2):
        blocks.append(Block(cin, cout, 2 if stage and not b else 1))
        cin = cout
    self.blocks = nn.Sequential(*blocks)
    self.linear = nn.Linear(512, num_classes)

  def forward(self, x):
    x = torch.relu(self.bn1(self.conv1(x)))
    return self.linear(self.blocks(x).mean((2, 3)))


def small_cnn_from_flax(variables, num_classes: int, in_channels: int) -> TorchSmallCNN:
  """A ``TorchSmallCNN`` holding the flax ``SmallCNN`` variables (conv HWIO ->
  OIHW, dense [in, out] -> [out, in], BatchNorm scale/bias/mean/var)."""
  params, stats = variables["params"], variables["batch_stats"]
  net = TorchSmallCNN(num_classes, in_channels=in_channels)
  convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
  norms = [m for m in net.body if isinstance(m, nn.BatchNorm2d)]
  t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))
  with torch.no_grad():
    for i, (conv, bn) in enumerate(zip(convs, norms)):
      conv.weight.copy_(t(np.transpose(params[f"conv{i}"]["kernel"], (3, 2, 0, 1))))
      bn.weight.copy_(t(params[f"bn{i}"]["scale"]))
      bn.bias.copy_(t(params[f"bn{i}"]["bias"]))
      bn.running_mean.copy_(t(stats[f"bn{i}"]["mean"]))
      bn.running_var.copy_(t(stats[f"bn{i}"]["var"]))
    net.head.weight.copy_(t(np.asarray(params["head"]["kernel"]).T))
    net.head.bias.copy_(t(params["head"]["bias"]))
  return net


def torch_images(images) -> torch.Tensor:
  """[N, H, W, C] in [0, 1] -> [N, C, H, W] float tensor."""
  return torch.from_numpy(np.ascontiguousarray(
      np.transpose(np.asarray(images, np.float32), (0, 3, 1, 2))))


def channel_stats(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
  """Per-channel mean and std shaped [1, C, 1, 1] (our models normalise inside)."""
  shape = (1, -1, 1, 1)
  return (torch.tensor(mean, dtype=torch.float32).view(shape),
          torch.tensor(std, dtype=torch.float32).view(shape))


def eval_logits(net, images, mean, std) -> np.ndarray:
  """Inference-mode logits of ``images`` ([N, H, W, C] in [0, 1])."""
  mean_t, std_t = channel_stats(mean, std)
  net.eval()
  with torch.no_grad():
    return net((torch_images(images) - mean_t) / std_t).numpy()
