"""VGG fc7 and the captioning embedding: Keras/torchvision weights give Keras' own fc7."""

import os

import h5py
import jax
import keras
import numpy as np
import pytest
import torch_files

from memjax.errors import InputError
from memjax.features import vgg, vgg_weights
from memjax.features.vgg_weights import VGGArch

# Keras' own saving code trips numpy 2's __array__(copy=) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')
NARROW16 = VGGArch(depth=16, widths=(4, 8, 8, 16, 16), fc_dim=32)
NARROW19 = VGGArch(depth=19, widths=(4, 8, 8, 16, 16), fc_dim=32)


def _images(n, seed=0):
  """Smooth random uint8 RGB images [n, 224, 224, 3] (upsampled noise, so pools see structure)."""
  small = np.random.default_rng(seed).uniform(0, 255, (n, 28, 28, 3))
  return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2).astype(np.uint8)


_JITTED = {}


def _fc7(extractor, images):
  """Jitted `extractor.forward`, compiled once per (function, arch, origin) across tests."""
  forward = extractor.forward  # functools.partial(fn, arch=..., origin=...)
  key = (forward.func, tuple(sorted(forward.keywords.items())))
  if key not in _JITTED:
    _JITTED[key] = jax.jit(forward)
  return np.asarray(_JITTED[key](extractor.params, images))


def _torch_state_dict(layers, arch):
  """A torchvision-layout state_dict from Keras-layout {layer: (kernel, bias)}."""
  names, s, c = arch.torch_names(), arch.pool5_size, arch.widths[-1]
  state = {}
  for layer, (kernel, bias) in layers.items():
    if layer == 'predictions':
      key, weight = 'classifier.6', kernel.T
    elif layer == 'fc1':  # rows (H, W, C) -> torchvision's (C, H, W) flatten.
      key, weight = (
        names[layer],
        kernel.reshape(s, s, c, -1).transpose(3, 2, 0, 1).reshape(-1, s * s * c),
      )
    elif layer == 'fc2':
      key, weight = names[layer], kernel.T
    else:
      key, weight = names[layer], kernel.transpose(3, 2, 0, 1)
    state[f'{key}.weight'] = np.ascontiguousarray(weight)
    state[f'{key}.bias'] = bias
  return state


def _max_diff(a, b):
  return float(np.max(np.abs(a - b)))


def _keras_layers(model):
  return {layer.name: [v.numpy() for v in layer.weights] for layer in model.layers if layer.weights}


def test_vgg16_matches_keras(tmp_path):
  """keras.applications.VGG16's random weights, via its h5 and a torchvision .pth, give its fc7."""
  keras.utils.set_random_seed(0)
  model = keras.applications.VGG16(weights=None)
  fc2 = keras.Model(model.input, model.get_layer('fc2').output)
  images = _images(2)
  want = fc2.predict_on_batch(keras.applications.vgg16.preprocess_input(images.astype('float32')))
  scale = float(np.max(np.abs(want)))
  assert scale > 0 and (want > 0).mean() > 0.05  # a live, non-trivial fc7

  h5 = tmp_path / 'vgg16_full.h5'
  model.save(str(h5))
  extractor = vgg.make_vgg_extractor(str(h5), depth=16)
  assert extractor.name == 'vgg16_fc7' and extractor.feature_dim == 4096
  assert extractor.weights_sha256 == vgg_weights.file_digests(str(h5))[0]
  assert 'BGR' in extractor.preprocessing
  os.remove(h5)
  got = _fc7(extractor, images)
  diff = _max_diff(got, want)
  print(f'VGG16 Keras h5 -> Flax fc7: max abs diff {diff:.3g} (max |fc7| {scale:.3g})')
  assert got.shape == (2, 4096) and diff <= 1e-4 * scale
  del extractor

  # torchvision layout (zip .pth written by hand) with torchvision's preprocessing.
  pth = tmp_path / 'vgg16_tv.pth'
  torch_files.save_zip(pth, _torch_state_dict(_keras_layers(model), VGGArch(depth=16)))
  tv = vgg.make_vgg_extractor(str(pth), depth=16)
  os.remove(pth)
  assert 'torchvision' in tv.preprocessing
  x = (images / 255.0 - np.array(vgg.TORCH_RGB_MEAN)) / np.array(vgg.TORCH_RGB_STD)
  want_tv = fc2.predict_on_batch(x.astype('float32'))
  scale_tv = float(np.max(np.abs(want_tv)))
  assert scale_tv > 0 and (want_tv > 0).mean() > 0.05
  diff_tv = _max_diff(_fc7(tv, images), want_tv)
  print(
    f'VGG16 torchvision .pth -> Flax fc7: max abs diff {diff_tv:.3g} (max |fc7| {scale_tv:.3g})'
  )
  assert diff_tv <= 1e-4 * scale_tv


