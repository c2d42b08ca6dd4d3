"""Image geometry from first principles: what each extractor family's preprocessing reads.

Coordinate-coded images (one float image whose pixel value is its x, one whose value is its y)
of awkward sizes go through `images.resize_and_crop` with each family's (resize_to, image_size).
The test records the size PIL is asked to resize to and the box it crops (spying on PIL), and
checks both against numbers worked out by hand; then it checks that every output pixel holds the
source coordinate its centre maps to. Bilinear interpolation reproduces a linear ramp exactly
(and clamps it to the first and last source pixel at the borders), so the expected value of each
pixel is a formula of its position, computed here, never with the function under test.

The ViT expectations sit in one marked block (`VIT_GEOMETRY`): issue 24 may change ViT
preprocessing to follow the Hugging Face processors.
"""

import math
import types

import numpy as np
import pytest
from PIL import Image

from memjax.features import images

SIZES = [(37, 50), (300, 201), (1, 1000), (4000, 3), (900, 600)]  # (width, height)
# 1 x 1000 and 4000 x 3 resize to 256 x 256000 and 341333 x 256 before the crop (~0.4 s each):
# every family meets them once, with the variant named here; its other variants skip them.
GIANT = {(1, 1000), (4000, 3)}

# (resize_to, image_size) of each family, from its published evaluation recipe.
VGG = (256, 224)  # Simonyan & Zisserman / Keras ImageNet evaluation: shorter side 256, crop 224
EFFICIENTNET = {  # TF EfficientNet eval: shorter side image_size + 32 (CROP_PADDING), centre crop
  'efficientnet_lite0': (256, 224),
  'efficientnet_lite1': (272, 240),
  'efficientnet_lite2': (292, 260),
}
# ---- ViT: the CURRENT behaviour (issue 24 may change it: bicubic, HF's short-side rounding,
# ---- SigLIP stretched to a square). Update the expectations here, and only here.
VIT_GEOMETRY = {
  ('clip', 'b16'): (224, 224),  # OpenAI CLIP: shorter side 224, centre crop 224
  ('siglip', 'b16_224'): (224, 224),
  ('siglip', 'so400m14_384'): (384, 384),
  ('dinov2', 'b14'): (256, 224),  # DINOv2 eval: shorter side 256, centre crop 224
}
# ---- end of the ViT block

# The resize target and crop box of (width, height) under VGG's (256, 224), worked out by hand:
# the shorter side becomes 256, the longer one keeps the aspect ratio rounded to the nearest
# pixel, and the crop is the centred 224 square (left/top = floor((side - 224) / 2)).
VGG_BY_HAND = {
  (37, 50): ((256, 346), (16, 61)),  # 50 * 256 / 37 = 345.95 -> 346
  (300, 201): ((382, 256), (79, 16)),  # 300 * 256 / 201 = 382.09 -> 382
  (1, 1000): ((256, 256000), (16, 127888)),
  (4000, 3): ((341333, 256), (170554, 16)),  # 4000 * 256 / 3 = 341333.3
  (900, 600): ((384, 256), (80, 16)),
}


