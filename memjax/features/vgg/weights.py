"""VGG16/VGG19 weight files -> Flax parameters, and the captioning embedding's projection.

Supported VGG files (third_party/README.md says where to get them):

* **Keras**: the released `vgg16_weights_tf_dim_ordering_tf_kernels.h5` / `vgg19_...h5`, or a
  Keras 3 `model.save('x.h5')`, `model.save_weights('x.weights.h5')` or `model.save('x.keras')`
  of a VGG with keras.applications' layer names (`readers.keras_files` reads every layout).
  Kernels are HWIO already; `fc1` rows follow Keras' channels-last (H, W, C) flatten order.
* **torchvision** state dicts `vgg16-397923af.pth` / `vgg19-dcbb9e9d.pth`, read without torch
  (`readers.torch_checkpoint`): `features.<i>.weight` OIHW -> HWIO, `classifier.0` (fc6) and
  `classifier.3` (fc7) transposed; torchvision flattens pool5 as (C, H, W), so fc6's input rows are
  reordered to (H, W, C).

Layers are named as in Keras (`block1_conv1` ... `block5_conv3|4`, `fc1` = fc6, `fc2` = fc7); the
classifier (`predictions`, `classifier.6`) is ignored. Preprocessing follows the file's origin:
Keras files hold the original Caffe weights (BGR, ImageNet mean subtracted, 0-255), torchvision
files expect RGB / 255 normalised by the ImageNet mean and std.
"""

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from memjax.errors import InputError
from memjax.features.readers import weight_files
from memjax.features.vgg.model import KERAS, TORCHVISION, VGGArch

# Checksums published with the files (Keras lists md5 in keras.applications; torchvision file
# names carry the first 8 hex digits of the sha256, which torch.hub checks).
KNOWN_MD5 = {
  'vgg16_weights_tf_dim_ordering_tf_kernels.h5': '64373286793e3c8b2b4e3219cbf3544b',
  'vgg19_weights_tf_dim_ordering_tf_kernels.h5': 'cbe5617147190e668d6c5d5026f83318',
}
KNOWN_SHA256_PREFIX = {'vgg16-397923af.pth': '397923af', 'vgg19-dcbb9e9d.pth': 'dcbb9e9d'}
# Names the projection `.npz` may use: ours, then Kiros et al.'s release (`numpy.savez` of the
# Theano params of ryankiros/visual-semantic-embedding: `ff_image_W` [4096, 1024], `ff_image_b`).
PROJECTION_NAMES = (('W', 'b'), ('ff_image_W', 'ff_image_b'))
_IGNORED_KERAS = frozenset({'predictions'})
_IGNORED_TORCH = frozenset({'classifier.6.weight', 'classifier.6.bias'})


@dataclasses.dataclass(frozen=True)
class VGGWeights:
  """Parameters `{layer: {'kernel', 'bias'}}` (numpy), the file's origin and its sha256."""

  params: dict
  origin: str
  sha256: str


def _require_file(path: str, what: str) -> None:
  if not os.path.isfile(path):
    raise InputError(
      f'{what} {path} does not exist; memjax never downloads weights (third_party/README.md '
      'says where to get them).'
    )


def _check_names(found, expected, ignored, path: str, arch: VGGArch) -> None:
  missing = sorted(set(expected) - set(found))
  unexpected = sorted(set(found) - set(expected) - ignored)
  if missing or unexpected:
    raise InputError(
      f'{path}: not a VGG{arch.depth} weight file: missing {missing or "nothing"}, unexpected '
      f'{unexpected or "nothing"} (is depth={arch.depth} right for this file?).'
    )


def _check_shape(array: np.ndarray, shape: tuple, what: str, path: str) -> np.ndarray:
  if array.shape != tuple(shape):
    raise InputError(f'{path}: {what} has shape {array.shape}, expected {tuple(shape)}.')
  return np.asarray(array, np.float32)


def params_from_keras_layers(layers: Mapping[str, list], arch: VGGArch, path: str) -> dict:
  """Flax parameters from Keras layer weights (`keras_files.read_keras_layers`).

  Raises:
    InputError: layers missing or unexpected, or weights of the wrong number or shape.
  """
  expected = arch.expected_shapes()
  _check_names(layers, expected, _IGNORED_KERAS, path, arch)
  params = {}
  for name, (kernel_shape, bias_shape) in expected.items():
    weights = list(layers[name])
    if len(weights) != 2:
      raise InputError(f'{path}: layer {name} has {len(weights)} weights, expected kernel, bias.')
    kernel, bias = sorted(weights, key=lambda w: -np.ndim(w))
    params[name] = {
      'kernel': _check_shape(kernel, kernel_shape, f'{name} kernel', path),
      'bias': _check_shape(bias, bias_shape, f'{name} bias', path),
    }
  return params


