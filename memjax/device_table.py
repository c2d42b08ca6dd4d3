"""A fold's row arrays kept on the devices, its training batches gathered inside the jitted step.

With a feature store, the host path (`input_pipeline.train_chunks`) gathers every chunk's rows on
the host (52 MB per chunk at batch 256) and hands it to the device; on a small CPU machine that
work takes a core from XLA while the step runs. Here the fold's arrays (features, labels, scores)
are put on every device once per fold, and each call of the scanned step gets only the row
numbers of its batches, [T, B] int32: exactly the rows the host path would gather, in the same
order, so batches, dropout keys and results are the same on either path.

On CPU the device uses a 64-byte-aligned host buffer in place: a memory-mapped store (NumPy
aligns `.npy` data) costs no copy at all, only the pages the training rows touch, as on the host
path; arrays in memory that are not aligned (NumPy aligns large arrays to 16 bytes) are copied
once per fold into an aligned buffer of ours, because training from the copy `jax.device_put`
would make is slower. docs/performance.md has the measurements of both paths and both copies.

`config.data.device_resident`: 'auto' keeps the arrays on the devices when they are arrays (not
images decoded on the fly) and fit `MEMORY_SHARE` of each device's memory (on CPU, of the host's
available memory); 'on' and 'off' force it. Every process takes the same choice (the compiled
program depends on it).
"""

from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from memjax import input_pipeline, parallel
from memjax.errors import InputError
from memjax.runtime import host_memory

MEMORY_SHARE = 0.25  # 'auto': the table may take this share of a device's (or the host's) memory


def table_bytes(arrays: Mapping[str, np.ndarray]) -> int:
  """Bytes of `arrays` on one device."""
  return sum(a.dtype.itemsize * int(np.prod(a.shape)) for a in arrays.values())


def memory_budget() -> int:
  """Bytes a table may take on each local device: a share of the device's memory limit, or on
  CPU (no limit reported) of the host's available memory split over its local devices."""
  limits = [(d.memory_stats() or {}).get('bytes_limit') for d in jax.local_devices()]
  if all(limits):
    return int(min(limits) * MEMORY_SHARE)
  share = host_memory.available_memory_bytes() * MEMORY_SHARE
  return int(share / jax.local_device_count())


def choose(setting: str, arrays: Mapping[str, np.ndarray]) -> tuple[bool, str]:
  """(whether to keep the row arrays on the devices, why), the same on every process.

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
  need, budget = table_bytes(arrays), memory_budget()
  fits = np.asarray(need <= budget)
  if jax.process_count() > 1:
    fits = multihost_utils.process_allgather(fits).all()
  relation = '<=' if fits else '>'
  return bool(fits), f'{need} bytes {relation} budget {budget} per device'


def put(arrays: Mapping[str, np.ndarray], mesh: Mesh) -> dict:
  """`arrays` replicated on every device (on CPU, aligned arrays are used in place)."""
  return parallel.replicate({n: _aligned(a) for n, a in arrays.items()}, mesh)


def _aligned(array: np.ndarray) -> np.ndarray:
  """`array` itself when it is C-contiguous and 64-byte aligned, else an aligned copy."""
  if array.flags.c_contiguous and array.ctypes.data % input_pipeline.ALIGN == 0:
    return array
  out = input_pipeline.aligned_empty(array.shape, array.dtype)
  np.copyto(out, array)
  return out
