"""Keras weight files, read with h5py: layer name -> the layer's arrays.

Layouts: the Keras 1/2 weights files (root attribute `layer_names`; group `<layer>` with
attribute `weight_names`, datasets `<layer>/<weight name>`); a Keras 3 `model.save('x.h5')` (the
same layout under `model_weights/`); a Keras 3 `model.save_weights('x.weights.h5')` (groups
`layers/<auto name>/vars/{0,1}`, the layer's name in the `vars` group's `name` attribute); and a
Keras 3 `model.save('x.keras')` (a zip holding that `model.weights.h5`, read in place).
"""

import io
import struct
import zipfile

import h5py
import numpy as np

from memjax.errors import InputError


class _StoredMember(io.RawIOBase):
  """Read-only, seekable view of an uncompressed zip member (so h5py can read it in place)."""

  def __init__(self, path: str, info: zipfile.ZipInfo):
    super().__init__()
    self._f = open(path, 'rb')  # noqa: SIM115 (closed in close())
    self._f.seek(info.header_offset)
    header = self._f.read(30)
    name_len, extra_len = struct.unpack('<HH', header[26:30])
    self._start = info.header_offset + 30 + name_len + extra_len
    self._size, self._pos = info.file_size, 0

  def readable(self):
    return True

  def seekable(self):
    return True

  def tell(self):
    return self._pos

  def seek(self, offset, whence=io.SEEK_SET):
    base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
    self._pos = base + offset
    return self._pos

  def readinto(self, buffer):
    n = max(0, min(len(buffer), self._size - self._pos))
    self._f.seek(self._start + self._pos)
    got = self._f.readinto(memoryview(buffer)[:n])
    self._pos += got
    return got

  def close(self):
    self._f.close()
    super().close()


def _keras3_layers(group: h5py.Group, path: str) -> dict[str, list[np.ndarray]]:
  """Layer name -> arrays of a Keras 3 `.weights.h5` (`.../vars` groups named by attribute)."""
  layers: dict[str, list[np.ndarray]] = {}

  def visit(name, obj):
    if isinstance(obj, h5py.Group) and name.split('/')[-1] == 'vars' and len(obj):
      layer = obj.attrs.get('name', name)
      layer = layer.decode() if isinstance(layer, bytes) else str(layer)
      if layer in layers:
        raise InputError(f'{path}: layer {layer!r} appears twice ({name}).')
      layers[layer] = [np.asarray(obj[k]) for k in sorted(obj, key=int)]

  group.visititems(visit)
  return layers


def _legacy_layers(group: h5py.Group) -> dict[str, list[np.ndarray]]:
  """Layer name -> arrays of a Keras 1/2 weights file or Keras 3 legacy `.h5` (`weight_names`)."""
  layers = {}
  for layer in group.attrs['layer_names']:
    layer = layer.decode() if isinstance(layer, bytes) else str(layer)
    names = group[layer].attrs.get('weight_names', [])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if names:
      layers[layer] = [np.asarray(group[layer][n]) for n in names]
  return layers


def read_keras_layers(path: str) -> dict[str, list[np.ndarray]]:
  """Layer name -> weight arrays (in Keras' order) of any supported Keras file.

  Raises:
    InputError: the file is not one of the supported Keras layouts.
  """
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as zf:
      if 'model.weights.h5' not in zf.namelist():
        raise InputError(f'{path}: a zip without model.weights.h5, not a .keras model.')
      info = zf.getinfo('model.weights.h5')
    if info.compress_type != zipfile.ZIP_STORED:
      raise InputError(f'{path}: model.weights.h5 is compressed; re-save with Keras 3.')
    with _StoredMember(path, info) as member, h5py.File(member, 'r') as f:
      return _keras3_layers(f, path)
  with h5py.File(path, 'r') as f:
    if 'layer_names' in f.attrs:
      return _legacy_layers(f)
    if 'model_weights' in f and 'layer_names' in f['model_weights'].attrs:
      return _legacy_layers(f['model_weights'])
    if 'layers' in f:
      return _keras3_layers(f['layers'], path)
  raise InputError(
    f'{path}: not a Keras weight file (no layer_names attribute, model_weights/ or layers/ group).'
  )


def is_keras_file(path: str) -> bool:
  """Whether `path` is an HDF5 file or a `.keras` zip (holding `model.weights.h5`)."""
  if h5py.is_hdf5(path):
    return True
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as zf:
      return 'model.weights.h5' in zf.namelist()
  return False
