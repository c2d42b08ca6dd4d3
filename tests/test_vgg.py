"""VGG fc7 and the captioning embedding: Keras/torchvision weights give Keras' own fc7."""

import functools

import h5py
import jax
import keras
import numpy as np
import pytest
import torch_files

from memjax.errors import InputError
from memjax.features.readers import weight_files
from memjax.features.vgg import extractor as vgg_extractor
from memjax.features.vgg import model as vgg_model
from memjax.features.vgg import weights as vgg_weights
from memjax.features.vgg.model import VGGArch

# Keras' own saving code trips numpy 2's __array__(copy=) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')
NARROW16 = VGGArch(depth=16, widths=(4, 8, 8, 16, 16), fc_dim=32)
NARROW19 = VGGArch(depth=19, widths=(4, 8, 8, 16, 16), fc_dim=32)


def _images(n, seed=0):
  """Smooth random uint8 RGB images [n, 224, 224, 3] (upsampled noise, so pools see structure)."""
  small = np.random.default_rng(seed).uniform(0, 255, (n, 28, 28, 3))
  return np.repeat(np.repeat(small, 8, axis=1), 8, axis=2).astype(np.uint8)


_JITTED = {}


def _jitted(forward):
  """jax.jit of `functools.partial(fn, arch=..., origin=...)`, compiled once per (function, arch,
  origin) across tests."""
  key = (forward.func, tuple(sorted(forward.keywords.items())))
  if key not in _JITTED:
    _JITTED[key] = jax.jit(forward)
  return _JITTED[key]


def _fc7(extractor, images):
  """Jitted `extractor.forward` of `images`."""
  return np.asarray(_jitted(extractor.forward)(extractor.params, images))


def _jitted_fc7(arch, origin):
  return lambda params, images: np.asarray(
    _jitted(functools.partial(vgg_model.fc7, arch=arch, origin=origin))(params, images)
  )


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


# Where torchvision.models.vgg16/vgg19 keep their convolutions in `features` (Conv2d, ReLU and
# MaxPool2d modules in order), written out here so that `VGGArch.torch_names` is checked against
# torchvision's layout rather than against itself.
TORCHVISION_CONVS = {
  16: (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
  19: (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34),
}


def test_full_width_vgg16_loads_keras_applications_layers():
  """Full width, shapes only: keras.applications.VGG16's layers (names and shapes, built at
  32x32 so that fc6 is small and nothing of full size is allocated) become the parameters of
  the Flax VGG16 of that shape; at 224x224 the Flax VGG16 has Keras' 138 M parameters and a
  [B, 4096] fc7. The numbers are checked on narrow networks with the same layer names (below):
  loading does not depend on the widths."""
  small = VGGArch(depth=16, image_size=32)
  model = keras.applications.VGG16(weights=None, input_shape=(32, 32, 3), classes=1)
  layers = {
    layer.name: [np.broadcast_to(np.float32(0), v.shape) for v in layer.weights]
    for layer in model.layers
    if layer.weights
  }
  params = vgg_weights.params_from_keras_layers(layers, small, 'keras.applications.VGG16')
  assert set(layers) - set(params) == {'predictions'}
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, _flax_shapes(small))

  arch = VGGArch(depth=16)
  shapes = _flax_shapes(arch)
  assert sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)) + 4096 * 1000 + 1000 == 138_357_544
  images = jax.ShapeDtypeStruct((2, 224, 224, 3), np.uint8)
  for origin in (vgg_model.KERAS, vgg_model.TORCHVISION):
    out = jax.eval_shape(functools.partial(vgg_model.fc7, arch=arch, origin=origin), shapes, images)
    assert (out.shape, out.dtype) == ((2, 4096), np.float32)


def _flax_shapes(arch):
  size = arch.image_size
  x = jax.ShapeDtypeStruct((1, size, size, 3), np.float32)
  return jax.eval_shape(vgg_model.VGG(arch).init, jax.random.PRNGKey(0), x)['params']


