"""Test helper: writes PyTorch state_dict files without torch, in torch's exact on-disk layouts.

`save_zip` mirrors `torch.save` (torch >= 1.6): records `archive/data.pkl`, `archive/byteorder`,
`archive/data/<key>` (keys '0', '1', ... in order of first use), `archive/version`; stored
uncompressed. `save_legacy` mirrors `torch.save(..., _use_new_zipfile_serialization=False)`:
magic number, protocol version, sys info, the object, the sorted storage keys, then each storage
as an int64 element count and its bytes. Both pickle with protocol 2, reduce tensors to
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and refer
to storages by the persistent ids torch uses.
"""

import collections
import io
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_STORAGE_NAMES = {
  np.dtype('float64'): 'DoubleStorage',
  np.dtype('float32'): 'FloatStorage',
  np.dtype('float16'): 'HalfStorage',
  np.dtype(ml_dtypes.bfloat16): 'BFloat16Storage',
  np.dtype('int64'): 'LongStorage',
  np.dtype('int32'): 'IntStorage',
  np.dtype('int16'): 'ShortStorage',
  np.dtype('int8'): 'CharStorage',
  np.dtype('uint8'): 'ByteStorage',
  np.dtype('bool'): 'BoolStorage',
}


class Global:
  """A reference to `module.name`, pickled as a GLOBAL opcode without importing it."""

  _cache: dict = {}

  def __new__(cls, module, name):
    key = (module, name)
    if key not in cls._cache:
      obj = super().__new__(cls)
      obj.module, obj.name = module, name
      cls._cache[key] = obj
    return cls._cache[key]

  def __call__(self, *args):  # pickle requires reduce functions to be callable.
    raise NotImplementedError


class Storage:
  """A flat storage (1-D array) that tensors view."""

  def __init__(self, flat: np.ndarray, key: str | None = None):
    self.flat = np.ascontiguousarray(flat).reshape(-1)
    self.key = key


class Tensor:
  """A tensor: a strided view of a Storage (element offset and strides, like torch)."""

  def __init__(self, storage: Storage, offset: int, size, stride, rebuild='_rebuild_tensor_v2'):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
    self.rebuild = rebuild

  def __reduce_ex__(self, protocol):
    args = (self.storage, self.offset, self.size, self.stride)
    if self.rebuild == '_rebuild_tensor_v2':  # The old `_rebuild_tensor` takes only these four.
      args += (False, collections.OrderedDict())
    return Global('torch._utils', self.rebuild), args


class Parameter:
  """An nn.Parameter wrapping a Tensor (`_rebuild_parameter(data, requires_grad, hooks)`)."""

  def __init__(self, tensor: Tensor):
    self.tensor = tensor

  def __reduce_ex__(self, protocol):
    args = (self.tensor, True, collections.OrderedDict())
    return Global('torch._utils', '_rebuild_parameter'), args


def tensor(array: np.ndarray) -> Tensor:
  """A contiguous tensor owning its own storage."""
  array = np.asarray(array)
  strides = tuple(int(np.prod(array.shape[i + 1 :])) for i in range(array.ndim))
  return Tensor(Storage(array), 0, array.shape, strides)


class _Pickler(pickle._Pickler):  # The pure-Python pickler: its dispatch table is extensible.
  dispatch = pickle._Pickler.dispatch.copy()

  def __init__(self, file, persistent_id):
    super().__init__(file, protocol=2)
    self._pid = persistent_id

  def persistent_id(self, obj):
    return self._pid(obj)

  def save_global_ref(self, obj):
    self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
    self.memoize(obj)

  dispatch[Global] = save_global_ref


def _dump_object(obj, file, storage_id):
  _Pickler(file, lambda o: storage_id(o) if isinstance(o, Storage) else None).dump(obj)


def _storage_type(storage: Storage) -> Global:
  return Global('torch', _STORAGE_NAMES[storage.flat.dtype])


def save_zip(path, state_dict, archive='archive', byteorder='little', extra_records=()):
  """Writes `state_dict` (name -> Tensor/Parameter/array) like torch.save's zip format."""
  state_dict = _as_tensors(state_dict)
  storages: dict[int, Storage] = {}

  def storage_id(storage):
    if id(storage) not in storages:
      storage.key = str(len(storages))
      storages[id(storage)] = storage
    return ('storage', _storage_type(storage), storage.key, 'cpu', storage.flat.size)

  buf = io.BytesIO()
  _dump_object(state_dict, buf, storage_id)
  with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
    zf.writestr(f'{archive}/data.pkl', buf.getvalue())
    zf.writestr(f'{archive}/byteorder', byteorder)
    for storage in sorted(storages.values(), key=lambda s: int(s.key)):
      flat = storage.flat.byteswap() if byteorder == 'big' else storage.flat
      zf.writestr(f'{archive}/data/{storage.key}', flat.tobytes())
    zf.writestr(f'{archive}/version', '3\n')
    for name, data in extra_records:
      zf.writestr(f'{archive}/{name}', data)


def save_legacy(path, state_dict):
  """Writes `state_dict` like torch.save(..., _use_new_zipfile_serialization=False)."""
  state_dict = _as_tensors(state_dict)
  storages: dict[str, Storage] = {}

  def storage_id(storage):
    if storage.key is None:
      storage.key = str(140_000_000 + 4096 * len(storages))  # torch uses the C pointer.
    storages[storage.key] = storage
    return ('storage', _storage_type(storage), storage.key, 'cpu', storage.flat.size, None)

  sys_info = {
    'protocol_version': PROTOCOL_VERSION,
    'little_endian': True,
    'type_sizes': {'short': 2, 'int': 4, 'long': 4},
  }
  with open(path, 'wb') as f:
    for header in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info):
      pickle.dump(header, f, protocol=2)
    _dump_object(state_dict, f, storage_id)
    keys = sorted(storages)
    pickle.dump(keys, f, protocol=2)
    for key in keys:
      flat = storages[key].flat
      f.write(struct.pack('<q', flat.size))
      f.write(flat.tobytes())


def _as_tensors(state_dict):
  out = collections.OrderedDict()
  for name, value in state_dict.items():
    out[name] = tensor(value) if isinstance(value, np.ndarray) else value
  return out
