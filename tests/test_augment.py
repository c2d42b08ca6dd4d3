"""memjax.augment: seeded random resized crops and flips, on 1 and 4 (simulated) devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh

from memjax import augment, parallel
from memjax.errors import InputError

_run = jax.jit(augment.augment, static_argnums=2)  # jitted: eager op-by-op is slow
SPEC = augment.Augment(crop_scale=(0.3, 1.0), crop_ratio=(3 / 4, 4 / 3), flip=True)


def _images(batch=8, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def _ramp(batch=4, size=16):
  """Value = column index * 17, the same in every row and channel."""
  ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[None, :, None] * 17, (size, size, 3))
  return np.broadcast_to(ramp, (batch, size, size, 3)).copy()


def test_deterministic_for_a_key_and_different_for_another():
  images = _images()
  first = np.asarray(_run(jax.random.PRNGKey(0), images, SPEC))
  again = np.asarray(_run(jax.random.PRNGKey(0), images, SPEC))
  other = np.asarray(_run(jax.random.PRNGKey(1), images, SPEC))
  assert first.shape == images.shape and first.dtype == np.float32
  np.testing.assert_array_equal(first, again)
  assert not np.allclose(first, other)
  assert first.min() >= 0 and first.max() <= 255
  # Each example gets its own crop: no two outputs of different inputs coincide by construction.
  assert not np.allclose(first[0], first[1])


def test_off_is_the_identity_as_float32():
  images = _images()
  spec = augment.Augment.off()
  assert not spec.active and not spec.crops
  assert augment.Augment(crop_scale=(1, 1), crop_ratio=(1, 1)) == spec
  out = np.asarray(_run(jax.random.PRNGKey(3), images, spec))
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out, images.astype(np.float32))


def test_full_box_resize_is_the_identity():
  image = _images(1)[0].astype(np.float32)
  out = augment.resized_crop(jnp.asarray(image), jnp.asarray([0.0, 0.0, 1.0, 1.0]))
  np.testing.assert_allclose(np.asarray(out), image, atol=1e-3)


def test_flip_only_flips_exactly_about_half():
  images = _images(batch=32)
  spec = augment.Augment(crop_scale=(1, 1), crop_ratio=(1, 1), flip=True)
  assert spec.active and not spec.crops
  out = np.asarray(_run(jax.random.PRNGKey(7), images, spec))
  flipped = images[:, :, ::-1].astype(np.float32)
  is_flipped = np.array([np.array_equal(o, f) for o, f in zip(out, flipped, strict=True)])
  is_same = np.array([np.array_equal(o, i) for o, i in zip(out, images, strict=True)])
  assert np.all(is_flipped != is_same)  # each output is exactly one of the two
  assert 8 <= sum(is_flipped) <= 24
  # A key under which the single example flips gives exactly images[:, :, ::-1].
  one = images[:1]
  for seed in range(20):
    out = np.asarray(_run(jax.random.PRNGKey(seed), one, spec))
    if not np.array_equal(out, one.astype(np.float32)):
      np.testing.assert_array_equal(out, one[:, :, ::-1].astype(np.float32))
      break
  else:
    pytest.fail('no key in 20 flipped the image')


def test_a_constant_image_stays_constant():
  images = np.full((6, 16, 16, 3), 200, np.uint8)
  out = np.asarray(_run(jax.random.PRNGKey(0), images, SPEC))
  np.testing.assert_allclose(out, 200.0, atol=1e-3)


def test_the_crop_zooms_in():
  ramp = _ramp()
  full_range = np.ptp(ramp[0])  # 255
  spec = augment.Augment(crop_scale=(0.25, 0.25), crop_ratio=(1, 1))
  out = np.asarray(_run(jax.random.PRNGKey(0), ramp, spec))
  for example in out:
    # A crop half the width: columns span about half the values, each row still a ramp.
    assert np.ptp(example) < 0.6 * full_range
    assert np.all(np.diff(example[0, :, 0]) >= 0)
    np.testing.assert_allclose(example, np.broadcast_to(example[:1], example.shape), atol=1e-3)


def test_the_top_left_quarter_is_resized_by_two():
  """Half-pixel-centred geometry: output column o samples input column o / 2 - 0.25."""
  size = 16
  ramp = _ramp(1, size)[0] / 17  # value = column index
  out = np.asarray(augment.resized_crop(jnp.asarray(ramp), jnp.asarray([0.0, 0.0, 0.5, 0.5])))
  expected = np.maximum(np.arange(size) / 2 - 0.25, 0)
  np.testing.assert_allclose(out[3, :, 0], expected, atol=1e-4)


def test_crop_boxes_lie_inside_the_image_with_the_drawn_area():
  spec = augment.Augment(crop_scale=(0.2, 0.6), crop_ratio=(1 / 2, 2))
  boxes = np.asarray(augment.crop_boxes(jax.random.PRNGKey(0), 1000, spec))
  top, left, height, width = boxes.T
  assert np.all((height > 0) & (width > 0) & (top >= 0) & (left >= 0))
  assert np.all(top + height <= 1 + 1e-6) and np.all(left + width <= 1 + 1e-6)
  unclipped = (height < 1) & (width < 1)
  area = (height * width)[unclipped]
  assert np.all((area >= 0.2 - 1e-5) & (area <= 0.6 + 1e-5))
  ratio = width / height
  assert ratio.min() < 0.6 and ratio.max() > 1.6  # the ratio range is used
  assert np.all((ratio > 0.5 - 1e-4) & (ratio < 2 + 1e-4))


def test_four_devices_match_one_device():
  assert jax.device_count() == 4
  images = _images(batch=8)
  key = jax.random.PRNGKey(5)
  results = []
  for mesh in (Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,)), parallel.make_mesh()):
    sharded = jax.device_put(images, parallel.batch_sharding(mesh))
    step = jax.jit(augment.augment, static_argnums=2, out_shardings=parallel.batch_sharding(mesh))
    out = step(parallel.replicate(key, mesh), sharded, SPEC)
    assert len(out.sharding.device_set) == mesh.devices.size
    results.append(np.asarray(out))
  np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize(
  'kwargs',
  [
    {'crop_scale': (0.0, 1.0)},
    {'crop_scale': (0.8, 0.5)},
    {'crop_scale': (0.5, 1.5)},
    {'crop_scale': (0.5, 1.0), 'crop_ratio': (0.0, 1.0)},
    {'crop_scale': (0.5, 1.0), 'crop_ratio': (2.0, 1.0)},
    {'crop_scale': (0.5, 1.0), 'crop_ratio': (1.0, float('inf'))},
    {'crop_scale': 0.5},
    {'crop_scale': (0.1, 0.2, 0.3)},
    {'crop_scale': ('a', 1.0)},
  ],
)
def test_bad_ranges_are_input_errors(kwargs):
  with pytest.raises(InputError, match='Augment.crop_'):
    augment.Augment(**kwargs)


def test_from_config_and_its_errors_name_the_field():
  node = ml_collections.ConfigDict({'crop_scale': [0.5, 1], 'crop_ratio': (0.75, 4 / 3), 'flip': 1})
  spec = augment.Augment.from_config(node, 'config.augment')
  assert spec == augment.Augment(crop_scale=(0.5, 1.0), crop_ratio=(0.75, 4 / 3), flip=True)
  assert hash(spec) == hash(augment.Augment((0.5, 1.0), (0.75, 4 / 3), True))
  node.crop_ratio = (0.0, 1.0)
  with pytest.raises(InputError, match=r'^config\.augment\.crop_ratio: expected'):
    augment.Augment.from_config(node, 'config.augment')
