"""A weight file's tensors by its extension, `.npz` archives, and a file's checksums.

`.safetensors` files are read by `safetensors.py`, `.bin` / `.pth` / `.pt` by the torch-free
`torch_checkpoint.py`, `.npz` by NumPy (no pickles). The sha256 of a weight file is the identity
an extractor records in the feature store and the run record.
"""

import hashlib
import os
import zipfile
from collections.abc import Callable

import numpy as np

from memjax.errors import InputError
from memjax.features.readers import safetensors, torch_checkpoint


def read_npz(path: str, keep: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
  """The arrays of an `.npz` (those whose name `keep` accepts; None: all), loaded.

  Raises:
    InputError: the file is not a readable `.npz` of arrays (pickled objects are refused).
  """
  try:
    with np.load(path, allow_pickle=False) as npz:
      return {k: npz[k] for k in npz.files if keep is None or keep(k)}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise InputError(f'{path}: not a readable .npz of arrays ({e}).') from e


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """All tensors of a weight file, by its extension (`.safetensors`, `.bin`/`.pth`/`.pt`, `.npz`).

  Raises:
    InputError: the file is missing, or unreadable as its extension says.
  """
  if not os.path.isfile(path):
    raise InputError(f'weight file {path} does not exist (memjax never downloads weights).')
  if path.endswith('.safetensors'):
    return safetensors.read(path)
  if path.endswith('.npz'):
    return read_npz(path)
  if path.endswith(('.bin', '.pth', '.pt')):
    return torch_checkpoint.load_state_dict(path)
  raise InputError(f'{path}: expected a .safetensors, .bin / .pth / .pt or .npz weight file.')


def file_digests(path: str, with_md5: bool = False) -> tuple[str, str | None]:
  """(sha256, md5 or None) hex digests of a file's bytes, in one pass."""
  sha, md5 = hashlib.sha256(), hashlib.md5() if with_md5 else None
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 24):
      sha.update(chunk)
      if md5 is not None:
        md5.update(chunk)
  return sha.hexdigest(), md5.hexdigest() if md5 is not None else None


def file_sha256(path: str) -> str:
  """Hex sha256 of a file's bytes."""
  return file_digests(path)[0]
