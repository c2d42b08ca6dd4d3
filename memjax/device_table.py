"""A fold's training rows kept on the devices, its batches gathered inside the jitted step.

With a feature store, the host path (`input_pipeline.train_chunks`) gathers every chunk's rows on
the host (52 MB per chunk at batch 256) and hands it to the device; on a 2-core CPU that work
takes a core from XLA while the step runs, and memjax trained at 0.76-0.84 of a minimal loop
whose data sits on the device. Here the fold's training rows are copied once, in training-set
order, into a table that every device holds (on CPU the device uses the aligned host buffer
without a copy), and each call of the scanned step gets only the row numbers, [T, B] int32.

The row numbers are the host path's: `epoch_order` permutes the training indices by a function
of their count and the seed alone, so position p of the table is the row that the host path
puts at that place, and batches, dropout keys and results are the same on either path.

`config.data.device_resident`: 'auto' keeps the table on the devices when the features are
arrays (not images decoded on the fly) and it fits `MEMORY_SHARE` of each device's memory (on
CPU, of the host's available memory); 'on' and 'off' force it. Every process takes the same
choice (the compiled program depends on it).
"""

from collections.abc import Iterator, Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from memjax import input_pipeline, parallel
from memjax.errors import InputError
from memjax.runtime import host_memory

MEMORY_SHARE = 0.25  # 'auto': the table may take this share of a device's (or the host's) memory


def table_bytes(arrays: Mapping[str, np.ndarray], num_rows: int) -> int:
  """Bytes of a table of `num_rows` rows of `arrays` (on one device)."""
  return sum(num_rows * a.dtype.itemsize * int(np.prod(a.shape[1:])) for a in arrays.values())


def memory_budget() -> int:
  """Bytes a table may take on each local device: a share of the device's memory limit, or on
  CPU (no limit reported) of the host's available memory split over its local devices."""
  limits = [(d.memory_stats() or {}).get('bytes_limit') for d in jax.local_devices()]
  if all(limits):
    return int(min(limits) * MEMORY_SHARE)
  share = host_memory.available_memory_bytes() * MEMORY_SHARE
  return int(share / jax.local_device_count())


def choose(setting: str, arrays: Mapping[str, np.ndarray], num_rows: int) -> tuple[bool, str]:
  """(whether to keep the training rows on the devices, why), the same on every process.

  Raises:
    InputError: 'on' where the rows are not arrays.
  """
  arrays_only = all(isinstance(a, np.ndarray) for a in arrays.values())
  if setting == 'off':
    return False, "config.data.device_resident='off'"
  if not arrays_only:
    if setting == 'on':
      raise InputError(
        "config.data.device_resident='on' needs feature arrays, but this run decodes images "
        "on the fly; use 'auto' or 'off'."
      )
    return False, 'images are decoded on the fly'
  if setting == 'on':
    return True, "config.data.device_resident='on'"
  need, budget = table_bytes(arrays, num_rows), memory_budget()
  fits = np.asarray(need <= budget)
  if jax.process_count() > 1:
    fits = multihost_utils.process_allgather(fits).all()
  relation = '<=' if fits else '>'
  return bool(fits), f'{need} bytes {relation} budget {budget} per device'


def put(arrays: Mapping[str, np.ndarray], indices: np.ndarray, mesh: Mesh) -> dict:
  """`{name: array[indices]}` replicated on every device (one aligned host copy)."""
  return parallel.replicate(input_pipeline.gather(arrays, indices), mesh)


def row_chunks(
  num_rows: int,
  *,
  batch_size: int,
  steps_per_call: int,
  seed: tuple[int, ...],
  epoch: int,
  first_step: int,
  share: slice,
) -> Iterator[np.ndarray]:
  """[T, B_local] int32 table positions of the steps `first_step..` of one epoch: the rows that
  `input_pipeline.train_chunks` would gather for the same arguments."""
  rows = input_pipeline.train_rows(
    np.arange(num_rows, dtype=np.int32),
    batch_size=batch_size,
    seed=seed,
    epoch=epoch,
    first_step=first_step,
    share=share,
  )
  for start in range(0, rows.shape[0], steps_per_call):
    yield np.ascontiguousarray(rows[start : start + steps_per_call])