def _keras_vgg(arch):
  """A Keras VGG built like keras.applications' (same layer names), at `arch`'s widths."""
  inputs = keras.Input((arch.image_size, arch.image_size, 3))
  x, block = inputs, 1
  for name, _, width in arch.conv_layers():
    if not name.startswith(f'block{block}_'):
      x, block = keras.layers.MaxPooling2D(2, 2, name=f'block{block}_pool')(x), block + 1
    x = keras.layers.Conv2D(width, 3, padding='same', activation='relu', name=name)(x)
  x = keras.layers.Flatten(name='flatten')(keras.layers.MaxPooling2D(2, 2, name='block5_pool')(x))
  x = keras.layers.Dense(arch.fc_dim, activation='relu', name='fc1')(x)
  fc7 = keras.layers.Dense(arch.fc_dim, activation='relu', name='fc2')(x)
  outputs = keras.layers.Dense(10, activation='softmax', name='predictions')(fc7)
  return keras.Model(inputs, outputs), keras.Model(inputs, fc7)


@pytest.mark.parametrize('depth', [16, 19])
def test_keras3_file_layouts(tmp_path, depth):
  """Keras 3's legacy .h5, .weights.h5 and .keras files all load and give Keras' fc7."""
  arch = NARROW16 if depth == 16 else NARROW19
  keras.utils.set_random_seed(depth)
  model, fc2 = _keras_vgg(arch)
  model.get_layer('fc1').bias.assign(np.full(arch.fc_dim, 0.5, np.float32))  # keep fc7 alive
  images = _images(2, seed=depth)
  want = fc2.predict_on_batch(keras.applications.vgg16.preprocess_input(images.astype('float32')))
  assert (want > 0).mean() > 0.05
  for name, save in (
    ('m.h5', model.save),
    ('w.weights.h5', model.save_weights),
    ('m.keras', model.save),
  ):
    path = tmp_path / name
    save(str(path))
    ex = vgg.make_vgg_extractor(str(path), depth, arch=arch)
    assert ex.name == f'vgg{depth}_fc7'
    np.testing.assert_allclose(_fc7(ex, images), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def _random_layers(arch, seed=0, with_head=True):
  rng = np.random.default_rng(seed)
  layers = {}
  for name, (kernel_shape, bias_shape) in arch.expected_shapes().items():
    fan_in = int(np.prod(kernel_shape[:-1]))
    kernel = rng.standard_normal(kernel_shape) * np.sqrt(2.0 / fan_in)
    layers[name] = (kernel.astype(np.float32), rng.uniform(0, 0.1, bias_shape).astype(np.float32))
  if with_head:
    layers['predictions'] = (
      rng.standard_normal((arch.fc_dim, 10)).astype(np.float32),
      np.zeros(10, np.float32),
    )
  return layers


def _write_original_keras_h5(path, layers):
  """The layout of the released `vgg*_weights_tf_dim_ordering_tf_kernels.h5` (Keras 1)."""
  with h5py.File(path, 'w') as f:
    names = ['input_1'] + list(layers)
    f.attrs['layer_names'] = [n.encode() for n in names]
    f.create_group('input_1').attrs['weight_names'] = []
    for name, (kernel, bias) in layers.items():
      g = f.create_group(name)
      weight_names = [f'{name}_W_1:0', f'{name}_b_1:0']
      g.attrs['weight_names'] = [n.encode() for n in weight_names]
      g[weight_names[0]], g[weight_names[1]] = kernel, bias


def test_narrow_vgg_torchvision_matches_keras_layout(tmp_path):
  """Same weights in the original Keras h5 layout and a legacy torchvision .pth give one fc7."""
  layers = _random_layers(NARROW16)
  images = _images(3, seed=1)
  _write_original_keras_h5(tmp_path / 'k.h5', layers)
  torch_files.save_legacy(tmp_path / 't.pth', _torch_state_dict(layers, NARROW16))
  keras_ex = vgg.make_vgg_extractor(str(tmp_path / 'k.h5'), 16, arch=NARROW16)
  torch_ex = vgg.make_vgg_extractor(str(tmp_path / 't.pth'), 16, arch=NARROW16)
  jax.tree.map(np.testing.assert_array_equal, torch_ex.params, keras_ex.params)
  # Same network; only the preprocessing differs with the file's origin.
  caffe = vgg.fc7(keras_ex.params, images, arch=NARROW16, origin='keras')
  np.testing.assert_allclose(_fc7(keras_ex, images), caffe, rtol=1e-5, atol=1e-5)
  tv = vgg.fc7(keras_ex.params, images, arch=NARROW16, origin='torchvision')
  np.testing.assert_allclose(_fc7(torch_ex, images), tv, rtol=1e-5, atol=1e-5)
  assert _fc7(torch_ex, images).shape == (3, 32)
  with pytest.raises(InputError, match=r'images \[B, 224, 224, 3\]'):
    keras_ex.forward(keras_ex.params, images[:, :200])


def test_weight_file_errors(tmp_path):
  arch = NARROW16
  with pytest.raises(InputError, match='never downloads'):
    vgg.make_vgg_extractor(str(tmp_path / 'nope.h5'), 16, arch=arch)
  # A VGG19 file loaded as VGG16: the extra convolutions are named.
  _write_original_keras_h5(tmp_path / 'v19.h5', _random_layers(NARROW19))
  with pytest.raises(InputError, match=r"unexpected \['block3_conv4', 'block4_conv4'"):
    vgg.make_vgg_extractor(str(tmp_path / 'v19.h5'), 16, arch=arch)
  layers = _random_layers(arch, with_head=False)
  del layers['fc2']
  _write_original_keras_h5(tmp_path / 'nofc2.h5', layers)
  with pytest.raises(InputError, match=r"missing \['fc2'\]"):
    vgg.make_vgg_extractor(str(tmp_path / 'nofc2.h5'), 16, arch=arch)
  state = _torch_state_dict(_random_layers(arch), arch)
  state['features.0.weight'] = state['features.0.weight'][:, :, :2]
  torch_files.save_zip(tmp_path / 'bad.pth', state)
  with pytest.raises(InputError, match=r'features.0.weight has shape \(4, 3, 2, 3\)'):
    vgg.make_vgg_extractor(str(tmp_path / 'bad.pth'), 16, arch=arch)
  # Files named like the releases must match their published checksums.
  torch_files.save_zip(
    tmp_path / 'vgg16-397923af.pth', _torch_state_dict(_random_layers(arch), arch)
  )
  with pytest.raises(InputError, match='does not start with 397923af'):
    vgg.make_vgg_extractor(str(tmp_path / 'vgg16-397923af.pth'), 16, arch=arch)
  _write_original_keras_h5(tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', layers)
  with pytest.raises(InputError, match='published 64373286793e3c8b2b4e3219cbf3544b'):
    vgg.make_vgg_extractor(str(tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5'), 16)
  (tmp_path / 'junk.h5').write_bytes(b'junk' * 100)
  with pytest.raises(InputError, match='neither a Keras HDF5'):
    vgg.make_vgg_extractor(str(tmp_path / 'junk.h5'), 16, arch=arch)
  with pytest.raises(InputError, match='depth must be one of'):
    VGGArch(depth=11)


def _l2(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize('names', [('W', 'b'), ('ff_image_W', 'ff_image_b'), ('W', None)])
def test_semantic_extractor(tmp_path, names):
  layers = _random_layers(NARROW19)
  _write_original_keras_h5(tmp_path / 'vgg19.h5', layers)
  rng = np.random.default_rng(2)
  w = rng.standard_normal((32, 12)).astype(np.float32)
  b = rng.standard_normal(12).astype(np.float32)
  arrays = {names[0]: w}
  if names[1]:
    arrays[names[1]] = b
  else:
    b = np.zeros(12, np.float32)
  if names[0] == 'ff_image_W':  # The original release also holds the sentence encoder.
    arrays.update(Wemb=rng.standard_normal((5, 3)), encoder_W=rng.standard_normal((3, 4)))
  np.savez(tmp_path / 'proj.npz', **arrays)
  ex = vgg.make_semantic_extractor(
    str(tmp_path / 'vgg19.h5'), str(tmp_path / 'proj.npz'), arch=NARROW19
  )
  assert ex.name == 'vse_semantic' and ex.feature_dim == 12
  assert len(ex.weights_sha256) == 64 and 'L2-normalised' in ex.preprocessing
  images = _images(3, seed=3)
  cnn = vgg.make_vgg_extractor(str(tmp_path / 'vgg19.h5'), 19, arch=NARROW19)
  want = _l2(_l2(_fc7(cnn, images)) @ w + b)
  got = _fc7(ex, images)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-5)


def test_projection_errors(tmp_path):
  _write_original_keras_h5(tmp_path / 'vgg19.h5', _random_layers(NARROW19))
  cases = {
    'none.npz': ({'Wemb': np.zeros((2, 2))}, 'found none'),
    'both.npz': ({'W': np.zeros((32, 4)), 'ff_image_W': np.zeros((32, 4))}, "found \\['W', "),
    'shape.npz': ({'ff_image_W': np.zeros((4, 32))}, r'ff_image_W has shape \(4, 32\), expected'),
    'bias.npz': ({'W': np.zeros((32, 4)), 'b': np.zeros(5)}, r'b has shape \(5,\)'),
  }
  for name, (arrays, match) in cases.items():
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(InputError, match=match):
      vgg.make_semantic_extractor(str(tmp_path / 'vgg19.h5'), str(tmp_path / name), arch=NARROW19)
  with pytest.raises(InputError, match='projection file .* does not exist'):
    vgg.make_semantic_extractor(str(tmp_path / 'vgg19.h5'), str(tmp_path / 'x.npz'), arch=NARROW19)
  (tmp_path / 'bad.npz').write_bytes(b'not a zip')
  with pytest.raises(InputError, match='not a readable .npz'):
    vgg.make_semantic_extractor(
      str(tmp_path / 'vgg19.h5'), str(tmp_path / 'bad.npz'), arch=NARROW19
    )
