"""VGG16/VGG19 fc7 and the captioning (visual-semantic embedding) feature, in Flax Linen.

* **CNN feature** (`make_vgg_extractor`): VGG (Simonyan & Zisserman 2014) up to fc7, the 4096-d
  output of the second fully-connected layer after its ReLU.
* **IC-based semantic feature** (`make_semantic_extractor`): the image side of Kiros,
  Salakhutdinov & Zemel 2014 ("Unifying visual-semantic embeddings with multimodal neural
  language models"), as in their release (ryankiros/visual-semantic-embedding): VGG19 fc7, scaled
  to unit L2 norm (their image features were normalised before training), then the linear map
  `x @ ff_image_W + ff_image_b` (4096 -> 1024) and L2 normalisation.

The network is NHWC throughout (`nn.Conv` / XLA convolutions, fast on CPU); `forward` takes uint8
RGB [B, 224, 224, 3] and does the preprocessing the weight file's origin expects (see
`vgg_weights`): Keras/Caffe weights get BGR minus the ImageNet mean [103.939, 116.779, 123.68],
torchvision weights RGB / 255 normalised by mean [0.485, 0.456, 0.406] and std
[0.229, 0.224, 0.225].
"""

import functools
import hashlib

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from memjax.errors import InputError
from memjax.features import vgg_weights
from memjax.features.extractor import Extractor
from memjax.features.vgg_weights import KERAS, TORCHVISION, VGGArch

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


def make_vgg_extractor(
  weights_path: str, depth: int = 16, *, arch: VGGArch | None = None
) -> Extractor:
  """The VGG fc7 extractor (`vgg16_fc7` / `vgg19_fc7`, 4096-d) with weights from a local file.

  Args:
    weights_path: Keras `.h5` / `.weights.h5` / `.keras` or torchvision `.pth` VGG weights; the
      preprocessing follows the file's origin.
    depth: 16 or 19.
    arch: overrides the network's shape (tests use narrow networks); its depth must be `depth`.

  Returns:
    The extractor; `weights_sha256` is the file's sha256.

  Raises:
    InputError: missing file, failed published checksum, or a file that does not match the
      network (missing/unexpected layers, wrong shapes; named).
  """
  arch = _arch(arch, depth)
  weights = vgg_weights.load_vgg_weights(weights_path, arch)
  logging.info(
    'VGG%d: loaded %s weights from %s (sha256 %s).',
    depth,
    weights.origin,
    weights_path,
    weights.sha256,
  )
  return Extractor(
    name=f'vgg{depth}_fc7',
    feature_dim=arch.fc_dim,
    params=jax.device_put(weights.params),
    forward=functools.partial(fc7, arch=arch, origin=weights.origin),
    image_size=arch.image_size,
    resize_to=256,
    preprocessing=PREPROCESSING[weights.origin],
    weights_sha256=weights.sha256,
  )


def make_semantic_extractor(
  vgg19_weights_path: str, projection_npz_path: str, *, arch: VGGArch | None = None
) -> Extractor:
  """The captioning embedding extractor (`vse_semantic`, D = 1024 for the released models).

  Args:
    vgg19_weights_path: VGG19 weights (Keras `.h5` family or torchvision `.pth`). Kiros et al.
      used the original Caffe VGG19, which the Keras file holds.
    projection_npz_path: `.npz` with `W` [4096, D] (+ optional `b` [D]) or the original
      release's `ff_image_W` / `ff_image_b` (their `coco.npz`, `f30k.npz`, `f8k.npz`).
    arch: overrides the VGG19 shape (tests use a narrow network).

  Returns:
    The extractor; `weights_sha256` is the sha256 of the two files' sha256 hex digests joined by
    a newline (VGG first), so it changes when either file does.

  Raises:
    InputError: either file missing or malformed (see `make_vgg_extractor`,
      `vgg_weights.load_projection`).
  """
  arch = _arch(arch, 19)
  weights = vgg_weights.load_vgg_weights(vgg19_weights_path, arch)
  w, b, projection_sha = vgg_weights.load_projection(projection_npz_path, arch.fc_dim)
  combined = hashlib.sha256(f'{weights.sha256}\n{projection_sha}'.encode()).hexdigest()
  logging.info(
    'VSE: VGG19 %s weights %s (sha256 %s), projection %s %s (sha256 %s).',
    weights.origin,
    vgg19_weights_path,
    weights.sha256,
    projection_npz_path,
    w.shape,
    projection_sha,
  )
  return Extractor(
    name='vse_semantic',
    feature_dim=int(w.shape[1]),
    params=jax.device_put({'vgg': weights.params, 'W': w, 'b': b}),
    forward=functools.partial(semantic_embedding, arch=arch, origin=weights.origin),
    image_size=arch.image_size,
    resize_to=256,
    preprocessing=f'{PREPROCESSING[weights.origin]}; VGG19 fc7 L2-normalised, projected '
    f'{arch.fc_dim} -> {w.shape[1]}, L2-normalised',
    weights_sha256=combined,
  )


def _arch(arch: VGGArch | None, depth: int) -> VGGArch:
  if arch is None:
    return VGGArch(depth=depth)
  if arch.depth != depth:
    raise InputError(f'VGG arch has depth {arch.depth}, but depth={depth} was asked for.')
  return arch
