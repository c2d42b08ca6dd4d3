import threading

import numpy as np
import pytest

from memjax import input_pipeline


def _arrays(n):
  return {
    'x': np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32),
    'label': np.arange(n, dtype=np.int32),
    'score': np.linspace(0, 1, n, dtype=np.float32),
  }


def _epoch(arrays, indices, epoch, first_step=0, share=slice(0, 8), steps_per_call=3):
  return list(
    input_pipeline.train_chunks(
      arrays,
      indices,
      batch_size=8,
      steps_per_call=steps_per_call,
      seed=(0, 1),
      epoch=epoch,
      first_step=first_step,
      share=share,
    )
  )


def test_train_chunks_shapes_cover_each_epoch_once_and_reshuffle():
  arrays, indices = _arrays(100), np.arange(3, 93)  # 90 rows: 11 batches of 8, 2 dropped
  chunks = _epoch(arrays, indices, epoch=0)
  assert [c['x'].shape for c in chunks] == [(3, 8, 3)] * 3 + [(2, 8, 3)]
  rows = np.concatenate([c['label'].reshape(-1) for c in chunks])
  assert rows.size == 88 and np.unique(rows).size == 88 and set(rows) <= set(indices)
  np.testing.assert_array_equal(chunks[0]['x'][..., 0], chunks[0]['label'])  # rows aligned
  again = np.concatenate([c['label'].reshape(-1) for c in _epoch(arrays, indices, epoch=0)])
  np.testing.assert_array_equal(rows, again)  # deterministic
  other = np.concatenate([c['label'].reshape(-1) for c in _epoch(arrays, indices, epoch=1)])
  assert not np.array_equal(rows, other)  # a new order each epoch


def test_resume_within_epoch_gives_the_remaining_batches():
  arrays, indices = _arrays(100), np.arange(100)
  full = np.concatenate([c['label'] for c in _epoch(arrays, indices, 2)])
  rest = np.concatenate([c['label'] for c in _epoch(arrays, indices, 2, first_step=5)])
  np.testing.assert_array_equal(full[5:], rest)


def test_process_shares_partition_each_batch():
  arrays, indices = _arrays(64), np.arange(64)
  full = np.concatenate([c['label'] for c in _epoch(arrays, indices, 0)])
  halves = [
    np.concatenate([c['label'] for c in _epoch(arrays, indices, 0, share=s)])
    for s in (slice(0, 4), slice(4, 8))
  ]
  np.testing.assert_array_equal(np.concatenate(halves, axis=1), full)


def test_eval_batches_count_every_example_once_with_ragged_last_batch():
  arrays = _arrays(50)
  indices = np.array([7, 3, 11, 40, 41, 42, 43, 0, 1, 2, 9])  # 11 rows, batch 4
  batches = list(input_pipeline.eval_batches(arrays, indices, batch_size=4, share=slice(0, 4)))
  assert len(batches) == 3 and all(b['x'].shape == (4, 3) for b in batches)
  mask = np.concatenate([b['mask'] for b in batches])
  rows = np.concatenate([b['label'] for b in batches])
  np.testing.assert_array_equal(mask, [1] * 11 + [0])
  np.testing.assert_array_equal(rows[mask == 1], indices)


def test_chunks_are_aligned_and_used_in_place_on_one_cpu_device():
  import jax
  from jax.sharding import Mesh

  from memjax import parallel

  arrays, indices = _arrays(100), np.arange(100)
  for chunk in _epoch(arrays, indices, 0):
    assert all(v.ctypes.data % 64 == 0 for v in chunk.values())
  mesh = Mesh(np.asarray(jax.devices('cpu')[:1]), (parallel.AXIS,))
  placed = parallel.to_global(chunk, mesh, 1)
  for name, value in chunk.items():  # XLA's CPU client took the host buffer, no copy
    assert placed[name].addressable_data(0).unsafe_buffer_pointer() == value.ctypes.data
    np.testing.assert_array_equal(np.asarray(placed[name]), value)


def test_a_gather_error_is_raised_in_the_loop_and_leaving_early_stops_the_thread():
  arrays = _arrays(50)
  with pytest.raises(IndexError):  # row 60 of 50: raised where the chunk is consumed
    _epoch(arrays, np.arange(40, 70), 0)

  def input_threads():
    return [t for t in threading.enumerate() if t.name == 'memjax-input']

  chunks = input_pipeline.train_chunks(
    _arrays(1000),
    np.arange(1000),
    batch_size=8,
    steps_per_call=1,
    seed=(0, 1),
    epoch=0,
    first_step=0,
    share=slice(0, 8),
  )
  next(chunks)
  assert len(input_threads()) == 1  # gathering ahead
  chunks.close()  # what leaving a for loop early does
  assert input_threads() == []


def test_train_rows_are_the_rows_train_chunks_gather():
  arrays, indices = _arrays(100), np.arange(5, 95)
  rows = input_pipeline.train_rows(
    indices, batch_size=8, seed=(0, 1), epoch=3, first_step=2, share=slice(0, 8)
  )
  labels = np.concatenate([c['label'] for c in _epoch(arrays, indices, 3, first_step=2)])
  assert rows.shape == (9, 8)
  np.testing.assert_array_equal(rows, labels)  # label i is row i