def params_from_torchvision(state_dict: Mapping[str, np.ndarray], arch: VGGArch, path: str) -> dict:
  """Flax parameters from a torchvision VGG state_dict (OIHW convs, (C, H, W)-flattened fc6).

  Raises:
    InputError: parameters missing or unexpected, or of the wrong shape.
  """
  expected, prefixes = arch.expected_shapes(), arch.torch_names()
  keys = [f'{prefixes[n]}.{p}' for n in expected for p in ('weight', 'bias')]
  _check_names(state_dict, keys, _IGNORED_TORCH, path, arch)
  params = {}
  s, c = arch.pool5_size, arch.widths[-1]
  for name, (kernel_shape, bias_shape) in expected.items():
    key = prefixes[name]
    weight, bias = state_dict[f'{key}.weight'], state_dict[f'{key}.bias']
    if name.startswith('block'):
      kh, kw, cin, cout = kernel_shape
      weight = _check_shape(weight, (cout, cin, kh, kw), f'{key}.weight', path)
      kernel = weight.transpose(2, 3, 1, 0)
    elif name == 'fc1':
      weight = _check_shape(weight, (arch.fc_dim, c * s * s), f'{key}.weight', path)
      kernel = weight.reshape(arch.fc_dim, c, s, s).transpose(2, 3, 1, 0).reshape(-1, arch.fc_dim)
    else:
      kernel = _check_shape(weight, kernel_shape[::-1], f'{key}.weight', path).T
    params[name] = {
      'kernel': np.ascontiguousarray(kernel),
      'bias': _check_shape(bias, bias_shape, f'{key}.bias', path),
    }
  return params


def load_vgg_weights(path: str, arch: VGGArch) -> VGGWeights:
  """Reads a Keras or torchvision VGG weight file into Flax parameters.

  Args:
    path: a Keras `.h5` / `.weights.h5` / `.keras` or a torchvision `.pth` file.
    arch: the network the file must match (depth, widths).

  Returns:
    The parameters, the file's origin (`'keras'` or `'torchvision'`, which fixes the
    preprocessing) and its sha256.

  Raises:
    InputError: the file is missing, fails its published checksum, has an unknown layout, or
      lacks / adds layers or has wrong shapes (all named).
  """
  path = os.fspath(path)
  _require_file(path, f'VGG{arch.depth} weight file')
  name = os.path.basename(path)
  sha256 = weight_files.file_sha256(path, KNOWN_MD5.get(name), KNOWN_SHA256_PREFIX.get(name))
  kind, contents = weight_files.read_keras_or_torch(path)
  if kind == 'keras':
    return VGGWeights(params_from_keras_layers(contents, arch, path), KERAS, sha256)
  return VGGWeights(params_from_torchvision(contents, arch, path), TORCHVISION, sha256)


def load_projection(path: str, in_dim: int) -> tuple[np.ndarray, np.ndarray, str]:
  """Reads the embedding's image projection from a `.npz` of named arrays.

  Accepted names: `W` [in_dim, D] with optional `b` [D], or the original release's
  `ff_image_W` / `ff_image_b` (other arrays in the file, e.g. the sentence encoder, are ignored).

  Args:
    path: the `.npz` file.
    in_dim: the input width (VGG fc7: 4096).

  Returns:
    (W [in_dim, D] float32, b [D] float32 (zeros when absent), sha256 of the file).

  Raises:
    InputError: the file is missing or unreadable, holds none or both of the name pairs, or the
      arrays have the wrong shape.
  """
  path = os.fspath(path)
  _require_file(path, 'projection file')
  arrays = weight_files.read_npz(path, keep=lambda k: any(k in p for p in PROJECTION_NAMES))
  present = [pair for pair in PROJECTION_NAMES if pair[0] in arrays]
  if len(present) != 1:
    weights = ' or '.join(p[0] for p in PROJECTION_NAMES)
    biases = ' / '.join(p[1] for p in PROJECTION_NAMES)
    raise InputError(
      f'{path}: expected exactly one projection, named {weights} (with optional bias {biases}); '
      f'found {[p[0] for p in present] or "none"}.'
    )
  w_name, b_name = present[0]
  w = arrays[w_name]
  if w.ndim != 2 or w.shape[0] != in_dim:
    raise InputError(f'{path}: {w_name} has shape {w.shape}, expected [{in_dim}, D].')
  b = arrays.get(b_name, np.zeros(w.shape[1], np.float32))
  if b.shape != (w.shape[1],):
    raise InputError(f'{path}: {b_name} has shape {b.shape}, expected ({w.shape[1]},).')
  if w.dtype.kind not in 'fiu' or not np.isfinite(w).all():
    raise InputError(f'{path}: {w_name} must hold finite numbers.')
  return w.astype(np.float32), b.astype(np.float32), weight_files.file_sha256(path)
