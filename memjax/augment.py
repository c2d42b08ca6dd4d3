"""Seeded training augmentation of image batches, on the device, inside the jitted step.

Fine-tuning the image backbone reads the uint8 centre crops `ImageRows` gathers and augments
them here, in the step, so the augmentation is a pure function of the step's key (derived from
the seed, the fold and the step): a resumed run draws exactly the crops and flips it would have
drawn, and the result does not depend on how many devices the global batch is sharded over.

Each example gets an Inception-style random resized crop (an area share drawn uniformly from
`crop_scale`, an aspect ratio drawn log-uniformly from `crop_ratio`, the box clipped to the image
and placed uniformly inside it), resized back to the full size with bilinear interpolation, then
a horizontal flip with probability 0.5.

Typical use inside a train step (the spec is static: a frozen, hashable dataclass)::

  key = jax.random.fold_in(step_key, 1)  # a key for augmentation only
  images = augment.augment(key, batch['image'], spec)  # float32 [B, S, S, 3], 0..255
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from memjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Augment:
  """What `augment` does to each training image.

  Attributes:
    crop_scale: (low, high) range of the crop's area as a share of the image's, 0 < low <= high
      <= 1. (1, 1) with `crop_ratio` (1, 1) keeps the whole image.
    crop_ratio: (low, high) range of the crop's aspect ratio (width / height), drawn
      log-uniformly. A crop wider or taller than the image is clipped to it, so with
      `crop_scale` (1, 1) a ratio other than 1 still crops one side.
    flip: flip each image horizontally with probability 0.5.
  """

  crop_scale: tuple[float, float]
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip: bool = False

  def __post_init__(self):
    # Stored as tuples of floats, so equal specs hash equally (a static jit argument).
    object.__setattr__(self, 'crop_scale', _range(self.crop_scale, 'crop_scale', upper=1.0))
    object.__setattr__(self, 'crop_ratio', _range(self.crop_ratio, 'crop_ratio', upper=math.inf))
    object.__setattr__(self, 'flip', bool(self.flip))

  @classmethod
  def from_config(cls, node, field: str) -> 'Augment':
    """The spec in a config node with `crop_scale`, `crop_ratio` and `flip`.

    Raises:
      InputError: a bad range, naming `field` (the node's path, e.g. 'config.finetune.augment').
    """
    try:
      return cls(crop_scale=node.crop_scale, crop_ratio=node.crop_ratio, flip=node.flip)
    except InputError as e:
      raise InputError(f'{field}.{str(e).removeprefix("Augment.")}') from None

  @classmethod
  def off(cls) -> 'Augment':
    """The spec that leaves every image as it is."""
    return cls(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=False)

  @property
  def crops(self) -> bool:
    """Whether the random resized crop changes anything."""
    return self.crop_scale != (1.0, 1.0) or self.crop_ratio != (1.0, 1.0)

  @property
  def active(self) -> bool:
    """Whether `augment` does anything beyond the conversion to float32."""
    return self.crops or self.flip


def _range(value, name: str, upper: float) -> tuple[float, float]:
  """`value` as (low, high) floats with 0 < low <= high <= upper (high finite)."""
  try:
    low, high = (float(v) for v in value)
  except (TypeError, ValueError):
    low = high = math.nan
  if not (0 < low <= high <= upper and math.isfinite(high)):
    bound = f'high <= {upper}' if math.isfinite(upper) else 'high finite'
    raise InputError(f'Augment.{name}: expected (low, high) with 0 < low <= {bound}, got {value!r}')
  return low, high


def spec_of(config) -> Augment | None:
  """`config.augment` as the train step's spec; None when it changes nothing.

  Raises:
    InputError: a bad range, naming the `config.augment` field.
  """
  spec = Augment.from_config(config.augment, 'config.augment')
  return spec if spec.active else None


def crop_boxes(key: jax.Array, count: int, spec: Augment) -> jax.Array:
  """Random crop boxes as shares of the image: float32 [count, 4] of (top, left, height, width).

  Every box lies inside the unit square: height and width in (0, 1], top + height <= 1 and
  left + width <= 1.
  """
  k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
  area = jax.random.uniform(k_area, (count,), minval=spec.crop_scale[0], maxval=spec.crop_scale[1])
  log_ratio = jax.random.uniform(
    k_ratio, (count,), minval=math.log(spec.crop_ratio[0]), maxval=math.log(spec.crop_ratio[1])
  )
  ratio = jnp.exp(log_ratio)
  width = jnp.minimum(jnp.sqrt(area * ratio), 1.0)
  height = jnp.minimum(jnp.sqrt(area / ratio), 1.0)
  top = jax.random.uniform(k_top, (count,)) * (1.0 - height)
  left = jax.random.uniform(k_left, (count,)) * (1.0 - width)
  return jnp.stack([top, left, height, width], axis=-1)


def resized_crop(image: jax.Array, box: jax.Array) -> jax.Array:
  """One image's crop `box` (top, left, height, width as shares) resized to the image's size.

  Args:
    image: float32 [H, W, C].
    box: float32 [4]; may be traced.

  Returns:
    float32 [H, W, C], bilinear (antialiased when the crop is larger than the output).
  """
  size = jnp.asarray(image.shape[:2], jnp.float32)
  start, extent = box[:2] * size, box[2:] * size
  scale = size / extent  # output pixels per input pixel, >= 1: a crop is never larger
  return jax.image.scale_and_translate(
    image,
    image.shape,
    spatial_dims=(0, 1),
    scale=scale,
    translation=-start * scale,
    method='linear',
    antialias=True,
  )


def augment(key: jax.Array, images: jax.Array, spec: Augment) -> jax.Array:
  """Randomly crops, resizes back and flips every image of a global batch.

  Example i draws from `jax.random.split(key, B)[i]`, so the result is a function of the key
  and the global batch only, whatever the sharding. Jittable (`spec` is static).

  Args:
    key: a PRNG key.
    images: uint8 or float [B, S, S, 3] (any H, W), values 0..255.
    spec: what to do; `Augment.off()` returns the images as float32, unchanged.

  Returns:
    float32 [B, S, S, 3] with values in 0..255.
  """
  images = jnp.asarray(images).astype(jnp.float32)
  if not spec.active:
    return images

  def one(example_key, image):
    crop_key, flip_key = jax.random.split(example_key)
    if spec.crops:
      box = crop_boxes(crop_key, 1, spec)[0]
      image = jnp.clip(resized_crop(image, box), 0.0, 255.0)
    if spec.flip:
      image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
    return image

  return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)
