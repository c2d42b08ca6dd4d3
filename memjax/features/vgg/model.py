"""VGG16/VGG19 fc7 and the captioning (visual-semantic embedding) feature, in Flax Linen.

* **CNN feature** (`fc7`): VGG (Simonyan & Zisserman 2014) up to fc7, the 4096-d output of the
  second fully-connected layer after its ReLU.
* **IC-based semantic feature** (`semantic_embedding`): the image side of Kiros, Salakhutdinov &
  Zemel 2014 ("Unifying visual-semantic embeddings with multimodal neural language models"), as
  in their release (ryankiros/visual-semantic-embedding): VGG19 fc7, scaled to unit L2 norm
  (their image features were normalised before training), then the linear map
  `x @ ff_image_W + ff_image_b` (4096 -> 1024) and L2 normalisation.

The network is NHWC throughout (`nn.Conv` / XLA convolutions, fast on CPU); `fc7` takes uint8
RGB [B, 224, 224, 3] and does the preprocessing the weight file's origin expects (`weights.py`
reads the files): Keras/Caffe weights get BGR minus the ImageNet mean [103.939, 116.779, 123.68],
torchvision weights RGB / 255 normalised by mean [0.485, 0.456, 0.406] and std
[0.229, 0.224, 0.225].
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from memjax.errors import InputError

BLOCK_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
KERAS, TORCHVISION = 'keras', 'torchvision'  # weight origins; each has its preprocessing
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_RGB_MEAN = (0.485, 0.456, 0.406)
TORCH_RGB_STD = (0.229, 0.224, 0.225)
PREPROCESSING = {
  KERAS: 'Keras/Caffe VGG weights: RGB -> BGR, float 0-255 minus the ImageNet BGR mean '
  f'{list(CAFFE_BGR_MEAN)}',
  TORCHVISION: f'torchvision VGG weights: RGB / 255, minus mean {list(TORCH_RGB_MEAN)}, divided '
  f'by std {list(TORCH_RGB_STD)}',
}
L2_EPS = 1e-12


@dataclasses.dataclass(frozen=True)
class VGGArch:
  """The network's shape; tests use narrow widths, real files the defaults."""

  depth: int = 16
  widths: tuple[int, ...] = (64, 128, 256, 512, 512)
  fc_dim: int = 4096
  image_size: int = 224

  def __post_init__(self):
    if self.depth not in BLOCK_CONVS:
      raise InputError(f'VGG depth must be one of {sorted(BLOCK_CONVS)}, got {self.depth!r}.')
    if len(self.widths) != 5 or self.image_size % 32:
      raise InputError(f'VGG needs 5 block widths and a multiple of 32 as input size: {self}.')

  def conv_layers(self) -> list[tuple[str, int, int]]:
    """(Keras name, input channels, output channels) of each convolution, in order."""
    layers, cin = [], 3
    for block, (count, width) in enumerate(
      zip(BLOCK_CONVS[self.depth], self.widths, strict=True), 1
    ):
      for k in range(1, count + 1):
        layers.append((f'block{block}_conv{k}', cin, width))
        cin = width
    return layers

  @property
  def pool5_size(self) -> int:
    return self.image_size // 32

  def expected_shapes(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Keras layer name -> (kernel shape, bias shape) in Flax/Keras layout."""
    shapes = {name: ((3, 3, cin, cout), (cout,)) for name, cin, cout in self.conv_layers()}
    flat = self.pool5_size**2 * self.widths[-1]
    shapes['fc1'] = ((flat, self.fc_dim), (self.fc_dim,))
    shapes['fc2'] = ((self.fc_dim, self.fc_dim), (self.fc_dim,))
    return shapes

  def torch_names(self) -> dict[str, str]:
    """Keras layer name -> torchvision module prefix (`features.<i>`, `classifier.<i>`)."""
    names, index = {}, 0
    for block, count in enumerate(BLOCK_CONVS[self.depth], 1):
      for k in range(1, count + 1):
        names[f'block{block}_conv{k}'] = f'features.{index}'
        index += 2  # Conv2d, ReLU
      index += 1  # MaxPool2d
    names.update(fc1='classifier.0', fc2='classifier.3')
    return names


class VGG(nn.Module):
  """VGG convolutions, pools and fc6/fc7 (both ReLU); input is already preprocessed.

  Attributes:
    arch: depth (16 or 19), block widths, fc width and input size.
  """

  arch: VGGArch = VGGArch()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, S, S, 3] float32 -> fc7 [B, fc_dim]."""
    block = 1
    for name, _, width in self.arch.conv_layers():
      if not name.startswith(f'block{block}_'):
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        block += 1
      x = nn.relu(nn.Conv(width, (3, 3), padding='SAME', name=name)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)  # (H, W, C) order, as Keras' Flatten.
    x = nn.relu(nn.Dense(self.arch.fc_dim, name='fc1')(x))
    return nn.relu(nn.Dense(self.arch.fc_dim, name='fc2')(x))


def preprocess(images: jax.Array, origin: str) -> jax.Array:
  """uint8 RGB [B, S, S, 3] -> float32 network input for weights of `origin`."""
  x = images.astype(jnp.float32)
  if origin == KERAS:
    return x[..., ::-1] - jnp.asarray(CAFFE_BGR_MEAN, jnp.float32)
  if origin == TORCHVISION:
    mean, std = jnp.asarray(TORCH_RGB_MEAN), jnp.asarray(TORCH_RGB_STD)
    return (x / 255.0 - mean) / std
  raise ValueError(f'unknown weight origin {origin!r}')


def _check_images(images: jax.Array, arch: VGGArch) -> None:
  want = (arch.image_size, arch.image_size, 3)
  if images.ndim != 4 or tuple(images.shape[1:]) != want:
    raise InputError(f'VGG takes images [B, {want[0]}, {want[1]}, 3], got {images.shape}.')


def fc7(params, images: jax.Array, *, arch: VGGArch, origin: str) -> jax.Array:
  """VGG fc7 features [B, fc_dim] of uint8 RGB `images`; jittable."""
  _check_images(images, arch)
  return VGG(arch).apply({'params': params}, preprocess(images, origin))


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows scaled to unit L2 norm (an all-zero row stays zero)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
  return x / jnp.maximum(norm, L2_EPS)


def semantic_embedding(params, images: jax.Array, *, arch: VGGArch, origin: str) -> jax.Array:
  """Kiros et al.'s image embedding [B, D]: l2norm(l2norm(fc7) @ W + b); jittable."""
  x = l2_normalize(fc7(params['vgg'], images, arch=arch, origin=origin))
  return l2_normalize(x @ params['W'] + params['b'])
