"""Reading a feature store: `read_store` validates a complete store and memory-maps its arrays.

The format is specified in `spec`; `values` checks the arrays for NaN and inf.
"""

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from memjax.errors import InputError
from memjax.features.store import spec, values


def _missing_message(directory: str) -> str:
  parent, base = os.path.split(os.path.abspath(directory))
  aside = []
  if os.path.isdir(parent):
    aside = sorted(n for n in os.listdir(parent) if n.startswith(f'.{base}.old-'))
  hint = (
    f' An interrupted overwrite left the previous store at {os.path.join(parent, aside[0])}.'
    if aside
    else ''
  )
  return (
    f'feature store {directory} does not exist (expected a directory with {spec.IDS_FILE}).{hint}'
  )


def _incomplete_message(directory: str) -> str:
  progress_path = os.path.join(directory, spec.PROGRESS_FILE)
  detail = ''
  if os.path.isfile(progress_path):
    try:
      with open(progress_path, encoding='utf-8') as f:
        progress = json.load(f)
      detail = (
        f' {spec.PROGRESS_FILE} records rows done {progress["rows_done"]} of {progress["count"]};'
      )
    except (OSError, ValueError, KeyError, TypeError):
      detail = f' {spec.PROGRESS_FILE} is unreadable;'
  return (
    f'feature store {directory} is incomplete: no {spec.COMPLETE_FILE} marker (an interrupted or '
    f'unfinished write).{detail} resume it with StoreWriter or write it again.'
  )


def _load_feature(directory: str, name: str, meta: dict, count: int, mmap: bool) -> np.ndarray:
  path = os.path.join(directory, f'{name}.npy')
  try:
    array = np.load(path, mmap_mode='r' if mmap else None, allow_pickle=False)
  except FileNotFoundError as e:
    raise InputError(f'{path} is missing; {spec.METADATA_FILE} lists feature {name!r}.') from e
  except (OSError, ValueError) as e:
    raise InputError(f'{path} is not a readable .npy array: {e}') from e
  if array.dtype.name not in spec.DTYPES:
    raise InputError(f'{path} has dtype {array.dtype}; expected one of {spec.DTYPES}.')
  if array.dtype.name != meta['features'][name]['dtype']:
    raise InputError(
      f'{path} has dtype {array.dtype}; {spec.METADATA_FILE} says '
      f'{meta["features"][name]["dtype"]}.'
    )
  if array.ndim != 2:
    raise InputError(f'{path} has shape {array.shape}; expected [{count}, dim].')
  if array.shape[0] != count:
    raise InputError(
      f'{path} has {array.shape[0]} rows; expected {count}, one per line of {spec.IDS_FILE}.'
    )
  if array.shape[1] != meta['features'][name]['dim']:
    raise InputError(
      f'{path} has dimension {array.shape[1]}; {spec.METADATA_FILE} says '
      f'{meta["features"][name]["dim"]}.'
    )
  return array


def read_store(
  directory: str | os.PathLike,
  names: Sequence[str] | None = None,
  mmap: bool = True,
  *,
  check_finite: bool | str = True,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
  """Reads and validates a complete feature store.

  Args:
    directory: the store directory.
    names: features to return; all of them when None.
    mmap: memory-map the arrays (read-only) instead of loading them into memory.
    check_finite: check every returned array for NaN or inf rows: True (the default) scans those
      that `finite_checked.json` does not record as checked (see `values`), 'force' scans
      all of them, False none.

  Returns:
    (ids, features, metadata): [N] str ids in row order; name -> [N, D] float16/float32 array;
    the parsed `metadata.json`.

  Raises:
    InputError: missing directory, incomplete store (no `COMPLETE`), bad `metadata.json` or
      `ids.txt` (duplicates are named with both line numbers), row counts or dimensions that
      disagree, a requested feature that is absent (the available ones are listed), a non-float
      array, or (with `check_finite`) non-finite values (naming the store, the feature, the
      number of bad rows and the first ones with their ids).
  """
  directory = os.fspath(directory)
  if not os.path.isdir(directory):
    raise InputError(_missing_message(directory))
  if not spec.is_complete(directory):
    raise InputError(_incomplete_message(directory))
  meta = spec.read_metadata(directory)
  ids_path = os.path.join(directory, spec.IDS_FILE)
  ids = spec.read_ids(ids_path)
  if len(ids) != meta['count']:
    raise InputError(
      f'{ids_path} has {len(ids)} ids; {spec.METADATA_FILE} says count={meta["count"]}.'
    )
  available = sorted(meta['features'])
  names = available if names is None else list(names)
  absent = [n for n in names if n not in meta['features']]
  if absent:
    raise InputError(
      f'feature store {directory} has no feature(s) {absent}; available: {available}.'
    )
  features = {name: _load_feature(directory, name, meta, len(ids), mmap) for name in names}
  if check_finite:
    values.check_arrays(directory, features, ids, force=check_finite == 'force')
  return np.array(ids, dtype=str), features, meta


def check_feature_dims(
  actual: Mapping[str, int | np.ndarray],
  expected: Mapping[str, int],
  *,
  what: str = 'the checkpoint',
) -> None:
  """Checks that features have the dimensions a model (e.g. a checkpoint's meta) expects.

  Args:
    actual: feature name -> dimension, or -> [N, D] array.
    expected: feature name -> dimension the model was built for.
    what: who expects them, for the message.

  Raises:
    InputError: an expected feature is absent, or its dimension differs (naming the feature,
      the expected and the actual dimension).
  """
  dims = {n: v if isinstance(v, int | np.integer) else v.shape[-1] for n, v in actual.items()}
  for name, dim in expected.items():
    if name not in dims:
      raise InputError(f'{what} expects feature {name!r} ({dim}-d); available: {sorted(dims)}.')
    if int(dims[name]) != int(dim):
      raise InputError(
        f'feature {name!r} has dimension {int(dims[name])}, but {what} expects {int(dim)}.'
      )
