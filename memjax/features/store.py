"""The on-disk feature store: frozen features computed once, keyed by image id, read by every run.

Format (version 1). A store is a directory holding:

* `ids.txt`: one image id per line (UTF-8, `\\n` line ends), in row order. Ids are non-empty,
  unique, and carry no leading or trailing whitespace.
* `<name>.npy`, one per feature (`cnn.npy`, `semantic.npy`, `clip.npy`, ...): a plain NumPy
  `.npy` array of shape [N, D] and dtype float16 or float32 whose row i belongs to line i of
  `ids.txt`, loadable with `np.load(path, mmap_mode='r')`. Feature names use letters, digits,
  `_` and `-`, and start with a letter or digit.
* `metadata.json`::

    {"format_version": 1, "count": N, "source": <anything JSON, e.g. "LaMem images/">,
     "features": {"cnn": {"dim": 4096, "dtype": "float16", "extractor": "vgg16_fc7",
                          "weights_sha256": "<64 hex digits>" or null,
                          "input_size": [224, 224] (or an int, or null),
                          "preprocessing": "resize 256, center crop 224, VGG mean"}, ...}}

  `features` lists exactly the features the store serves; extra keys are kept as they are.
* `COMPLETE`: the completeness marker, written last. A directory without it is an unfinished
  store and is never read, so a crash never leaves a store that looks complete.
* `progress.json`: only while `store_writer.StoreWriter` is filling the store (rows done per
  feature); it is removed once `COMPLETE` exists.
* `finite_checked.json` (optional, a cache): which arrays are known to hold no NaN or inf, keyed
  by each file's identity and change times (`memjax.features.store_values`). Deleting it only
  makes the next `read_store` scan the arrays again.

`write_store` writes a whole store into a temporary sibling directory and renames it into place;
`store_writer.StoreWriter` fills one batch at a time and can resume after a crash; `read_store`
validates and memory-maps. Stores made elsewhere (e.g. CLIP features) need only follow the format.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from memjax.errors import InputError, out_of_space
from memjax.features import store_values
from memjax.features.store_format import (
  COMPLETE_FILE,
  DTYPES,
  IDS_FILE,
  METADATA_FILE,
  PROGRESS_FILE,
  build_metadata,
  cast_rows,
  check_dtype,
  check_feature_name,
  finish,
  ids_text,
  is_complete,
  read_ids,
  read_metadata,
  sync_dir,
  validate_ids,
)
from memjax.features.store_writer import StoreWriter
from memjax.runtime import atomic_files

__all__ = ['StoreWriter', 'check_feature_dims', 'is_complete', 'read_store', 'write_store']


def _looks_like_store(directory: str) -> bool:
  names = set(os.listdir(directory))
  return bool(names & {IDS_FILE, METADATA_FILE, COMPLETE_FILE, PROGRESS_FILE})


def _check_target(directory: str, overwrite: bool) -> None:
  if not os.path.lexists(directory):
    return
  if not os.path.isdir(directory):
    raise InputError(f'{directory} exists and is not a directory; refusing to write a store there.')
  if not os.listdir(directory):
    return
  if not _looks_like_store(directory):
    raise InputError(
      f'{directory} is a non-empty directory that is not a feature store; refusing to replace it.'
    )
  if not overwrite:
    state = 'a complete' if is_complete(directory) else 'an unfinished'
    raise InputError(
      f'{directory} already holds {state} feature store; pass overwrite=True to replace it.'
    )


def _swap_into_place(tmp: str, directory: str) -> None:
  """Renames the finished `tmp` to `directory`; an old store is moved aside first, removed last."""
  parent, base = os.path.split(directory)
  if not os.path.lexists(directory):
    os.rename(tmp, directory)
  else:
    backup = tempfile.mkdtemp(prefix=f'.{base}.old-', dir=parent)
    os.rmdir(backup)  # only the unique name is wanted
    os.rename(directory, backup)
    try:
      os.rename(tmp, directory)
    except BaseException:
      os.rename(backup, directory)
      raise
    shutil.rmtree(backup, ignore_errors=True)
  sync_dir(parent)


def write_store(
  directory: str | os.PathLike,
  ids: Sequence[str],
  features: Mapping[str, np.ndarray],
  metadata: Mapping,
  dtype: str = 'float32',
  *,
  overwrite: bool = False,
) -> str:
  """Writes a whole feature store atomically.

  Everything goes into a temporary sibling directory (`metadata.json`, then `COMPLETE`, last),
  which is then renamed to `directory`. An existing store is moved aside (to a hidden
  `.<name>.old-*` sibling) only once the new one is complete, and deleted only after the new one
  is in place; so a crash leaves the old store or the new one, never a partial one (in the instant
  between the two renames the old one sits aside, and `read_store`'s error points to it).

  Args:
    directory: the store directory to create.
    ids: [N] unique image ids, in row order.
    features: feature name -> [N, D] array (any float or int dtype; cast to `dtype`).
    metadata: descriptive fields, see `build_metadata`.
    dtype: 'float16' or 'float32', the stored dtype of every feature.
    overwrite: replace an existing store at `directory`.

  Returns:
    The absolute path of the store.

  Raises:
    InputError: bad ids, arrays or metadata; or `directory` already holds a store and
      `overwrite` is False, or holds something that is not a store.
  """
  directory = os.path.abspath(os.fspath(directory))
  dtype = check_dtype(dtype)
  ids = validate_ids(ids)
  if not features:
    raise InputError('write_store needs at least one feature array.')
  for name in features:
    check_feature_name(name)
  where = f'feature store {directory}'
  arrays = {
    n: cast_rows(n, a, len(ids), None, dtype, where=where, ids=ids) for n, a in features.items()
  }
  meta = build_metadata(metadata, {n: a.shape[1] for n, a in arrays.items()}, dtype, len(ids))
  _check_target(directory, overwrite)
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  kept = 'The store there is unchanged' if os.path.lexists(directory) else 'Nothing was kept'
  with out_of_space(f'feature store {directory}', f'{kept}; free space and re-run.'):
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(directory)}.tmp-', dir=parent)
    try:
      atomic_files.write_text(os.path.join(tmp, IDS_FILE), ids_text(ids))
      for name, array in arrays.items():
        with open(os.path.join(tmp, f'{name}.npy'), 'wb') as f:
          np.save(f, array)
          f.flush()
          os.fsync(f.fileno())
      finish(tmp, meta)
      _swap_into_place(tmp, directory)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  dims = {n: a.shape[1] for n, a in arrays.items()}
  logging.info('Wrote feature store %s: %d rows of %s, dims %s.', directory, len(ids), dtype, dims)
  return directory


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
  return f'feature store {directory} does not exist (expected a directory with {IDS_FILE}).{hint}'


def _incomplete_message(directory: str) -> str:
  progress_path = os.path.join(directory, PROGRESS_FILE)
  detail = ''
  if os.path.isfile(progress_path):
    try:
      with open(progress_path, encoding='utf-8') as f:
        progress = json.load(f)
      detail = f' {PROGRESS_FILE} records rows done {progress["rows_done"]} of {progress["count"]};'
    except (OSError, ValueError, KeyError, TypeError):
      detail = f' {PROGRESS_FILE} is unreadable;'
  return (
    f'feature store {directory} is incomplete: no {COMPLETE_FILE} marker (an interrupted or '
    f'unfinished write).{detail} resume it with StoreWriter or write it again.'
  )


def _load_feature(directory: str, name: str, meta: dict, count: int, mmap: bool) -> np.ndarray:
  path = os.path.join(directory, f'{name}.npy')
  try:
    array = np.load(path, mmap_mode='r' if mmap else None, allow_pickle=False)
  except FileNotFoundError as e:
    raise InputError(f'{path} is missing; {METADATA_FILE} lists feature {name!r}.') from e
  except (OSError, ValueError) as e:
    raise InputError(f'{path} is not a readable .npy array: {e}') from e
  if array.dtype.name not in DTYPES:
    raise InputError(f'{path} has dtype {array.dtype}; expected one of {DTYPES}.')
  if array.dtype.name != meta['features'][name]['dtype']:
    raise InputError(
      f'{path} has dtype {array.dtype}; {METADATA_FILE} says {meta["features"][name]["dtype"]}.'
    )
  if array.ndim != 2:
    raise InputError(f'{path} has shape {array.shape}; expected [{count}, dim].')
  if array.shape[0] != count:
    raise InputError(
      f'{path} has {array.shape[0]} rows; expected {count}, one per line of {IDS_FILE}.'
    )
  if array.shape[1] != meta['features'][name]['dim']:
    raise InputError(
      f'{path} has dimension {array.shape[1]}; {METADATA_FILE} says '
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
      that `finite_checked.json` does not record as checked (see `store_values`), 'force' scans
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
  if not is_complete(directory):
    raise InputError(_incomplete_message(directory))
  meta = read_metadata(directory)
  ids_path = os.path.join(directory, IDS_FILE)
  ids = read_ids(ids_path)
  if len(ids) != meta['count']:
    raise InputError(f'{ids_path} has {len(ids)} ids; {METADATA_FILE} says count={meta["count"]}.')
  available = sorted(meta['features'])
  names = available if names is None else list(names)
  absent = [n for n in names if n not in meta['features']]
  if absent:
    raise InputError(
      f'feature store {directory} has no feature(s) {absent}; available: {available}.'
    )
  features = {name: _load_feature(directory, name, meta, len(ids), mmap) for name in names}
  if check_finite:
    store_values.check_arrays(directory, features, ids, force=check_finite == 'force')
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
