"""PyTorch versions of the library's models and steps, for the benchmarks' comparators.

The same architectures as ``jaxunlearn/models`` (small CNN, CIFAR ResNet-18),
``small_cnn_from_flax``, which copies a flax small CNN's weights into the
PyTorch one so both frameworks start from the same model, and one step of
each method written as the authors' code (or, for IEU, our definition)
structures it. Steps take ``norm`` (images in [0, 1] -> the model's input;
our models normalise inside, the authors normalise before the call).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

ce = nn.functional.cross_entropy


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


def normalizer(mean, std):
  """``x -> (x - mean) / std`` per channel, for [N, C, H, W] images."""
  mean_t, std_t = channel_stats(mean, std)
  return lambda x: (x - mean_t) / std_t


# --------------------------------------------------------------------------
# One step of each method (as the authors' code writes it).

def torch_finetune_step(net, opt, norm, x, y):
  """CE on a batch in training mode, one optimiser step."""
  net.train()
  opt.zero_grad(set_to_none=True)
  ce(net(norm(x)), y).backward()
  opt.step()


def torch_delete_step(net, teacher, opt, norm, x, y):
  """DELETE: KL(softmax(teacher logits, own label masked) || student)."""
  with torch.no_grad():
    q = torch.softmax(teacher(norm(x)).scatter(1, y[:, None], -1e10), 1)
  net.train()
  opt.zero_grad(set_to_none=True)
  log_p = torch.log_softmax(net(norm(x)), 1)
  nn.functional.kl_div(log_p, q, reduction="batchmean").backward()
  opt.step()


def torch_ieu_step(net, cfg, norm, x, y, xf, yf):
  """IEU (our definition, jaxunlearn/methods/ieu.py, momentum 0, σ = σ0):
  ``θ ← (1 − ηλ)θ − η(g_r − α clip(g_f)) + σ ξ``."""
  net.train()
  params = [p for p in net.parameters() if p.requires_grad]
  g_r = torch.autograd.grad(ce(net(norm(x)), y), params)
  g_f = torch.autograd.grad(ce(net(norm(xf)), yf), params)
  norm_f = torch.sqrt(sum((g * g).sum() for g in g_f))
  scale = torch.clamp(cfg.clip_norm / (norm_f + 1e-12), max=1.0)
  with torch.no_grad():
    for p, r, f in zip(params, g_r, g_f):
      p.mul_(1 - cfg.lr * cfg.weight_decay)
      p.sub_(cfg.lr * (r - cfg.alpha * scale * f))
      p.add_(cfg.sigma0 * torch.randn_like(p))


def torch_mas_importance(net, norm, x_f):
  """L2UL's Ω̂: |∂ mean ||logits||₂ / ∂θ| (training mode), min-max normalised
  per tensor and inverted (1 where max = min); BatchNorm buffers restored."""
  net.train()
  buffers = {k: v.clone() for k, v in net.named_buffers()}
  net.zero_grad(set_to_none=True)
  net(norm(x_f)).norm(dim=1).mean().backward()
  omega = []
  for p in net.parameters():
    g = p.grad.abs()
    span = g.max() - g.min()
    omega.append(1.0 - (g - g.min()) / span if span > 0 else torch.ones_like(g))
  net.zero_grad(set_to_none=True)
  with torch.no_grad():
    for k, v in net.named_buffers():
      v.copy_(buffers[k])
  return omega


def torch_l2ul_forgotten(net, norm, x_f, y_f) -> bool:
  """L2UL's stop rule: no forget sample classified as its label (inference)."""
  net.eval()
  with torch.no_grad():
    return bool((net(norm(x_f)).argmax(1) != y_f).all())


def torch_l2ul_step(net, opt, norm, x_f, y_f, adv_x, adv_t, omega, theta0, lam):
  """One L2UL update (full variant): two training-mode forwards,
  ``(-B_f CE(x_f, y_f) + B_a CE(x_a, t_a)) / (B_f + B_a) + λ Σ Ω̂ (θ - θ0)² / 2``."""
  net.train()
  b_f, b_a = len(y_f), len(adv_t)
  loss = (-b_f * ce(net(norm(x_f)), y_f) + b_a * ce(net(norm(adv_x)), adv_t)
          ) / (b_f + b_a)
  loss = loss + lam * sum((o * (p - p0) ** 2).sum() for o, p, p0 in
                          zip(omega, net.parameters(), theta0)) / 2
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()


def sinkhorn_cost(x, y, epsilon, iters):
  """<π, C> of log-domain entropic OT, cost max(0, 1 - cos), uniform marginals."""
  xn = x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)
  yn = y / y.norm(dim=1, keepdim=True).clamp_min(1e-8)
  cost = (1.0 - xn @ yn.T).clamp_min(0.0)
  n, m = cost.shape
  log_a, log_b = -math.log(n), -math.log(m)
  f, g = x.new_zeros(n), x.new_zeros(m)
  for _ in range(iters):
    f = -epsilon * torch.logsumexp((g[None, :] - cost) / epsilon + log_b, dim=1)
    g = -epsilon * torch.logsumexp((f[:, None] - cost) / epsilon + log_a, dim=0)
  plan = torch.exp(log_a + log_b + (f[:, None] + g[None, :] - cost) / epsilon)
  return (plan * cost).sum()


def torch_dlfd_synthesis(net, norm, std_t, x, y, xf, cfg, w_r):
  """DLFD's perturbed retain images (paper variant): ``cfg.steps`` signed
  steps ``δ ← δ + α sign(∇_δ [w_f OT(f(x̃), f(x_f)) - w_r CE(f(x̃), y)])``,
  ``x̃ = clip(x + δ std, 0, 1)``, forget logits computed once without
  gradient; training-mode forwards, BatchNorm buffers restored after."""
  net.train()
  buffers = {k: v.clone() for k, v in net.named_buffers()}
  with torch.no_grad():
    f_logits = net(norm(xf))
  delta = torch.zeros_like(x)
  for _ in range(cfg.steps):
    delta.requires_grad_(True)
    logits = net(norm((x + delta * std_t).clamp(0.0, 1.0)))
    objective = (cfg.w_f * sinkhorn_cost(logits, f_logits, cfg.epsilon,
                                         cfg.sinkhorn_iters)
                 - w_r * ce(logits, y))
    grad, = torch.autograd.grad(objective, delta)
    delta = (delta + cfg.alpha * grad.sign()).detach()
  with torch.no_grad():
    for k, v in net.named_buffers():
      v.copy_(buffers[k])
  return (x + delta * std_t).clamp(0.0, 1.0)
