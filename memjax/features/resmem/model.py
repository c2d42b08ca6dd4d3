"""torchvision's ResNet (bottleneck, v1.5) and ResMem's network, in Flax Linen (NHWC), inference.

ResMem (Needell & Bainbridge, "Embracing new techniques in deep learning for estimating image
memorability", Computational Brain & Behavior 2022; `pip install resmem`, non-commercial
licence) scores memorability from two branches of the same 227 x 227 RGB / 255 input (no mean
or std):

* a ResNet-152 (torchvision's layout, layers (3, 8, 36, 3)); its 1000-d ImageNet logits;
* an AlexNet-like branch: conv 11/4 (48) - maxpool 3/2 - LRN(5) - conv 5 (256, 2 groups) -
  maxpool - LRN - conv 3 (384, 2 groups) - conv 3 (384, 2 groups) - conv 3 (256, 2 groups) -
  maxpool: 256 x 6 x 6 = 9216 values, flattened in PyTorch's (C, H, W) order;

then both concatenated (9216 + 1000) through fc6..fc11 (4096, 4096, 2048, 1024, 512, 256; ReLU)
and fc12 + sigmoid: the score in [0, 1]. Dropout is inactive at inference. BatchNorm is folded
into the convolutions at load time (`weights.py`). The widths are read from the weight file,
so tests run the same code on narrow networks.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 1.0  # torch.nn.LocalResponseNorm(5)


@dataclasses.dataclass(frozen=True)
class ResMemConfig:
  """The widths of a ResMem network (the published one: the defaults).

  Attributes:
    blocks: bottleneck blocks per ResNet stage ((3, 8, 36, 3): ResNet-152).
    width: the ResNet stem's channels; stage i's bottlenecks are width * 2**i wide, 4x out.
    classes: the ResNet's fc outputs (ImageNet's 1000).
    alex: output channels of the AlexNet-like branch's five convolutions.
    head: widths of fc6..fc11 (fc12 gives the score).
    image_size: the input side (the branch's 6 x 6 map needs 227).
  """

  blocks: tuple[int, ...] = (3, 8, 36, 3)
  width: int = 64
  classes: int = 1000
  alex: tuple[int, ...] = (48, 256, 384, 384, 256)
  head: tuple[int, ...] = (4096, 4096, 2048, 1024, 512, 256)
  image_size: int = 227

  @property
  def pooled_dim(self) -> int:
    return self.width * 2 ** (len(self.blocks) - 1) * 4


def _conv(features: int, k: int, stride: int, pad: int, name: str, groups: int = 1) -> nn.Conv:
  return nn.Conv(
    features, (k, k), (stride, stride), [(pad, pad)] * 2, feature_group_count=groups, name=name
  )


class Bottleneck(nn.Module):
  """torchvision's Bottleneck (stride on the 3x3), BatchNorm folded into each conv's bias."""

  width: int
  stride: int
  downsample: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = nn.relu(_conv(self.width, 1, 1, 0, 'conv1')(x))
    h = nn.relu(_conv(self.width, 3, self.stride, 1, 'conv2')(h))
    h = _conv(4 * self.width, 1, 1, 0, 'conv3')(h)
    if self.downsample:
      x = _conv(4 * self.width, 1, self.stride, 0, 'downsample')(x)
    return nn.relu(h + x)


class ResNet(nn.Module):
  """torchvision's bottleneck ResNet on [B, H, W, 3] -> (pooled [B, 4 * 8 * width], logits)."""

  blocks: tuple[int, ...]
  width: int
  classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = nn.relu(_conv(self.width, 7, 2, 3, 'conv1')(x))
    x = nn.max_pool(x, (3, 3), (2, 2), [(1, 1), (1, 1)])
    for i, n in enumerate(self.blocks):
      for j in range(n):
        stride = 2 if i > 0 and j == 0 else 1
        x = Bottleneck(self.width * 2**i, stride, j == 0, name=f'layer{i + 1}_{j}')(x)
    pooled = jnp.mean(x, axis=(1, 2))
    return pooled, nn.Dense(self.classes, name='fc')(pooled)


def local_response_norm(x: jax.Array) -> jax.Array:
  """torch.nn.LocalResponseNorm(5) over the channels of NHWC `x`: x / (k + alpha * mean of x^2
  over 5 neighbouring channels, zero-padded 2 each side)^beta."""
  sq = jnp.pad(jnp.square(x), [(0, 0)] * 3 + [(LRN_SIZE // 2, (LRN_SIZE - 1) // 2)])
  c = x.shape[-1]
  window = sum(sq[..., i : i + c] for i in range(LRN_SIZE))
  return x / (LRN_K + LRN_ALPHA * window / LRN_SIZE) ** LRN_BETA


class ResMem(nn.Module):
  """ResMem on RGB / 255 [B, 227, 227, 3] -> (ResNet pooled [B, 2048], score [B])."""

  cfg: ResMemConfig

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    c = self.cfg
    pooled, logits = ResNet(c.blocks, c.width, c.classes, name='resnet')(x)
    a = c.alex
    h = nn.relu(_conv(a[0], 11, 4, 0, 'conv1')(x))
    h = local_response_norm(nn.max_pool(h, (3, 3), (2, 2)))
    h = nn.relu(_conv(a[1], 5, 1, 2, 'conv2', groups=2)(h))
    h = local_response_norm(nn.max_pool(h, (3, 3), (2, 2)))
    h = nn.relu(_conv(a[2], 3, 1, 1, 'conv3', groups=2)(h))
    h = nn.relu(_conv(a[3], 3, 1, 1, 'conv4', groups=2)(h))
    h = nn.relu(_conv(a[4], 3, 1, 1, 'conv5', groups=2)(h))
    h = nn.max_pool(h, (3, 3), (2, 2))
    z = jnp.concatenate([h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1), logits], axis=-1)
    for i, n in enumerate(c.head):
      z = nn.relu(nn.Dense(n, name=f'fc{6 + i}')(z))
    score = jax.nn.sigmoid(nn.Dense(1, name=f'fc{6 + len(c.head)}')(z))
    return pooled, score[:, 0]


OUTPUTS = ('pooled', 'score', 'pooled_score')


def forward(params, images: jax.Array, *, cfg: ResMemConfig, output: str) -> jax.Array:
  """Features [B, D] float32 of uint8 RGB `images` [B, 227, 227, 3] (jittable).

  `output`: 'pooled' (the ResNet's 2048-d average pool), 'score' (ResMem's score, [B, 1]) or
  'pooled_score' (both, 2049-d).
  """
  pooled, score = ResMem(cfg).apply({'params': params}, images.astype(jnp.float32) / 255.0)
  parts = {'pooled': [pooled], 'score': [score[:, None]], 'pooled_score': [pooled, score[:, None]]}
  return jnp.concatenate(parts[output], axis=-1)