def _geometry(width: int, height: int, resize_to: int, image_size: int):
  """(resized (w, h), crop (left, top)) by the rule, with rounding to the nearest pixel."""
  scale = resize_to / min(width, height)
  w = max(resize_to, math.floor(width * scale + 0.5))
  h = max(resize_to, math.floor(height * scale + 0.5))
  return (w, h), ((w - image_size) // 2, (h - image_size) // 2)


def _coordinate_images(width: int, height: int):
  x = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
  y = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
  return Image.fromarray(np.ascontiguousarray(x), 'F'), Image.fromarray(
    np.ascontiguousarray(y), 'F'
  )


def _source(out_index: np.ndarray, offset: int, source: int, resized: int) -> np.ndarray:
  """The source coordinate of output pixels: their centres mapped back, clamped to the image."""
  centre = (offset + out_index + 0.5) * source / resized
  return np.clip(centre - 0.5, 0, source - 1)


@pytest.fixture
def spy(monkeypatch):
  """Records the sizes PIL resizes to and the boxes it crops."""
  seen = types.SimpleNamespace(resize=[], crop=[])
  resize, crop = Image.Image.resize, Image.Image.crop

  def spy_resize(self, size, *args, **kwargs):
    seen.resize.append(tuple(size))
    return resize(self, size, *args, **kwargs)

  def spy_crop(self, box=None):
    seen.crop.append(tuple(box))
    return crop(self, box)

  monkeypatch.setattr(Image.Image, 'resize', spy_resize)
  monkeypatch.setattr(Image.Image, 'crop', spy_crop)
  return seen


def _check(spy, width, height, resize_to, image_size, by_hand=None):
  (w, h), (left, top) = by_hand or _geometry(width, height, resize_to, image_size)
  x_image, y_image = _coordinate_images(width, height)
  spy.resize.clear(), spy.crop.clear()
  out_x = images.resize_and_crop(x_image, resize_to, image_size)
  out_y = images.resize_and_crop(y_image, resize_to, image_size)
  assert spy.resize == [(w, h)] * 2
  assert spy.crop == [(left, top, left + image_size, top + image_size)] * 2
  assert out_x.shape == out_y.shape == (image_size, image_size)
  index = np.arange(image_size)
  axes = ((out_x, left, width, w, 1), (out_y, top, height, h, 0))
  for out, offset, source, resized, axis in axes:
    want = np.expand_dims(_source(index, offset, source, resized), 1 - axis)
    # float32 accumulation in PIL: a few units in the last place of coordinates up to `source`
    slack = 1e-5 * source
    if source <= resized:  # upsampling interpolates the ramp exactly (clamped at the borders)
      np.testing.assert_allclose(out, want + 0 * out, rtol=0, atol=2e-3 + slack)
    else:
      # Antialiased downsampling averages a window of +-(source / resized) source pixels: off the
      # borders the ramp's mean is its centre (PIL's window is off by a few hundredths of a
      # pixel; a shift of one output pixel moves source / resized > 1 of them).
      reach = source / resized
      centre = (offset + index + 0.5) * reach
      inside = (centre - reach >= 0) & (centre + reach <= source)
      assert inside.sum() >= image_size - 4
      kept = np.take(out, np.flatnonzero(inside), axis=axis)
      expected = np.take(want, np.flatnonzero(inside), axis=axis) + 0 * kept
      np.testing.assert_allclose(kept, expected, rtol=0, atol=0.05 + slack)


@pytest.mark.parametrize('size', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
def test_vgg_geometry_by_hand(spy, size):
  _check(spy, *size, *VGG, by_hand=VGG_BY_HAND[size])


def _cases(variants, giant_for):
  return [
    pytest.param(v, s, id=f'{v}-{s[0]}x{s[1]}')
    for v in variants
    for s in SIZES
    if s not in GIANT or v == giant_for
  ]


@pytest.mark.parametrize('variant, size', _cases(sorted(EFFICIENTNET), 'efficientnet_lite2'))
def test_efficientnet_geometry(spy, variant, size):
  _check(spy, *size, *EFFICIENTNET[variant])


@pytest.mark.parametrize('model, size', _cases(sorted(VIT_GEOMETRY), ('siglip', 'so400m14_384')))
def test_vit_geometry(spy, model, size):
  _check(spy, *size, *VIT_GEOMETRY[model])


def test_extractors_declare_their_familys_geometry(monkeypatch):
  """Each family's extractor carries the (resize_to, image_size) above (no weights needed: the
  weight loaders are replaced by empty ones). The ViT families read their architecture from the
  weight file and cut images as their reference processors do: tests/test_vit_preprocessing.py
  checks those geometries against hand-derived PIL calls."""
  from memjax.features.efficientnet_lite import extractor as el_extractor
  from memjax.features.efficientnet_lite import weights as el_weights
  from memjax.features.vgg import extractor as vgg_extractor
  from memjax.features.vgg import model as vgg_model
  from memjax.features.vgg import weights as vgg_weights

  monkeypatch.setattr(
    vgg_weights,
    'load_vgg_weights',
    lambda path, arch: types.SimpleNamespace(params={}, origin=vgg_model.KERAS, sha256=None),
  )
  monkeypatch.setattr(el_weights, 'load', lambda variant, path: ({}, None, None))
  for depth in (16, 19):
    e = vgg_extractor.make_vgg_extractor(f'vgg{depth}', 'unused.h5')
    assert (e.resize_to, e.image_size) == VGG
  for variant, geometry in EFFICIENTNET.items():
    e = el_extractor.make_extractor(variant, 'unused.pth')
    assert (e.resize_to, e.image_size) == geometry, variant


def test_an_image_file_is_read_at_the_same_coordinates(tmp_path):
  """The file path (decode, RGB, resize, crop): a 37 x 50 PNG whose red is 5x and green 5y."""
  y, x = np.mgrid[0:50, 0:37]
  pixels = np.stack([5 * x, 5 * y, np.zeros_like(x)], axis=-1).astype(np.uint8)
  Image.fromarray(pixels).save(tmp_path / 'coords.png')
  out = images.load_image(str(tmp_path / 'coords.png'), *VGG).astype(np.float64)
  (_, _), (left, top) = VGG_BY_HAND[(37, 50)]
  index = np.arange(VGG[1])
  want_x = np.broadcast_to(5 * _source(index, left, 37, 256)[None, :], out.shape[:2])
  want_y = np.broadcast_to(5 * _source(index, top, 50, 346)[:, None], out.shape[:2])
  np.testing.assert_allclose(out[..., 0], want_x, rtol=0, atol=1.0)  # 8-bit resampling rounds
  np.testing.assert_allclose(out[..., 1], want_y, rtol=0, atol=1.0)
  assert not out[..., 2].any()
