"""Batches of in-memory (or memory-mapped) feature arrays, gathered on a background thread.

Training: a seeded permutation per epoch (a pure function of seed and epoch, so a resumed run
sees exactly the batches an uninterrupted one would), cut into global batches of `batch_size`
(remainder dropped), this process's share taken, and `steps_per_call` batches stacked into one
[T, B_local, ...] chunk for a jitted `lax.scan`.

Evaluation: every example exactly once, in order; the last batch is padded with copies of the
first example and a `mask` of 0 marks the padding.

Rows are gathered by one background thread, `PREFETCH` chunks ahead, so gathering overlaps the
device step. Each chunk is gathered once, with `np.take`, straight into a fresh 64-byte-aligned
buffer: on CPU, `jax.make_array_from_process_local_data` (`place`, this process's share of a
batch -> the global array the programs take) then uses that buffer as the device array without
copying it (an unaligned buffer is copied). A chunk is never written again after it is yielded.
"""

import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Sharding

PREFETCH = 2  # chunks gathered ahead of the one the device is working on
ALIGN = 64  # bytes; what XLA's CPU client needs to use host memory in place
_POLL_SECS = 0.1


def epoch_order(indices: np.ndarray, seed: tuple[int, ...], epoch: int) -> np.ndarray:
  """The training order of `indices` in `epoch`."""
  return indices[np.random.default_rng([*seed, epoch]).permutation(indices.size)]


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
  """An uninitialised array whose data starts on a 64-byte boundary (a view of its `.base`)."""
  dtype = np.dtype(dtype)
  raw = np.empty(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + ALIGN, np.uint8)
  return _aligned_view(raw, shape, dtype)


