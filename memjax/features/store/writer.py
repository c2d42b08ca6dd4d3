"""Writing a feature store: whole and atomically (`write_store`), or batch by batch (`StoreWriter`).

`write_store` writes everything into a temporary sibling directory and renames it into place.
`StoreWriter` serves extraction runs that may be cut short: the store directory is created
(atomically) with `ids.txt`, one pre-allocated `<name>.npy` per feature and `progress.json`. Each
`append` writes the next rows of some features into the memory-mapped arrays, flushes them, then
atomically records the new row counts in `progress.json`; so after a crash at most the rows of
the batch in flight are lost, and they are written again on resume. Until `finalize` writes
`metadata.json` and the `COMPLETE` marker, the directory is an unfinished store that
`read_store` refuses.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from memjax.errors import NO_SPACE, InputError, out_of_space
from memjax.features.store import spec
from memjax.runtime import atomic_files


def _looks_like_store(directory: str) -> bool:
  names = set(os.listdir(directory))
  return bool(names & {spec.IDS_FILE, spec.METADATA_FILE, spec.COMPLETE_FILE, spec.PROGRESS_FILE})


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
    state = 'a complete' if spec.is_complete(directory) else 'an unfinished'
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
  spec.sync_dir(parent)


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
    metadata: descriptive fields, see `spec.build_metadata`.
    dtype: 'float16' or 'float32', the stored dtype of every feature.
    overwrite: replace an existing store at `directory`.

  Returns:
    The absolute path of the store.

  Raises:
    InputError: bad ids, arrays or metadata; or `directory` already holds a store and
      `overwrite` is False, or holds something that is not a store.
  """
  directory = os.path.abspath(os.fspath(directory))
  dtype = spec.check_dtype(dtype)
  ids = spec.validate_ids(ids)
  if not features:
    raise InputError('write_store needs at least one feature array.')
  for name in features:
    spec.check_feature_name(name)
  where = f'feature store {directory}'
  arrays = {
    n: spec.cast_rows(n, a, len(ids), None, dtype, where=where, ids=ids)
    for n, a in features.items()
  }
  meta = spec.build_metadata(metadata, {n: a.shape[1] for n, a in arrays.items()}, dtype, len(ids))
  _check_target(directory, overwrite)
  parent = os.path.dirname(directory)
  os.makedirs(parent, exist_ok=True)
  kept = 'The store there is unchanged' if os.path.lexists(directory) else 'Nothing was kept'
  with out_of_space(f'feature store {directory}', f'{kept}; free space and re-run.'):
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(directory)}.tmp-', dir=parent)
    try:
      atomic_files.write_text(os.path.join(tmp, spec.IDS_FILE), spec.ids_text(ids))
      for name, array in arrays.items():
        with open(os.path.join(tmp, f'{name}.npy'), 'wb') as f:
          np.save(f, array)
          f.flush()
          os.fsync(f.fileno())
      spec.finish(tmp, meta)
      _swap_into_place(tmp, directory)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  dims = {n: a.shape[1] for n, a in arrays.items()}
  logging.info('Wrote feature store %s: %d rows of %s, dims %s.', directory, len(ids), dtype, dims)
  return directory


def _reserve(path: str) -> None:
  """Allocates the whole file now: a full disk then fails here with ENOSPC, not later as a SIGBUS
  inside a memory-mapped write. Filesystems without `fallocate` skip this."""
  fd = os.open(path, os.O_RDWR)
  try:
    os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
  except OSError as e:
    if e.errno in NO_SPACE:
      raise
  finally:
    os.close(fd)


