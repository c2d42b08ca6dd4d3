"""Reads PyTorch checkpoint files (`torch.save` of a state_dict) without torch.

Two on-disk formats exist:

* **zip** (torch >= 1.6): a zip archive whose records sit under one top folder (`archive/`, or the
  file's stem): `data.pkl` (the pickled object; tensors refer to storages by persistent id
  `('storage', storage_type, key, location, numel)`), `data/<key>` (each storage's raw bytes),
  `byteorder` (`little` or `big`; little when absent) and `version`.
* **legacy** (torch < 1.6, or `_use_new_zipfile_serialization=False`): a sequence of pickles —
  the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys-info dict, the object
  (persistent ids `('storage', storage_type, key, location, numel, view_metadata)`), the sorted
  list of storage keys — then each storage in that order as an int64 little-endian element count
  followed by its raw little-endian bytes.

Tensors are rebuilt from `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
as numpy views (element offset and strides) copied into contiguous arrays. Unpickling is
restricted: only `collections.OrderedDict`, the tensor/parameter rebuild functions and the
`torch.*Storage` types are resolved; any other global is refused, so a checkpoint cannot run code.
The (pre-0.4) tar format and TorchScript archives are not supported.
"""

import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import ml_dtypes
import numpy as np

from memjax.errors import InputError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage type name -> numpy dtype (little-endian).
STORAGE_DTYPES = {
  'DoubleStorage': np.dtype('<f8'),
  'FloatStorage': np.dtype('<f4'),
  'HalfStorage': np.dtype('<f2'),
  'BFloat16Storage': np.dtype(ml_dtypes.bfloat16),
  'LongStorage': np.dtype('<i8'),
  'IntStorage': np.dtype('<i4'),
  'ShortStorage': np.dtype('<i2'),
  'CharStorage': np.dtype('i1'),
  'ByteStorage': np.dtype('u1'),
  'BoolStorage': np.dtype('?'),
  'UntypedStorage': np.dtype('u1'),
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str
  dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _Storage:
  """A storage the pickle refers to; its bytes are read after unpickling."""

  key: str
  dtype: np.dtype
  numel: int
  # Legacy files may reference a slice (view) of a root storage: (element offset, numel).
  view: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class _Tensor:
  storage: _Storage
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused_args):
  if not isinstance(storage, _Storage):
    raise TypeError(f'a tensor must view a storage, got {type(storage).__name__}')
  return _Tensor(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_tensor(storage, storage_offset, size, stride):
  return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused_args):
  return data


def _allowed_globals() -> dict[tuple[str, str], Any]:
  allowed: dict[tuple[str, str], Any] = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
  }
  for name, dtype in STORAGE_DTYPES.items():
    allowed[('torch', name)] = _StorageType(name, dtype)
  return allowed


_ALLOWED = _allowed_globals()


class _Unpickler(pickle.Unpickler):
  """Resolves only the globals a tensor state_dict needs; refuses everything else."""

  def __init__(self, file: BinaryIO, path: str, persistent_load: Callable[[Any], Any]):
    super().__init__(file, encoding='utf-8')
    self._path = path
    self._persistent_load = persistent_load

  def find_class(self, module: str, name: str) -> Any:
    found = _ALLOWED.get((module, name))
    if found is None:
      raise InputError(
        f'{self._path}: refused to unpickle global {module}.{name}; a checkpoint may hold only '
        'tensors in (ordered) dicts, lists and tuples (collections.OrderedDict, '
        'torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.*Storage).'
      )
    return found

  def persistent_load(self, pid: Any) -> Any:
    return self._persistent_load(pid)


def _key(value: Any) -> str:
  return value.decode('ascii') if isinstance(value, bytes) else str(value)


