"""A reader of `.safetensors` files (Hugging Face's weight format) without the `safetensors`
package: an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte range),
then the raw little-endian tensor bytes. Tensors are memory-mapped, so only those used are read.
"""

import json
import os
import struct

import ml_dtypes
import numpy as np

from memjax.errors import InputError

_SAFETENSORS_DTYPES = {
  'F64': np.float64,
  'F32': np.float32,
  'F16': np.float16,
  'BF16': ml_dtypes.bfloat16,
  'I64': np.int64,
  'I32': np.int32,
  'I16': np.int16,
  'I8': np.int8,
  'U8': np.uint8,
  'BOOL': np.bool_,
}


def read(path: str) -> dict[str, np.ndarray]:
  """The tensors of a `.safetensors` file (8-byte little-endian header size, JSON header, data).

  Returns:
    name -> read-only array memory-mapped from the file.

  Raises:
    InputError: not a safetensors file, a dtype NumPy cannot hold, or offsets past the end.
  """
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    head = f.read(8)
    n = struct.unpack('<Q', head)[0] if len(head) == 8 else -1
    if not 0 < n <= size - 8:
      raise InputError(f'{path}: not a safetensors file (bad header length).')
    try:
      header = json.loads(f.read(n))
    except ValueError as e:
      raise InputError(f'{path}: not a safetensors file (header is not JSON: {e}).') from e
  data = np.memmap(path, np.uint8, 'r', offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
  out = {}
  for name, info in header.items():
    if name == '__metadata__':
      continue
    dtype = _SAFETENSORS_DTYPES.get(info.get('dtype'))
    start, end = info['data_offsets']
    shape = tuple(info['shape'])
    if dtype is None:
      raise InputError(f'{path}: tensor {name!r} has dtype {info.get("dtype")}, unsupported.')
    if end > data.size or end - start != int(np.prod(shape)) * np.dtype(dtype).itemsize:
      raise InputError(f'{path}: tensor {name!r} lies outside the file; is it truncated?')
    out[name] = data[start:end].view(dtype).reshape(shape)
  return out
