"""Values, not only shapes: the non-finite check of a feature store's arrays, and its record.

A NaN or inf in a stored feature would otherwise surface much later, as a non-finite training
loss that blames the learning rate. So every row is checked when written (`spec.cast_rows`)
and every array when a store is first opened (`check_arrays`), streamed in chunks of about
`CHUNK_BYTES` through one reused buffer, so memory stays flat even for a 58,741 x 4096 store.

The record. Once a scan finds an array finite, `finite_checked.json` in the store records the
file's identity and change times: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns). A later
open skips the scan only if all five still match, so a file rewritten in place (new mtime and
ctime), replaced (new inode) or copied elsewhere (new inode or device) is scanned again. A scan
records its result only when the file did not change while it was read and its last change is
more than `SETTLE_SECONDS` old: file systems stamp times with a coarse clock (a few ms, or even
seconds), so a write landing in the same tick as the one the record saw would leave every field
equal (the "racy git" problem); a freshly written file is therefore scanned on each open until it
has settled. The record is only a cache: it may be deleted at any time (the next open scans
again), and a store in a read-only folder is scanned on every open. Measured on this machine: a
58,741 x 4096 array scans in about 0.9 s (float16) or 0.5 s (float32) from the page cache, with
the process's resident memory growing by about 5 MB.
"""

import json
import os
import time
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

from memjax.errors import InputError
from memjax.runtime import atomic_files

CHECKED_FILE = 'finite_checked.json'
CHUNK_BYTES = 8 << 20
SETTLE_SECONDS = 2.0
SHOW = 5  # bad rows quoted in a message


def signature(path: str) -> list[int]:
  """What identifies the current content of `path` for the record (see the module docstring)."""
  st = os.stat(path)
  return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read_record(directory: str) -> dict:
  try:
    with open(os.path.join(directory, CHECKED_FILE), encoding='utf-8') as f:
      record = json.load(f)
    features = record['features']
    return features if isinstance(features, dict) else {}
  except (OSError, ValueError, KeyError, TypeError, RecursionError):
    return {}  # absent or damaged: a cache miss


def record_checked(directory: str, signatures: dict[str, list[int]]) -> None:
  """Adds `name -> signature` entries to the store's record; a failed write is only logged."""
  features = {**_read_record(directory), **signatures}
  text = json.dumps({'format_version': 1, 'features': features}, indent=2) + '\n'
  try:
    atomic_files.write_text(os.path.join(directory, CHECKED_FILE), text)
  except OSError as e:
    logging.info('feature store %s: cannot record the values check (%s); not cached', directory, e)


def _bad_rows(chunks: Iterable[tuple[int, np.ndarray]]) -> tuple[int, list[int]]:
  count, first = 0, []
  for start, chunk in chunks:
    bad = np.flatnonzero(~np.isfinite(chunk).all(axis=1))
    count += bad.size
    if len(first) < SHOW:
      first.extend((start + bad[: SHOW - len(first)]).tolist())
  return count, first


def _file_chunks(path: str, array: np.memmap):
  """(first row, [rows, D] chunk) of a C-ordered .npy, read through one reused buffer."""
  rows, dim = array.shape
  row_bytes = max(1, dim * array.dtype.itemsize)
  per_chunk = max(1, CHUNK_BYTES // row_bytes)
  buffer = np.empty((per_chunk, dim), array.dtype)
  with open(path, 'rb') as f:
    f.seek(array.offset)  # the .npy header's length, as np.load measured it
    for start in range(0, rows, per_chunk):
      n = min(per_chunk, rows - start)
      view = buffer[:n]
      got = f.readinto(memoryview(view).cast('B'))
      if got != view.nbytes:
        raise InputError(f'{path} is truncated: row {start + got // row_bytes} of {rows} is cut.')
      yield start, view


def _memory_chunks(array: np.ndarray):
  per_chunk = max(1, CHUNK_BYTES // max(1, array.shape[1] * array.dtype.itemsize))
  for start in range(0, array.shape[0], per_chunk):
    yield start, np.asarray(array[start : start + per_chunk])


def scan(path: str, array: np.ndarray) -> tuple[int, list[int]]:
  """(number of rows holding NaN or inf, the first `SHOW` of them) of the [N, D] `array`.

  A memory-mapped C-ordered array is streamed from `path` through one buffer (its pages never
  enter this process); an in-memory or Fortran-ordered one is scanned in place, chunk by chunk.
  """
  streamable = isinstance(array, np.memmap) and array.flags.c_contiguous
  return _bad_rows(_file_chunks(path, array) if streamable else _memory_chunks(array))


def check_arrays(
  directory: str, arrays: dict[str, np.ndarray], ids: Sequence[str], *, force: bool = False
) -> None:
  """Checks the store's `arrays` (name -> [N, D]) for NaN or inf, skipping recorded ones.

  Args:
    directory: the store.
    arrays: the arrays as `read_store` returns them (memory-mapped or loaded).
    ids: the store's ids, to name bad rows.
    force: scan even the arrays the record says are finite.

  Raises:
    InputError: naming the store, the feature, how many rows are bad and the first ones (row
      number and id).
  """
  record = {} if force else _read_record(directory)
  checked = {}
  for name, array in arrays.items():
    path = os.path.join(directory, f'{name}.npy')
    before = signature(path)
    if record.get(name) == before:
      continue
    start = time.time()
    count, first = scan(path, array)
    if count:
      rows = ', '.join(f'{r} ({ids[r]!r})' for r in first)
      raise InputError(
        f'feature store {directory}: feature {name!r} ({name}.npy) has NaN or inf in {count} '
        f'row(s), first: {rows}. The stored values are damaged: extract the store again into a '
        'new folder (or delete this one first).'
      )
    logging.info(
      'feature store %s: %s has no NaN or inf (%d x %d checked in %.1f s)',
      directory,
      name,
      *array.shape,
      time.time() - start,
    )
    after = signature(path)
    if after == before and after[4] < (start - SETTLE_SECONDS) * 1e9:
      checked[name] = after
  if checked:
    record_checked(directory, checked)
