"""Test helper: ResMem's forward in NumPy with PyTorch's semantics (NCHW, OIHW), independent of
memjax's Flax code, and a writer of random ResMem state_dicts in the package's `model.pt` layout.

The reference follows `resmem.ResMem.forward` and torchvision's `resnet152` line by line:
BatchNorm with running statistics (eps 1e-5, not folded), MaxPool2d with -inf padding,
LocalResponseNorm(5) as `torch.nn.functional.local_response_norm` computes it (mean of x^2 over
the zero-padded channel window, alpha 1e-4, beta 0.75, k 1), flatten in (C, H, W) order.
"""

import numpy as np


def conv2d(x, w, b, stride: int = 1, pad: int = 0, groups: int = 1) -> np.ndarray:
  """PyTorch Conv2d of one image x [C, H, W] with weight [O, C / groups, k, k]."""
  c, h, wd = x.shape
  o, _, k, _ = w.shape
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
  ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
  out = np.empty((o, ho, wo))
  cg, og = c // groups, o // groups
  for g in range(groups):
    xs = x[g * cg : (g + 1) * cg]
    cols = np.stack(
      [xs[:, i : i + stride * ho : stride, j : j + stride * wo : stride] for i in range(k)
       for j in range(k)], axis=1,
    ).reshape(cg * k * k, ho * wo)  # fmt: skip
    out[g * og : (g + 1) * og] = (w[g * og : (g + 1) * og].reshape(og, -1) @ cols).reshape(
      og, ho, wo
    )
  return out if b is None else out + b[:, None, None]


def max_pool(x, k: int = 3, stride: int = 2, pad: int = 0) -> np.ndarray:
  c, h, w = x.shape
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
  ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
  windows = [x[:, i : i + stride * ho : stride, j : j + stride * wo : stride] for i in range(k)
             for j in range(k)]  # fmt: skip
  return np.max(np.stack(windows), axis=0)


def batch_norm(x, t: dict, name: str) -> np.ndarray:
  mean, var = t[f'{name}.running_mean'], t[f'{name}.running_var']
  scale = t[f'{name}.weight'] / np.sqrt(var.astype(np.float64) + 1e-5)
  return (x - mean[:, None, None]) * scale[:, None, None] + t[f'{name}.bias'][:, None, None]


