"""Training rows kept on the devices (memjax/device_table.py) against the host path."""

import os

import jax
import numpy as np
import pytest

from memjax import checkpointing, device_table, input_pipeline, train
from memjax.errors import InputError
from memjax.features import images


def _arrays(n):
  rng = np.random.default_rng(0)
  return {
    'x': rng.standard_normal((n, 3)).astype(np.float16),
    'label': np.arange(n, dtype=np.int32),
    'score': np.linspace(0, 1, n, dtype=np.float32),
  }


@pytest.mark.parametrize('first_step', [0, 4])
def test_row_numbers_give_the_chunks_the_host_path_gathers(first_step):
  arrays, indices = _arrays(120), np.random.default_rng(1).permutation(120)[:90]
  order = dict(batch_size=8, steps_per_call=3, seed=(0, 1), epoch=2, first_step=first_step)
  share = slice(4, 8)  # the second of two processes
  host = list(input_pipeline.train_chunks(arrays, indices, share=share, **order))
  rows = list(input_pipeline.train_row_chunks(indices, share=share, **order))
  assert [r.shape for r in rows] == [c['label'].shape for c in host]
  assert len(host) == -(-(11 - first_step) // 3)  # 90 // 8 = 11 steps per epoch
  for r, chunk in zip(rows, host, strict=True):
    assert r.dtype == np.int32 and r.flags.c_contiguous
    for name in arrays:
      np.testing.assert_array_equal(arrays[name][r], chunk[name])


def test_choice_follows_the_setting_the_budget_and_the_kind_of_rows(monkeypatch):
  arrays = _arrays(100)  # 100 x (3 x 2 + 4 + 4) bytes
  assert device_table.table_bytes(arrays) == 1400
  assert device_table.choose('off', arrays)[0] is False
  assert device_table.choose('on', arrays)[0] is True
  monkeypatch.setattr(device_table, 'memory_budget', lambda: 1400)
  assert device_table.choose('auto', arrays) == (True, '1400 bytes <= budget 1400 per device')
  monkeypatch.setattr(device_table, 'memory_budget', lambda: 1399)
  assert device_table.choose('auto', arrays) == (False, '1400 bytes > budget 1399 per device')
  rows = images.ImageRows(['a.jpg', 'b.jpg'], 8, 8, cache=False)
  on_the_fly = {'image': rows, 'label': arrays['label'][:2]}
  assert device_table.choose('auto', on_the_fly) == (False, 'images are decoded on the fly')
  with pytest.raises(InputError, match="device_resident='on' needs feature arrays"):
    device_table.choose('on', on_the_fly)


def test_an_aligned_store_is_used_in_place_and_other_arrays_copied_aligned(tmp_path):
  path = str(tmp_path / 'x.npy')
  np.save(path, np.arange(4096 * 8, dtype=np.float32).reshape(4096, 8))
  store = np.load(path, mmap_mode='r')
  assert store.ctypes.data % 64 == 0
  one = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ('data',))
  table = device_table.put({'x': store}, one)
  assert table['x'].addressable_data(0).unsafe_buffer_pointer() == store.ctypes.data
  np.testing.assert_array_equal(np.asarray(table['x']), store)
  raw = input_pipeline.aligned_empty((4097 * 4,), np.uint8)
  unaligned = raw[4 : 4 + 4096 * 4].view(np.float32)
  assert unaligned.ctypes.data % 64 == 4
  copy = device_table.put({'x': unaligned}, one)['x'].addressable_data(0).unsafe_buffer_pointer()
  assert copy % 64 == 0 and copy != unaligned.ctypes.data  # copied once, into an aligned buffer


def test_cpu_budget_is_a_share_of_available_memory_split_over_devices(monkeypatch):
  monkeypatch.setattr(device_table.host_memory, 'available_memory_bytes', lambda: 16 * 2**30)
  assert jax.local_device_count() == 4 and jax.local_devices()[0].memory_stats() is None
  assert device_table.memory_budget() == 16 * 2**30 * device_table.MEMORY_SHARE / 4


def _fold0_state(workdir):
  mngr = checkpointing.manager(os.path.join(workdir, 'fold_0', 'checkpoints'), read_only=True)
  step = mngr.latest_step()
  ocp = checkpointing.ocp
  items = ocp.args.Composite(params=ocp.args.StandardRestore(), train=ocp.args.StandardRestore())
  restored = mngr.restore(step, args=items)
  return step, jax.tree.map(np.asarray, {'params': restored.params, 'train': restored.train})


def test_device_table_trains_exactly_like_the_host_path(test_config, tmp_path):
  config = test_config
  config.num_epochs, config.data.run_folds = 2, (0,)
  result = {}
  for setting in ('on', 'off'):
    config.data.device_resident = setting
    workdir = str(tmp_path / setting)
    result[setting] = (train.train_and_evaluate(config, workdir), _fold0_state(workdir))
  (on, (step_on, state_on)), (off, (step_off, state_off)) = result['on'], result['off']
  assert step_on == step_off == 2 * (360 // 16)
  np.testing.assert_equal(state_on, state_off)  # bitwise: parameters, Adam moments, step
  assert on['folds'][0]['spearman'] == off['folds'][0]['spearman']
  assert on['folds'][0]['mse'] == off['folds'][0]['mse']
