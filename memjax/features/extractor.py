"""The interface every frozen feature extractor (VGG16 fc7, the captioning embedding,
EfficientNet-Lite0, ...) presents to extraction, on-the-fly training and prediction.

The image pipeline hands an extractor uint8 RGB images of `image_size` x `image_size` (shorter side
resized to `resize_to`, then center-cropped); `forward` does everything else (pixel scaling, channel
order, mean subtraction, the network) and must be jittable and free of Python side effects.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax


@dataclasses.dataclass(frozen=True)
class Extractor:
  """A frozen image -> feature function with its weights.

  Attributes:
    name: the extractor's name, recorded in the feature store (e.g. `vgg16_fc7`).
    feature_dim: D, the width of the feature.
    params: pytree of weight arrays (never trained, never checkpointed).
    forward: `(params, images) -> [B, D] float32` for uint8 RGB `images` [B, S, S, 3].
    image_size: S, the center-crop size the network takes.
    resize_to: the shorter image side is resized to this before the center crop.
    preprocessing: human-readable description of the pixel preprocessing, for the store.
    weights_sha256: sha256 of the weight file(s) used, or None when unknown.
  """

  name: str
  feature_dim: int
  params: Any
  forward: Callable[[Any, jax.Array], jax.Array]
  image_size: int = 224
  resize_to: int = 256
  preprocessing: str = ''
  weights_sha256: str | None = None

  def store_descriptor(self) -> dict:
    """The feature's entry in a feature store's `metadata.json`."""
    return {
      'extractor': self.name,
      'weights_sha256': self.weights_sha256,
      'input_size': [self.image_size, self.image_size],
      'preprocessing': f'resize shorter side to {self.resize_to}, center crop '
      f'{self.image_size}; {self.preprocessing}',
    }