@pytest.mark.parametrize('depth', [16, 19])
def test_full_width_torchvision_layout(depth):
  """Full width, shapes only: torchvision's VGG16/19 state_dict keys and shapes map onto the
  Keras-named parameters (zero-stride arrays; built at 32x32 so that fc6 is small: at 224x224
  torchvision's fc6 weight is [4096, 512 * 7 * 7])."""
  assert VGGArch(depth=depth).expected_shapes()['fc1'][0] == (512 * 7 * 7, 4096)
  arch = VGGArch(depth=depth, image_size=32)
  names = arch.torch_names()
  convs = [n for n in names if n.startswith('block')]
  assert [names[n] for n in convs] == [f'features.{i}' for i in TORCHVISION_CONVS[depth]]
  assert (names['fc1'], names['fc2']) == ('classifier.0', 'classifier.3')
  state = {}
  for name, (kernel_shape, bias_shape) in arch.expected_shapes().items():
    if name.startswith('block'):  # HWIO -> OIHW
      weight_shape = tuple(kernel_shape[i] for i in (3, 2, 0, 1))
    else:  # [in, out] -> [out, in]
      weight_shape = kernel_shape[::-1]
    state[f'{names[name]}.weight'] = np.broadcast_to(np.float32(1), weight_shape)
    state[f'{names[name]}.bias'] = np.broadcast_to(np.float32(1), bias_shape)
  params = vgg_weights.params_from_torchvision(state, arch, f'vgg{depth}.pth')
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, _flax_shapes(arch))


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
def test_keras_and_torchvision_files_give_keras_fc7(tmp_path, depth):
  """A Keras VGG with keras.applications' layer names: its Keras 3 legacy .h5, .weights.h5 and
  .keras files, and a torchvision .pth of its weights, all give Keras' own fc7, each with its
  file's preprocessing (Caffe BGR for Keras, RGB mean/std for torchvision)."""
  arch = NARROW16 if depth == 16 else NARROW19
  keras.utils.set_random_seed(depth)
  model, fc2 = _keras_vgg(arch)
  model.get_layer('fc1').bias.assign(np.full(arch.fc_dim, 0.5, np.float32))  # keep fc7 alive
  images = _images(2, seed=depth)
  want = fc2.predict_on_batch(keras.applications.vgg16.preprocess_input(images.astype('float32')))
  scale = float(np.max(np.abs(want)))
  assert (want > 0).mean() > 0.05 and scale > 1  # a live, non-trivial fc7
  for name, save in (
    ('m.h5', model.save),
    ('w.weights.h5', model.save_weights),
    ('m.keras', model.save),
  ):
    path = tmp_path / name
    save(str(path))
    ex = vgg_extractor.make_vgg_extractor(f'vgg{depth}', str(path), arch=arch)
    assert (ex.name, ex.feature_dim) == (f'vgg{depth}_fc7', arch.fc_dim)
    assert ex.weights_sha256 == weight_files.file_sha256(str(path))
    assert 'BGR' in ex.preprocessing
    got = _fc7(ex, images)
    assert got.shape == (2, arch.fc_dim)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)

  pth = tmp_path / f'vgg{depth}_tv.pth'
  torch_files.save_zip(pth, _torch_state_dict(_keras_layers(model), arch))
  tv = vgg_extractor.make_vgg_extractor(f'vgg{depth}', str(pth), arch=arch)
  assert 'torchvision' in tv.preprocessing
  x = (images / 255.0 - np.array(vgg_model.TORCH_RGB_MEAN)) / np.array(vgg_model.TORCH_RGB_STD)
  want_tv = fc2.predict_on_batch(x.astype('float32'))
  scale_tv = float(np.max(np.abs(want_tv)))
  assert (want_tv > 0).mean() > 0.05 and scale_tv > 1
  assert np.abs(want_tv - want).max() > 0.01 * scale  # the two preprocessings differ
  np.testing.assert_allclose(_fc7(tv, images), want_tv, rtol=1e-5, atol=1e-5 * scale_tv)


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
  keras_ex = vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'k.h5'), arch=NARROW16)
  torch_ex = vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 't.pth'), arch=NARROW16)
  jax.tree.map(np.testing.assert_array_equal, torch_ex.params, keras_ex.params)
  # Same network; only the preprocessing differs with the file's origin.
  caffe = _jitted_fc7(NARROW16, 'keras')(keras_ex.params, images)
  np.testing.assert_allclose(_fc7(keras_ex, images), caffe, rtol=1e-5, atol=1e-5)
  tv = _jitted_fc7(NARROW16, 'torchvision')(keras_ex.params, images)
  np.testing.assert_allclose(_fc7(torch_ex, images), tv, rtol=1e-5, atol=1e-5)
  assert tv.shape == (3, 32) and np.abs(tv - caffe).max() > 1e-3 * np.abs(caffe).max()
  with pytest.raises(InputError, match=r'images \[B, 224, 224, 3\]'):
    keras_ex.forward(keras_ex.params, images[:, :200])