def _aligned_view(raw: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
  nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  start = -raw.ctypes.data % ALIGN
  return raw[start : start + nbytes].view(dtype).reshape(shape)


class BufferPool:
  """Aligned buffers handed out again once nothing uses them any more.

  A buffer is free when only the pool refers to it: the arrays handed out (and the device arrays
  built on them without a copy, which keep them alive until the device is done) are views of it.
  Reusing buffers spares the page faults of fresh memory, which cost as much as the copy itself.
  At most `size` buffers per shape are kept; beyond that, buffers are not pooled.
  """

  def __init__(self, size: int):
    self._size = size
    self._buffers: dict[tuple, list[np.ndarray]] = {}

  def get(self, shape: tuple[int, ...], dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    pool = self._buffers.setdefault((tuple(shape), dtype.str), [])
    for raw in pool:  # every array handed out is a view whose .base is `raw`
      if sys.getrefcount(raw) <= 3:  # the list, `raw`, getrefcount's argument: nobody else
        return _aligned_view(raw, shape, dtype)
    buffer = aligned_empty(shape, dtype)
    if len(pool) < self._size:
      pool.append(buffer.base)
    return buffer


def gather(
  arrays: Mapping[str, np.ndarray], rows: np.ndarray, pool: BufferPool | None = None
) -> dict[str, np.ndarray]:
  """`{name: array[rows]}` for every array, each one copy into an aligned buffer.

  Raises:
    IndexError: a row outside an array.
  """
  out = {}
  for name, array in arrays.items():
    if rows.size and (rows.min() < 0 or rows.max() >= len(array)):
      raise IndexError(f'rows {rows.min()}..{rows.max()} of {name!r}, which has {len(array)}')
    shape = rows.shape + array.shape[1:]
    buffer = pool.get(shape, array.dtype) if pool else aligned_empty(shape, array.dtype)
    # mode='clip' (rows are checked above): with the default 'raise', NumPy gathers into a
    # temporary and copies that into `out`.
    np.take(array, rows, axis=0, out=buffer, mode='clip')
    out[name] = buffer
  return out


def _prefetched(items: Iterator, make: Callable) -> Iterator:
  """`make(item)` for each item, computed on a background thread `PREFETCH` items ahead.

  An error in `make` is raised here, at the item that failed. Leaving the loop early (break,
  an exception in the consumer) stops the thread.
  """
  done = object()
  ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
  stop = threading.Event()

  def put(value) -> bool:
    while not stop.is_set():
      try:
        ready.put(value, timeout=_POLL_SECS)
        return True
      except queue.Full:
        continue
    return False

  def work():
    try:
      for item in items:
        if not put((make(item), None)):
          return
      put((done, None))
    except BaseException as e:  # noqa: BLE001 (handed to the consumer, raised there)
      put((None, e))

  thread = threading.Thread(target=work, name='memjax-input', daemon=True)
  thread.start()
  try:
    while True:
      value, error = ready.get()
      if error is not None:
        raise error
      if value is done:
        return
      yield value
  finally:
    stop.set()
    thread.join()


def train_rows(
  indices: np.ndarray,
  *,
  batch_size: int,
  seed: tuple[int, ...],
  epoch: int,
  first_step: int,
  share: slice,
) -> np.ndarray:
  """[steps, B_local] row numbers of the steps `first_step..` of one epoch.

  Args:
    indices: rows of the training set.
    batch_size: global batch size.
    seed: seed of the shuffle, e.g. (config.seed, fold).
    epoch: epoch number; each epoch has its own permutation.
    first_step: first step within the epoch (for resuming).
    share: this process's slice of each global batch (`parallel.process_share`).
  """
  steps = indices.size // batch_size
  rows = epoch_order(indices, seed, epoch)[: steps * batch_size].reshape(steps, batch_size)
  return rows[first_step:, share]


def train_chunks(
  arrays: Mapping[str, np.ndarray], indices: np.ndarray, **order
) -> Iterator[dict[str, np.ndarray]]:
  """Chunks of [T, B_local, ...] arrays for the steps `first_step..` of one epoch: the rows of
  `train_row_chunks(indices, **order)` gathered from `arrays` (name -> [N, ...] per-row arrays:
  features, `label`, `score`)."""
  chunks = train_row_chunks(indices, **order)
  pool = BufferPool(PREFETCH + 3)  # ahead, waiting in the queue, in use, on the device
  yield from _prefetched(chunks, lambda rows: gather(arrays, rows, pool))


def train_row_chunks(indices: np.ndarray, *, steps_per_call: int, **order) -> Iterator[np.ndarray]:
  """[T, B_local] int32 row numbers of each chunk of `steps_per_call` steps (T; the last chunk
  of an epoch may be shorter), `order` as `train_rows` takes it: what `train_chunks` gathers, or
  what the steps gather themselves from a device-resident table (`memjax.device_table`)."""
  rows = train_rows(indices, **order).astype(np.int32)
  for start in range(0, rows.shape[0], steps_per_call):
    yield np.ascontiguousarray(rows[start : start + steps_per_call])


def train_calls(
  arrays: Mapping[str, np.ndarray],
  indices: np.ndarray,
  sharding: Sharding,
  *,
  on_table: bool,
  **order,
) -> Iterator[tuple]:
  """(batches argument, number of steps) of each train call of an epoch, placed on the mesh
  (`sharding`: split along B): the chunks [T, B, ...] `train_chunks` gathers from `arrays`, or
  with `on_table` the [T, B] row numbers of a device-resident table (`memjax.device_table`)."""
  if on_table:
    for rows in train_row_chunks(indices, **order):
      yield place({'rows': rows}, sharding)['rows'], rows.shape[0]
  else:
    for chunk in train_chunks(arrays, indices, **order):
      yield place(chunk, sharding), chunk['label'].shape[0]


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return num_examples // batch_size


def place(local: Mapping[str, np.ndarray], sharding: Sharding) -> dict:
  """This process's share of a batch -> global arrays laid out by `sharding` (the batch
  sharding of `parallel.batch_sharding`)."""
  return {
    k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()
  }


def eval_batches(
  arrays: Mapping[str, np.ndarray], indices: np.ndarray, *, batch_size: int, share: slice
) -> Iterator[dict[str, np.ndarray]]:
  """Batches [B_local, ...] covering `indices` once, in order, with a `mask` (1 real, 0 pad)."""
  num_batches = -(-indices.size // batch_size)
  pad = num_batches * batch_size - indices.size
  rows = np.concatenate([indices, np.repeat(indices[:1], pad)]).reshape(num_batches, batch_size)
  mask = (np.arange(num_batches * batch_size) < indices.size).astype(np.float32)
  rows, mask = rows[:, share], mask.reshape(num_batches, batch_size)[:, share]

  def batch(i: int) -> dict[str, np.ndarray]:
    out = gather(arrays, rows[i])
    out['mask'] = mask[i].copy()
    return out

  yield from _prefetched(iter(range(num_batches)), batch)