def _storage_id(pid: Any, path: str, fields: int, kind: str) -> tuple[_StorageType, str, int]:
  """(storage type, key, element count) of a persistent id that must have `fields` fields."""
  if not isinstance(pid, tuple) or not pid or pid[0] not in ('storage', b'storage'):
    raise InputError(f'{path}: unexpected persistent id {pid!r}; expected a tensor storage.')
  if not isinstance(pid[1], _StorageType):
    raise InputError(f'{path}: persistent id {pid!r} does not name a torch storage type.')
  if len(pid) != fields:
    raise InputError(
      f'{path}: storage id {pid!r} should have {fields} fields in a {kind} checkpoint.'
    )
  return pid[1], _key(pid[2]), int(pid[4])


def _unpickle(file: BinaryIO, path: str, persistent_load: Callable[[Any], Any]) -> Any:
  try:
    return _Unpickler(file, path, persistent_load).load()
  except InputError:
    raise
  except Exception as e:  # A damaged pickle can raise almost anything.
    raise InputError(f'{path}: cannot unpickle the checkpoint ({type(e).__name__}: {e}).') from e


def _load_zip(path: str) -> tuple[Any, dict[str, np.ndarray]]:
  """(object with _Tensor leaves, storage key -> flat array) of a zip-format checkpoint."""
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
    pickles = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
    if len(pickles) != 1:
      torchscript = any(n.endswith('/constants.pkl') for n in names)
      raise InputError(
        f'{path}: a zip archive but not a torch.save checkpoint (expected one <folder>/data.pkl, '
        f'found {len(pickles)})'
        + ('; it looks like a TorchScript archive.' if torchscript else '.')
      )
    prefix = pickles[0][: -len('data.pkl')]
    byteorder = 'little'
    if prefix + 'byteorder' in names:
      byteorder = zf.read(prefix + 'byteorder').decode('ascii').strip()
      if byteorder not in ('little', 'big'):
        raise InputError(f'{path}: {prefix}byteorder is {byteorder!r}, expected little or big.')
    storages: dict[str, _Storage] = {}

    def persistent_load(pid):
      stype, key, numel = _storage_id(pid, path, 5, 'zip')
      return storages.setdefault(key, _Storage(key, stype.dtype, numel))

    obj = _unpickle(io.BytesIO(zf.read(pickles[0])), path, persistent_load)
    data = {}
    for key, storage in storages.items():
      record = f'{prefix}data/{key}'
      if record not in names:
        raise InputError(f'{path}: storage record {record} is missing.')
      info = zf.getinfo(record)
      nbytes = storage.numel * storage.dtype.itemsize
      if info.file_size != nbytes:
        raise InputError(
          f'{path}: {record} holds {info.file_size} bytes, expected {nbytes} '
          f'({storage.numel} x {storage.dtype}).'
        )
      buf = bytearray(nbytes)
      with zf.open(record) as f:
        f.readinto(buf)
      flat = np.frombuffer(buf, dtype=storage.dtype)
      data[key] = flat.byteswap() if byteorder == 'big' else flat
  return obj, data


