"""tf.data pipelines over in-memory (or memory-mapped) feature arrays.

Training: a seeded permutation per epoch (a pure function of seed and epoch, so a resumed run
sees exactly the batches an uninterrupted one would), cut into global batches of `batch_size`
(remainder dropped), this process's share taken, and `steps_per_call` batches stacked into one
[T, B_local, ...] chunk for a jitted `lax.scan`. Gathering rows happens in a tf.data worker, so
it overlaps with the device step.

Evaluation: every example exactly once, in order; the last batch is padded with copies of the
first example and a `mask` of 0 marks the padding.
"""

from collections.abc import Iterator, Mapping

import numpy as np
import tensorflow as tf

LABEL_KEYS = ('label', 'score')


def epoch_order(indices: np.ndarray, seed: tuple[int, ...], epoch: int) -> np.ndarray:
  """The training order of `indices` in `epoch`."""
  return indices[np.random.default_rng([*seed, epoch]).permutation(indices.size)]


def _gatherer(arrays: Mapping[str, np.ndarray]):
  names = tuple(arrays)

  def gather(rows: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(arrays[n][rows]) for n in names]

  dtypes = [tf.as_dtype(arrays[n].dtype) for n in names]
  return names, gather, dtypes


def _dataset(arrays, index_tensors: tuple, batch: int, extra_names: tuple) -> tf.data.Dataset:
  names, gather, dtypes = _gatherer(arrays)

  def load(rows, *extra):
    values = tf.numpy_function(gather, [rows], dtypes, stateful=False)
    return {**dict(zip(names, values, strict=True)), **dict(zip(extra_names, extra, strict=True))}

  ds = tf.data.Dataset.from_tensor_slices(index_tensors).batch(batch)
  return ds.map(load, num_parallel_calls=1, deterministic=True).prefetch(2)


def train_chunks(
  arrays: Mapping[str, np.ndarray],
  indices: np.ndarray,
  *,
  batch_size: int,
  steps_per_call: int,
  seed: tuple[int, ...],
  epoch: int,
  first_step: int,
  share: slice,
) -> Iterator[dict[str, np.ndarray]]:
  """Chunks of [T, B_local, ...] arrays for the steps `first_step..` of one epoch.

  Args:
    arrays: name -> [N, ...] per-row arrays (features, `label`, `score`).
    indices: rows of the training set.
    batch_size: global batch size.
    steps_per_call: T, the number of steps per chunk (the last chunk of an epoch may be shorter).
    seed: seed of the shuffle, e.g. (config.seed, fold).
    epoch: epoch number; each epoch has its own permutation.
    first_step: first step within the epoch (for resuming).
    share: this process's slice of each global batch (`parallel.process_share`).
  """
  steps = indices.size // batch_size
  rows = epoch_order(indices, seed, epoch)[: steps * batch_size].reshape(steps, batch_size)
  rows = rows[first_step:, share]
  yield from _dataset(arrays, (rows,), steps_per_call, ()).as_numpy_iterator()


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  return num_examples // batch_size


def eval_batches(
  arrays: Mapping[str, np.ndarray], indices: np.ndarray, *, batch_size: int, share: slice
) -> Iterator[dict[str, np.ndarray]]:
  """Batches [B_local, ...] covering `indices` once, in order, with a `mask` (1 real, 0 pad)."""
  num_batches = -(-indices.size // batch_size)
  pad = num_batches * batch_size - indices.size
  rows = np.concatenate([indices, np.repeat(indices[:1], pad)]).reshape(num_batches, batch_size)
  mask = (np.arange(num_batches * batch_size) < indices.size).astype(np.float32)
  mask = mask.reshape(num_batches, batch_size)
  ds = _dataset(
    arrays,
    (rows[:, share].reshape(-1), mask[:, share].reshape(-1)),
    share.stop - share.start,
    ('mask',),
  )
  yield from ds.as_numpy_iterator()
