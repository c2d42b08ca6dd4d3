"""ViT preprocessing equals the reference processors': resize kernel, size rounding, crop/stretch.

Hand-derived expectations (PIL calls with sizes worked out by hand) always run; the comparison
with transformers' own PIL image processors (`CLIPImageProcessorPil`, `SiglipImageProcessorPil`,
`BitImageProcessorPil`: the "slow" path, numpy + PIL, no torch) runs where `transformers` is
installed (test-only). memjax's pixels match the PIL path; transformers' torchvision path
resizes with torch's own antialiased bicubic, which differs from PIL's in the last bits.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
import test_vit as tv
from PIL import Image

from memjax.features import images
from memjax.features.geometry import Geometry
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import model as vit
from memjax.features.vit.variants import IMAGENET_MEAN, IMAGENET_STD, VARIANTS

HF = Geometry(224, 224, 'bicubic', 'truncate', 'center')
SIGLIP = Geometry(224, 224, 'bicubic', 'truncate', 'stretch')


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
  """A smooth random photo-like RGB image (random noise hides resampling differences less)."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
  base = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
  noise = rng.integers(-20, 21, (height, width, 3))
  return Image.fromarray(np.clip(np.asarray(base, int) + noise, 0, 255).astype(np.uint8))


def test_sizes_are_truncated_as_transformers_and_torchvision():
  # 299 x 200 -> shorter side 224: 224 * 299 / 200 = 334.88; HF and torchvision truncate (334),
  # memjax's own recipe rounds (335).
  assert HF.resized_size(299, 200) == (334, 224)
  assert Geometry(224, 224).resized_size(299, 200) == (335, 224)
  assert HF.resized_size(200, 299) == (224, 334)
  assert Geometry(256, 224, 'bicubic', 'truncate').resized_size(500, 333) == (384, 256)
  assert SIGLIP.resized_size(640, 480) == (224, 224)


def test_crops_by_hand():
  image = _photo(299, 200)
  want = np.asarray(image.resize((334, 224), Image.Resampling.BICUBIC))[:, 55:279]  # (334-224)//2
  np.testing.assert_array_equal(HF.apply(image), want)
  # torchvision's CenterCrop: offset int(round(110 / 2)) = 55; on 335 wide: round(55.5) = 56.
  tv_crop = Geometry(224, 224, 'bicubic', 'round', 'center_round')
  want = np.asarray(image.resize((335, 224), Image.Resampling.BICUBIC))[:, 56:280]
  np.testing.assert_array_equal(tv_crop.apply(image), want)
  want = np.asarray(image.resize((224, 224), Image.Resampling.BICUBIC))
  np.testing.assert_array_equal(SIGLIP.apply(image), want)
  # memjax's own recipe is unchanged.
  np.testing.assert_array_equal(
    Geometry(256, 224).apply(image), images.resize_and_crop(image, 256, 224)
  )


def test_extractors_take_their_reference_geometry(tmp_path):
  pytest.importorskip('safetensors')
  clip = tv.save_safetensors(tv.hf_tensors(tv.TINY['clip']), tmp_path / 'clip.safetensors')
  siglip = tv.save_safetensors(tv.hf_tensors(tv.TINY['siglip']), tmp_path / 's.safetensors')
  e = vit_extractor.make_extractor('clip', 'tiny_clip', clip)
  assert e.geometry == Geometry(32, 32, 'bicubic', 'truncate', 'center')
  s = vit_extractor.make_extractor('siglip', 'tiny_siglip', siglip)
  assert s.geometry == Geometry(32, 32, 'bicubic', 'truncate', 'stretch')
  assert 'stretched, no crop' in s.store_descriptor()['preprocessing']
  cropped = vit_extractor.make_extractor('siglip', 'tiny_siglip', siglip, fit='crop')
  assert cropped.geometry.crop == 'center'
  with pytest.raises(Exception, match='fit must be one of'):
    vit_extractor.make_extractor('siglip', 'tiny_siglip', siglip, fit='squash')


def test_jpeg_pipeline_equals_the_reference_pixels(tmp_path):
  """JPEGs of mixed aspect ratios through memjax's decoder and geometry, normalised by the
  model's `normalize`, equal transformers' PIL processors' `pixel_values` (float32)."""
  transformers = pytest.importorskip('transformers')
  sizes = [(299, 200), (200, 301), (640, 480), (257, 256), (225, 400)]
  paths = []
  for i, (w, h) in enumerate(sizes):
    paths.append(str(tmp_path / f'{i}.jpg'))
    _photo(w, h, seed=i).save(paths[-1], quality=90)
  cases = {
    'clip': (transformers.CLIPImageProcessorPil(), VARIANTS['clip']['b16'], HF),
    'siglip': (transformers.SiglipImageProcessorPil(), VARIANTS['siglip']['b16_224'], SIGLIP),
    'dinov2': (
      transformers.BitImageProcessorPil(
        size={'shortest_edge': 256}, crop_size={'height': 224, 'width': 224},
        image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True,
      ),
      VARIANTS['dinov2']['b14'],
      Geometry(256, 224, 'bicubic', 'truncate', 'center'),
    ),
  }  # fmt: skip
  for family, (processor, cfg, geometry) in cases.items():
    e_geometry = vit_extractor.reference_geometry(cfg, 'hf_' + family)
    assert e_geometry == geometry, family
    for path in paths:
      ours = images.load_image(path, geometry.resize_to, geometry.image_size, geometry)
      ours = np.asarray(vit.normalize(dataclasses.replace(cfg), jnp.asarray(ours[None])))[0]
      with Image.open(path) as im:
        ref = processor(images=im.convert('RGB'), return_tensors='np')['pixel_values'][0]
      np.testing.assert_allclose(ours, ref.transpose(1, 2, 0), atol=2e-6, err_msg=family)