def lrn(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
  sq = np.pad(x * x, ((size // 2, (size - 1) // 2), (0, 0), (0, 0)))
  div = sum(sq[i : i + x.shape[0]] for i in range(size)) / size
  return x / (div * alpha + k) ** beta


def relu(x):
  return np.maximum(x, 0)


def resnet(x, t: dict, blocks) -> tuple[np.ndarray, np.ndarray]:
  """torchvision ResNet (bottleneck): (avgpool [2048], fc logits) of x [3, H, W]."""
  f = 'features.'
  x = relu(batch_norm(conv2d(x, t[f + 'conv1.weight'], None, 2, 3), t, f + 'bn1'))
  x = max_pool(x, 3, 2, 1)
  for i, n in enumerate(blocks):
    for j in range(n):
      p = f'{f}layer{i + 1}.{j}.'
      stride = 2 if i > 0 and j == 0 else 1
      h = relu(batch_norm(conv2d(x, t[p + 'conv1.weight'], None), t, p + 'bn1'))
      h = relu(batch_norm(conv2d(h, t[p + 'conv2.weight'], None, stride, 1), t, p + 'bn2'))
      h = batch_norm(conv2d(h, t[p + 'conv3.weight'], None), t, p + 'bn3')
      if j == 0:
        x = batch_norm(conv2d(x, t[p + 'downsample.0.weight'], None, stride), t, p + 'downsample.1')
      x = relu(h + x)
  pooled = x.mean(axis=(1, 2))
  return pooled, t[f + 'fc.weight'] @ pooled + t[f + 'fc.bias']


def resmem(image: np.ndarray, t: dict, blocks, head_layers: int = 7):
  """(pooled, score) of one uint8 [227, 227, 3] image, as resmem.ResMem.forward computes."""
  t = {k: np.asarray(v, np.float64) for k, v in t.items()}
  x = image.astype(np.float64).transpose(2, 0, 1) / 255.0
  pooled, logits = resnet(x, t, blocks)
  h = lrn(max_pool(relu(conv2d(x, t['conv1.weight'], t['conv1.bias'], 4))))
  h = lrn(max_pool(relu(conv2d(h, t['conv2.weight'], t['conv2.bias'], 1, 2, 2))))
  h = relu(conv2d(h, t['conv3.weight'], t['conv3.bias'], 1, 1, 2))
  h = relu(conv2d(h, t['conv4.weight'], t['conv4.bias'], 1, 1, 2))
  h = max_pool(relu(conv2d(h, t['conv5.weight'], t['conv5.bias'], 1, 1, 2)))
  z = np.concatenate([h.reshape(-1), logits])
  for i in range(6, 6 + head_layers - 1):
    z = relu(t[f'fc{i}.weight'] @ z + t[f'fc{i}.bias'])
  last = 5 + head_layers
  score = 1 / (1 + np.exp(-(t[f'fc{last}.weight'] @ z + t[f'fc{last}.bias'])))
  return pooled, float(score[0])


def random_state_dict(blocks, width, classes, alex, head, seed: int = 0) -> dict:
  """Random tensors named and shaped as resmem's model.pt (`num_batches_tracked` included)."""
  rng, t = np.random.default_rng(seed), {}

  def conv(name, o, i, k, bias=False):
    t[f'{name}.weight'] = rng.standard_normal((o, i, k, k)) * np.sqrt(2 / (i * k * k))
    if bias:
      t[f'{name}.bias'] = rng.standard_normal(o) * 0.05

  def bn(name, c):
    t[f'{name}.weight'] = 1 + 0.1 * rng.standard_normal(c)
    t[f'{name}.bias'] = 0.1 * rng.standard_normal(c)
    t[f'{name}.running_mean'] = 0.1 * rng.standard_normal(c)
    t[f'{name}.running_var'] = rng.uniform(0.5, 1.5, c)
    t[f'{name}.num_batches_tracked'] = np.array(100, np.int64)

  def dense(name, o, i):
    t[f'{name}.weight'] = rng.standard_normal((o, i)) * np.sqrt(1 / i)
    t[f'{name}.bias'] = rng.standard_normal(o) * 0.05

  conv('features.conv1', width, 3, 7)
  bn('features.bn1', width)
  c_in = width
  for i, n in enumerate(blocks):
    w = width * 2**i
    for j in range(n):
      p = f'features.layer{i + 1}.{j}.'
      conv(p + 'conv1', w, c_in, 1)
      bn(p + 'bn1', w)
      conv(p + 'conv2', w, w, 3)
      bn(p + 'bn2', w)
      conv(p + 'conv3', 4 * w, w, 1)
      bn(p + 'bn3', 4 * w)
      if j == 0:
        conv(p + 'downsample.0', 4 * w, c_in, 1)
        bn(p + 'downsample.1', 4 * w)
      c_in = 4 * w
  dense('features.fc', classes, c_in)
  ins = (3, alex[0] // 2, alex[1] // 2, alex[2] // 2, alex[3] // 2)
  for k, (o, i, size) in enumerate(zip(alex, ins, (11, 5, 3, 3, 3), strict=True)):
    conv(f'conv{k + 1}', o, i, size, bias=True)
  widths = [alex[4] * 36 + classes, *head, 1]
  for k in range(len(widths) - 1):
    dense(f'fc{6 + k}', widths[k + 1], widths[k])
  return {k: v if v.dtype == np.int64 else np.asarray(v, np.float32) for k, v in t.items()}
