"""A weight file's tensors by its extension, a Keras or PyTorch file by its content, `.npz`
archives, and a file's checked sha256.

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
from memjax.features.readers import keras_files, safetensors, torch_checkpoint


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


def read_keras_or_torch(path: str) -> tuple[str, dict]:
  """('keras', layer name -> arrays) of a Keras HDF5 / `.keras` file, or ('torch', name -> array)
  of a PyTorch checkpoint, told apart by the file's content.

  Raises:
    InputError: neither, or unreadable as the one it is.
  """
  if keras_files.is_keras_file(path):
    return 'keras', keras_files.read_keras_layers(path)
  with open(path, 'rb') as f:
    if f.read(1) != b'\x80' and not zipfile.is_zipfile(path):  # A pickle starts with PROTO.
      raise InputError(
        f'{path}: neither a Keras HDF5 / .keras file nor a PyTorch checkpoint (.pth).'
      )
  return 'torch', torch_checkpoint.load_state_dict(path)


def file_sha256(path: str, md5: str | None = None, sha256_prefix: str | None = None) -> str:
  """Hex sha256 of a file's bytes, checked against the digests published with it, if given: its
  md5 (Keras lists them), the start of its sha256 (torchvision file names carry it).

  Raises:
    InputError: a digest differs from the published one (a damaged or another file).
  """
  sha, md5_hash = hashlib.sha256(), hashlib.md5() if md5 is not None else None
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 24):
      sha.update(chunk)
      if md5_hash is not None:
        md5_hash.update(chunk)
  name, sha256 = os.path.basename(path), sha.hexdigest()
  if md5_hash is not None and md5_hash.hexdigest() != md5:
    raise InputError(
      f'{path}: md5 {md5_hash.hexdigest()} does not match the published {md5} of {name}; the '
      'file is damaged or not the released one (download it again).'
    )
  if sha256_prefix is not None and not sha256.startswith(sha256_prefix):
    raise InputError(
      f'{path}: sha256 {sha256} does not start with {sha256_prefix} as its file name says; the '
      'file is damaged or not the released one (download it again).'
    )
  return sha256