def _load_legacy(path: str) -> tuple[Any, dict[str, np.ndarray]]:
  """(object with _Tensor leaves, storage key -> flat array) of a legacy-format checkpoint."""
  file_size = os.path.getsize(path)
  with open(path, 'rb') as f:
    try:
      magic = pickle.load(f)
    except Exception as e:
      raise InputError(
        f'{path}: not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save '
        f'stream: {type(e).__name__}: {e}).'
      ) from e
    if magic != MAGIC_NUMBER:
      raise InputError(f'{path}: not a PyTorch checkpoint (bad magic number {magic!r}).')
    version = pickle.load(f)
    if version != PROTOCOL_VERSION:
      raise InputError(f'{path}: legacy protocol version {version!r}, expected {PROTOCOL_VERSION}.')
    sys_info = pickle.load(f)
    if isinstance(sys_info, dict) and not sys_info.get('little_endian', True):
      raise InputError(f'{path}: written on a big-endian machine; not supported.')
    roots: dict[str, _Storage] = {}

    def persistent_load(pid):
      stype, key, numel = _storage_id(pid, path, 6, 'legacy')
      root = roots.setdefault(key, _Storage(key, stype.dtype, numel))
      view = pid[5]
      if view is None:
        return root
      _, offset, view_size = view
      return _Storage(key, stype.dtype, numel, (int(offset), int(view_size)))

    obj = _unpickle(f, path, persistent_load)
    keys = [_key(k) for k in pickle.load(f)]
    data = {}
    for key in keys:
      if key not in roots:
        raise InputError(f'{path}: storage {key} is listed but no tensor uses it.')
      storage = roots[key]
      header = f.read(8)
      if len(header) != 8:
        raise InputError(f'{path}: truncated before storage {key}.')
      (numel,) = struct.unpack('<q', header)
      if numel != storage.numel or numel < 0:
        raise InputError(
          f'{path}: storage {key} holds {numel} elements, the pickle says {storage.numel}.'
        )
      nbytes = numel * storage.dtype.itemsize
      if nbytes > file_size - f.tell():
        raise InputError(f'{path}: truncated inside storage {key}.')
      buf = bytearray(nbytes)
      if f.readinto(buf) != nbytes:
        raise InputError(f'{path}: truncated inside storage {key}.')
      data[key] = np.frombuffer(buf, dtype=storage.dtype)
    missing = sorted(set(roots) - set(keys))
    if missing:
      raise InputError(f'{path}: storages {missing} are used but not stored.')
  return obj, data


def _materialize(tensor: _Tensor, data: Mapping[str, np.ndarray], path: str, name: str):
  flat = data[tensor.storage.key]
  if tensor.storage.view is not None:
    start, size = tensor.storage.view
    flat = flat[start : start + size]
  size, stride, offset = tensor.size, tensor.stride, tensor.offset
  if len(size) != len(stride) or any(s < 0 for s in stride) or offset < 0:
    raise InputError(f'{path}: tensor {name} has bad size {size} / stride {stride} / offset.')
  if 0 in size:
    return np.zeros(size, flat.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
  if last >= flat.size:
    raise InputError(
      f'{path}: tensor {name} (size {size}, stride {stride}, offset {offset}) reads past the end '
      f'of its storage of {flat.size} elements.'
    )
  contiguous = stride == tuple(int(np.prod(size[i + 1 :])) for i in range(len(size)))
  if contiguous and offset == 0 and flat.size == int(np.prod(size)):
    return flat.reshape(size)  # The whole storage: no copy.
  itemsize = flat.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
    flat[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
  )
  return np.ascontiguousarray(view)


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch state_dict file (zip or legacy `torch.save` format) without torch.

  Args:
    path: a `.pth` / `.pt` file written by `torch.save(model.state_dict(), path)`.

  Returns:
    parameter name -> numpy array (C-contiguous, the tensor's dtype), in the file's order.

  Raises:
    InputError: the file is missing, is not a torch checkpoint, asks the unpickler for anything
      but tensors (the refused global is named), is truncated or inconsistent, or its top-level
      object is not a mapping of names to tensors.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise InputError(f'PyTorch checkpoint {path} does not exist (or is not a file).')
  loader = _load_zip if zipfile.is_zipfile(path) else _load_legacy
  obj, data = loader(path)
  if not isinstance(obj, Mapping):
    raise InputError(
      f'{path}: the checkpoint holds a {type(obj).__name__}, expected a state_dict (a mapping '
      'of parameter names to tensors).'
    )
  state_dict = {}
  for name, value in obj.items():
    if not isinstance(value, _Tensor):
      raise InputError(
        f'{path}: entry {name!r} is a {type(value).__name__}, not a tensor; expected a '
        'state_dict (save model.state_dict(), not a training checkpoint).'
      )
    state_dict[str(name)] = _materialize(value, data, path, str(name))
  return state_dict
