"""The interface every frozen feature extractor (VGG16 fc7, the captioning embedding,
EfficientNet-Lite0, ...) presents to extraction, on-the-fly training and prediction.

The image pipeline hands an extractor uint8 RGB images of `image_size` x `image_size` (shorter side
resized to `resize_to`, then center-cropped, or as its `geometry` says); `forward` does everything
else (pixel scaling, channel order, mean subtraction, the network) and must be jittable and free of
Python side effects.

`with_flip` turns any extractor into its horizontal-flip test-time average
(`config.extractors.<name>.flip`; `registry.build` applies it to every kind).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from memjax.features.geometry import Geometry

FLIP_SUFFIX = '+flip'


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A frozen image -> feature function with its weights.

  Attributes:
    name: the extractor's name, recorded in the feature store (e.g. `vgg16_fc7`).
    feature_dim: D, the width of the feature.
    params: pytree of weight arrays (never trained, never checkpointed).
    forward: `(params, images) -> [B, D] float32` for uint8 RGB `images` [B, S, S, 3] (float32
      0..255 when `pixels` says so).
    image_size: S, the center-crop size the network takes.
    resize_to: the shorter image side is resized to this before the center crop.
    preprocessing: human-readable description of the pixel preprocessing, for the store.
    weights_sha256: sha256 of the weight file(s) used, or None when unknown.
    resample: the resize filter, 'bilinear' or 'bicubic' (`geometry.Geometry`).
    rounding: the longer side after resizing, 'round' or 'truncate'.
    crop: 'center', 'center_round' (torchvision's offset) or 'stretch' (no crop).
    pixels: 'uint8', or 'float32' (resized in float, not rounded: DINOv3).
  """

  name: str
  feature_dim: int
  params: Any
  forward: Callable[[Any, jax.Array], jax.Array]
  image_size: int = 224
  resize_to: int = 256
  preprocessing: str = ''
  weights_sha256: str | None = None
  resample: str = 'bilinear'
  rounding: str = 'round'
  crop: str = 'center'
  pixels: str = 'uint8'

  @property
  def geometry(self) -> Geometry:
    """How the image pipeline turns an image into this extractor's input square."""
    return Geometry(
      self.resize_to, self.image_size, self.resample, self.rounding, self.crop, self.pixels
    )

  def store_descriptor(self) -> dict:
    """The feature's entry in a feature store's `metadata.json`."""
    return {
      'extractor': self.name,
      'weights_sha256': self.weights_sha256,
      'input_size': [self.image_size, self.image_size],
      'preprocessing': f'{self.geometry.describe()}; {self.preprocessing}',
    }


def with_flip(extractor: Extractor) -> Extractor:
  """The extractor whose feature is the mean of the features of an image and its mirror image.

  The batch and its horizontal flip run through `extractor.forward` as one batch of 2B, so the
  network is traced once. The name gains `+flip` and the preprocessing says so, which the feature
  store records: flipped and plain features are told apart by their metadata.

  Args:
    extractor: any extractor.

  Returns:
    The same extractor (dimension, geometry, weights) with the flip-averaged `forward`.
  """
  inner = extractor.forward

  def forward(params: Any, images: jax.Array) -> jax.Array:
    both = jnp.concatenate([images, images[:, :, ::-1]], axis=0)
    features = inner(params, both)
    b = images.shape[0]
    return (features[:b] + features[b:]) * 0.5

  return dataclasses.replace(
    extractor,
    name=extractor.name + FLIP_SUFFIX,
    forward=forward,
    preprocessing=f'{extractor.preprocessing}; mean of the features of the image and its '
    'horizontal flip',
  )