def test_weight_file_errors(tmp_path):
  arch = NARROW16
  with pytest.raises(InputError, match='never downloads'):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'nope.h5'), arch=arch)
  # A VGG19 file loaded as VGG16: the extra convolutions are named.
  _write_original_keras_h5(tmp_path / 'v19.h5', _random_layers(NARROW19))
  with pytest.raises(InputError, match=r"unexpected \['block3_conv4', 'block4_conv4'"):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'v19.h5'), arch=arch)
  layers = _random_layers(arch, with_head=False)
  del layers['fc2']
  _write_original_keras_h5(tmp_path / 'nofc2.h5', layers)
  with pytest.raises(InputError, match=r"missing \['fc2'\]"):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'nofc2.h5'), arch=arch)
  state = _torch_state_dict(_random_layers(arch), arch)
  state['features.0.weight'] = state['features.0.weight'][:, :, :2]
  torch_files.save_zip(tmp_path / 'bad.pth', state)
  with pytest.raises(InputError, match=r'features.0.weight has shape \(4, 3, 2, 3\)'):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'bad.pth'), arch=arch)
  # Files named like the releases must match their published checksums.
  torch_files.save_zip(
    tmp_path / 'vgg16-397923af.pth', _torch_state_dict(_random_layers(arch), arch)
  )
  with pytest.raises(InputError, match='does not start with 397923af'):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'vgg16-397923af.pth'), arch=arch)
  _write_original_keras_h5(tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', layers)
  with pytest.raises(InputError, match='published 64373286793e3c8b2b4e3219cbf3544b'):
    vgg_extractor.make_vgg_extractor(
      'vgg16', str(tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels.h5')
    )
  (tmp_path / 'junk.h5').write_bytes(b'junk' * 100)
  with pytest.raises(InputError, match='neither a Keras HDF5'):
    vgg_extractor.make_vgg_extractor('vgg16', str(tmp_path / 'junk.h5'), arch=arch)
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
  ex = vgg_extractor.make_vgg_extractor(
    'vse', str(tmp_path / 'vgg19.h5'), str(tmp_path / 'proj.npz'), arch=NARROW19
  )
  assert ex.name == 'vse_semantic' and ex.feature_dim == 12
  assert len(ex.weights_sha256) == 64 and 'L2-normalised' in ex.preprocessing
  images = _images(3, seed=3)
  cnn = vgg_extractor.make_vgg_extractor('vgg19', str(tmp_path / 'vgg19.h5'), arch=NARROW19)
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
      vgg_extractor.make_vgg_extractor(
        'vse', str(tmp_path / 'vgg19.h5'), str(tmp_path / name), arch=NARROW19
      )
  with pytest.raises(InputError, match='projection file .* does not exist'):
    vgg_extractor.make_vgg_extractor(
      'vse', str(tmp_path / 'vgg19.h5'), str(tmp_path / 'x.npz'), arch=NARROW19
    )
  (tmp_path / 'bad.npz').write_bytes(b'not a zip')
  with pytest.raises(InputError, match='not a readable .npz'):
    vgg_extractor.make_vgg_extractor(
      'vse', str(tmp_path / 'vgg19.h5'), str(tmp_path / 'bad.npz'), arch=NARROW19
    )