class StoreWriter:
  """Fills a feature store batch by batch and resumes an interrupted fill.

  Typical use::

    writer = StoreWriter(directory, ids, {'cnn': 4096, 'semantic': 1024}, dtype='float16')
    for start in range(writer.next_row, writer.num_rows, batch_size):  # skips finished rows
      rows = ids[start : start + batch_size]
      writer.append({'cnn': cnn_features(rows), 'semantic': semantic_features(rows)})
    writer.finalize(metadata)

  Each feature has its own row counter, so features can also be filled in separate passes.
  """

  def __init__(
    self,
    directory: str | os.PathLike,
    ids: Sequence[str],
    dims: Mapping[str, int],
    dtype: str = 'float32',
  ):
    """Creates the unfinished store, or reopens one an earlier run left.

    Args:
      directory: the store directory.
      ids: [N] unique image ids, in row order.
      dims: feature name -> dimension D.
      dtype: 'float16' or 'float32'.

    Raises:
      InputError: bad ids, names or dims; `directory` already holds a complete store, or
        something that is neither empty nor an unfinished store; or the unfinished store there
        was started with other ids, dims or dtype.
    """
    self.directory = os.path.abspath(os.fspath(directory))
    self.dtype = spec.check_dtype(dtype)
    ids = spec.validate_ids(ids)
    if not dims:
      raise InputError('StoreWriter needs at least one feature dimension.')
    self.dims = {spec.check_feature_name(n): int(d) for n, d in dims.items()}
    bad = [n for n, d in self.dims.items() if d <= 0]
    if bad:
      raise InputError(f'StoreWriter: feature dimensions must be positive, got {dims}.')
    self.num_rows = len(ids)
    self._ids = ids
    self._layout = {
      'format_version': spec.FORMAT_VERSION,
      'count': self.num_rows,
      'dtype': self.dtype,
      'dims': self.dims,
      'ids_sha256': hashlib.sha256(spec.ids_text(ids).encode('utf-8')).hexdigest(),
    }
    progress_path = os.path.join(self.directory, spec.PROGRESS_FILE)
    if spec.is_complete(self.directory):
      raise InputError(
        f'{self.directory} already holds a complete feature store; read it with read_store, '
        'or delete it to extract again.'
      )
    if os.path.isfile(progress_path):
      self._rows_done = self._resume(progress_path)
    elif os.path.lexists(self.directory) and (
      not os.path.isdir(self.directory) or os.listdir(self.directory)
    ):
      raise InputError(
        f'{self.directory} exists but is neither empty nor an unfinished feature store '
        f'(no {spec.PROGRESS_FILE}); delete it or choose another directory.'
      )
    else:
      self._rows_done = self._create(ids)
    self._arrays = {n: self._open(n) for n in self.dims}

  def _path(self, name: str) -> str:
    return os.path.join(self.directory, f'{name}.npy')

  def _create(self, ids: list[str]) -> dict[str, int]:
    parent, base = os.path.split(self.directory)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{base}.init-', dir=parent)
    rows_done = dict.fromkeys(self.dims, 0)
    try:
      with out_of_space(f'feature store {self.directory}', 'Nothing was kept; free space, re-run.'):
        atomic_files.write_text(os.path.join(tmp, spec.IDS_FILE), spec.ids_text(ids))
        for name, dim in self.dims.items():
          path = os.path.join(tmp, f'{name}.npy')
          array = np.lib.format.open_memmap(
            path, mode='w+', dtype=self.dtype, shape=(len(ids), dim)
          )
          array.flush()
          del array
          _reserve(path)
        progress = {**self._layout, 'rows_done': rows_done}
        progress_text = json.dumps(progress, indent=2) + '\n'
        atomic_files.write_text(os.path.join(tmp, spec.PROGRESS_FILE), progress_text)
      if os.path.isdir(self.directory):
        os.rmdir(self.directory)  # empty (checked by the caller)
      os.rename(tmp, self.directory)
      spec.sync_dir(parent)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    logging.info('Started feature store %s: %d rows, dims %s.', self.directory, len(ids), self.dims)
    return rows_done

  def _resume(self, progress_path: str) -> dict[str, int]:
    try:
      with open(progress_path, encoding='utf-8') as f:
        progress = json.load(f)
      rows_done = {n: int(progress['rows_done'][n]) for n in progress['dims']}
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise InputError(f'{progress_path} is unreadable ({e}); delete {self.directory}.') from e
    for key, value in self._layout.items():
      if progress.get(key) != value:
        what = 'ids' if key == 'ids_sha256' else f'{key} {progress.get(key)!r}'
        raise InputError(
          f'the unfinished feature store {self.directory} was started with other {what}; '
          f'this run asks for {key} {value!r}. Delete it or choose another directory.'
        )
    logging.info('Resuming feature store %s: rows done %s.', self.directory, rows_done)
    return rows_done

  def _open(self, name: str) -> np.memmap:
    path = self._path(name)
    try:
      array = np.lib.format.open_memmap(path, mode='r+')
    except (OSError, ValueError) as e:
      raise InputError(
        f'{path} is not a readable .npy array ({e}); delete {self.directory}.'
      ) from e
    expected = (self.num_rows, self.dims[name])
    if array.shape != expected or array.dtype.name != self.dtype:
      raise InputError(
        f'{path} has shape {array.shape} and dtype {array.dtype}; expected {expected} '
        f'{self.dtype}. Delete {self.directory}.'
      )
    return array

  @property
  def rows_done(self) -> dict[str, int]:
    """Feature name -> rows already written (and recorded in `progress.json`)."""
    return dict(self._rows_done)

  @property
  def next_row(self) -> int:
    """The first row some feature still lacks (`num_rows` when all are done)."""
    return min(self._rows_done.values())

  def append(self, rows: Mapping[str, np.ndarray]) -> None:
    """Writes the next rows of some or all features, then records the progress.

    Args:
      rows: feature name -> [b, D] array holding that feature's rows
        `rows_done[name] .. rows_done[name] + b - 1` (each feature continues where it stopped).

    Raises:
      InputError: unknown feature, wrong dimension, non-finite values, rows past the end, or the
        writer is finalized.
    """
    if self._arrays is None:
      raise InputError(f'feature store {self.directory} is finalized; nothing more to append.')
    unknown = sorted(set(rows) - set(self.dims))
    if unknown:
      raise InputError(
        f'append got unknown feature(s) {unknown}; this store has {sorted(self.dims)}.'
      )
    where = f'feature store {self.directory}'
    batch = {
      n: spec.cast_rows(
        n,
        r,
        None,
        self.dims[n],
        self.dtype,
        where=where,
        first_row=self._rows_done[n],
        ids=self._ids,
      )
      for n, r in rows.items()
    }
    for name, array in batch.items():
      start = self._rows_done[name]
      if start + len(array) > self.num_rows:
        raise InputError(
          f'append of {len(array)} rows of {name!r} at row {start} passes the end of the store '
          f'({self.num_rows} rows).'
        )
    done = dict(self._rows_done)
    then = f'The rows done so far ({self._rows_done}) are kept; free space and re-run to resume.'
    with out_of_space(f'feature store {self.directory}', then):
      for name, array in batch.items():
        self._arrays[name][done[name] : done[name] + len(array)] = array
        self._arrays[name].flush()
        done[name] += len(array)
      progress = {**self._layout, 'rows_done': done}
      atomic_files.write_text(
        os.path.join(self.directory, spec.PROGRESS_FILE), json.dumps(progress, indent=2) + '\n'
      )
    self._rows_done = done

  def close(self) -> None:
    """Flushes and releases the arrays; the store stays unfinished and resumable."""
    if self._arrays is not None:
      for array in self._arrays.values():
        array.flush()
      self._arrays = None

  def finalize(self, metadata: Mapping) -> str:
    """Completes the store: writes `metadata.json`, then the `COMPLETE` marker.

    Args:
      metadata: descriptive fields, see `spec.build_metadata`.

    Returns:
      The absolute path of the store.

    Raises:
      InputError: some feature has rows left to write, or the metadata is malformed.
    """
    unfinished = {n: d for n, d in self._rows_done.items() if d != self.num_rows}
    if unfinished:
      raise InputError(
        f'cannot finalize {self.directory}: rows done {unfinished} of {self.num_rows}.'
      )
    meta = spec.build_metadata(metadata, self.dims, self.dtype, self.num_rows)
    self.close()
    then = 'Every row is kept but the store is unfinished; free space and re-run to spec.finish it.'
    with out_of_space(f'feature store {self.directory}', then):
      for name in self.dims:
        with open(self._path(name), 'rb+') as f:
          os.fsync(f.fileno())
      spec.finish(self.directory, meta)
    os.remove(os.path.join(self.directory, spec.PROGRESS_FILE))
    spec.sync_dir(self.directory)
    logging.info('Finished feature store %s (%d rows).', self.directory, self.num_rows)
    return self.directory
