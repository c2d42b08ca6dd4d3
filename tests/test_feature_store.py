"""Feature store: round trips, atomicity under crashes, resumable writing, user stores, errors."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from memjax.errors import InputError
from memjax.features import store
from memjax.features.store import values

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, DIMS = 50, {'cnn': 12, 'semantic': 5}


def _ids(n=N):
  return [f'{i:08d}.jpg' for i in range(1, n + 1)]


def _features(n=N, seed=0):
  rng = np.random.default_rng(seed)
  return {name: rng.normal(size=(n, d)).astype(np.float32) for name, d in DIMS.items()}


def _meta(names=DIMS):
  return {
    'source': 'unit test',
    'features': {
      n: {
        'extractor': f'fake_{n}',
        'weights_sha256': None if n == 'semantic' else 'ab' * 32,
        'input_size': [224, 224],
        'preprocessing': 'none',
      }
      for n in names
    },
  }


def _run(script: str) -> subprocess.CompletedProcess:
  """Runs `script` in a fresh Python that imports memjax; returns the finished process."""
  env = {**os.environ, 'PYTHONPATH': ROOT}
  return subprocess.run(
    [sys.executable, '-c', textwrap.dedent(script)], env=env, capture_output=True, text=True
  )


@pytest.mark.parametrize('dtype', ['float16', 'float32'])
def test_round_trip_mmap_and_in_memory(tmp_path, dtype):
  features = _features()
  path = store.write_store(tmp_path / 'store', _ids(), features, _meta(), dtype=dtype)
  assert store.is_complete(path)
  ids, read, meta = store.read_store(path)
  assert ids.tolist() == _ids()
  for name, array in features.items():
    assert isinstance(read[name], np.memmap) and read[name].dtype == dtype
    np.testing.assert_array_equal(read[name], array.astype(dtype))
  assert meta['format_version'] == 1 and meta['count'] == N and meta['source'] == 'unit test'
  assert meta['features']['cnn'] == {
    'extractor': 'fake_cnn',
    'weights_sha256': 'ab' * 32,
    'input_size': [224, 224],
    'preprocessing': 'none',
    'dim': 12,
    'dtype': dtype,
  }
  _, subset, _ = store.read_store(path, names=['semantic'], mmap=False)
  assert list(subset) == ['semantic'] and not isinstance(subset['semantic'], np.memmap)
  np.testing.assert_array_equal(subset['semantic'], features['semantic'].astype(dtype))


def test_user_store_written_with_plain_numpy(tmp_path):
  # The README recipe: a store of CLIP features made without memjax.
  ids = ['a/1.jpg', 'b/2.png', 'c.jpg']
  clip = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
  d = str(tmp_path / 'clip_store')
  os.makedirs(d)
  with open(f'{d}/ids.txt', 'w') as f:
    f.write(''.join(f'{i}\n' for i in ids))
  np.save(f'{d}/clip.npy', clip.astype(np.float16))
  descriptor = {
    'dim': 8,
    'dtype': 'float16',
    'extractor': 'clip_vit_b32',
    'weights_sha256': None,
    'input_size': 224,
    'preprocessing': 'CLIP: resize 224, center crop, CLIP mean/std',
  }
  meta = {'format_version': 1, 'count': 3, 'source': 'CLIP', 'features': {'clip': descriptor}}
  with open(f'{d}/metadata.json', 'w') as f:
    json.dump(meta, f)
  with pytest.raises(InputError, match='incomplete: no COMPLETE marker'):
    store.read_store(d)
  open(f'{d}/COMPLETE', 'w').close()  # last: marks the store complete
  read_ids, features, read_meta = store.read_store(d, check_finite=True)
  assert read_ids.tolist() == ids and read_meta['features']['clip']['extractor'] == 'clip_vit_b32'
  np.testing.assert_array_equal(features['clip'], clip.astype(np.float16))


def test_write_refuses_existing_store_and_overwrite_keeps_old_until_new_is_complete(
  tmp_path, monkeypatch
):
  path = tmp_path / 'store'
  store.write_store(path, _ids(), _features(seed=0), _meta())
  with pytest.raises(InputError, match='already holds a complete feature store; pass overwrite'):
    store.write_store(path, _ids(), _features(seed=1), _meta())
  # A failure mid-write leaves the old store in place and no temporary directory behind.
  real_save = np.save
  calls = []

  def failing_save(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise OSError('disk full')
    return real_save(*args, **kwargs)

  monkeypatch.setattr(np, 'save', failing_save)
  with pytest.raises(OSError, match='disk full'):
    store.write_store(path, _ids(), _features(seed=1), _meta(), overwrite=True)
  monkeypatch.setattr(np, 'save', real_save)
  assert os.listdir(tmp_path) == ['store']
  np.testing.assert_array_equal(store.read_store(path)[1]['cnn'], _features(seed=0)['cnn'])
  store.write_store(path, _ids(), _features(seed=1), _meta(), overwrite=True)
  assert os.listdir(tmp_path) == ['store']
  np.testing.assert_array_equal(store.read_store(path)[1]['cnn'], _features(seed=1)['cnn'])
  (tmp_path / 'other').mkdir()
  (tmp_path / 'other' / 'notes.txt').write_text('mine')
  with pytest.raises(InputError, match='not a feature store; refusing to replace it'):
    store.write_store(tmp_path / 'other', _ids(), _features(), _meta(), overwrite=True)


_KILLED_WRITE_SCRIPT = """
  import os
  import numpy as np
  from memjax.features import store
  real_save = np.save
  def dying_save(f, array):
    real_save(f, array)
    os._exit(9)  # dies without any cleanup after the first array
  np.save = dying_save
  meta = {{'features': {{'x': {{'extractor': 'e', 'weights_sha256': None, 'input_size': None,
                                'preprocessing': ''}}}}}}
  store.write_store({path!r}, ['a', 'b'], {{'x': np.ones((2, 3))}}, meta, overwrite={overwrite})
"""


def test_killed_write_store_is_never_read_as_complete(tmp_path):
  path = str(tmp_path / 'store')
  assert _run(_KILLED_WRITE_SCRIPT.format(path=path, overwrite=False)).returncode == 9
  assert not os.path.exists(path)
  with pytest.raises(InputError, match='does not exist'):
    store.read_store(path)
  # The same crash during an overwrite leaves the old store complete and readable.
  store.write_store(path, ['a', 'b'], {'x': np.zeros((2, 3))}, _meta(['x']))
  assert _run(_KILLED_WRITE_SCRIPT.format(path=path, overwrite=True)).returncode == 9
  np.testing.assert_array_equal(store.read_store(path)[1]['x'], np.zeros((2, 3)))


def test_interrupted_overwrite_backup_is_pointed_out(tmp_path):
  (tmp_path / '.store.old-abc').mkdir()
  with pytest.raises(InputError, match=r'previous store at .*\.store\.old-abc'):
    store.read_store(tmp_path / 'store')


_WRITER_SCRIPT = """
  import os, signal
  import numpy as np
  from memjax.features import store
  ids = [f'{{i:08d}}.jpg' for i in range(1, 51)]
  rng = np.random.default_rng(0)
  full = {{'cnn': rng.normal(size=(50, 12)), 'semantic': rng.normal(size=(50, 5))}}
  writer = store.StoreWriter({path!r}, ids, {{'cnn': 12, 'semantic': 5}}, dtype='float16')
  for start in range(0, 50, 8):
    if start == 24:
      os.kill(os.getpid(), signal.SIGKILL)
    writer.append({{n: a[start:start + 8] for n, a in full.items()}})
"""


def test_killed_extraction_is_incomplete_and_resumes_without_redoing_rows(tmp_path):
  path = str(tmp_path / 'store')
  result = _run(_WRITER_SCRIPT.format(path=path))
  assert result.returncode == -9, result.stderr
  with pytest.raises(
    InputError, match=r"incomplete.*rows done \{'cnn': 24, 'semantic': 24\} of 50"
  ):
    store.read_store(path)
  rng = np.random.default_rng(0)
  full = {'cnn': rng.normal(size=(N, 12)), 'semantic': rng.normal(size=(N, 5))}
  writer = store.StoreWriter(path, _ids(), DIMS, dtype='float16')
  assert writer.rows_done == {'cnn': 24, 'semantic': 24} and writer.next_row == 24
  computed = []
  for start in range(writer.next_row, writer.num_rows, 10):  # the extraction loop of the docs
    computed.extend(range(start, min(start + 10, N)))
    writer.append({n: a[start : start + 10] for n, a in full.items()})
  assert computed == list(range(24, N))
  with pytest.raises(InputError, match='passes the end of the store'):
    writer.append({'cnn': full['cnn'][:1]})
  writer.finalize(_meta())
  assert not os.path.exists(os.path.join(path, 'progress.json'))
  ids, features, meta = store.read_store(path, check_finite=True)
  assert ids.tolist() == _ids() and meta['features']['cnn']['dtype'] == 'float16'
  for name, array in full.items():
    np.testing.assert_array_equal(features[name], array.astype(np.float16))
  with pytest.raises(InputError, match='is finalized'):
    writer.append({'cnn': full['cnn'][:1]})
  with pytest.raises(InputError, match='already holds a complete feature store'):
    store.StoreWriter(path, _ids(), DIMS, dtype='float16')


def test_writer_per_feature_passes_and_resume_mismatch(tmp_path):
  path = tmp_path / 'store'
  writer = store.StoreWriter(path, _ids(), DIMS)
  writer.append({'cnn': np.ones((N, 12))})
  assert writer.rows_done == {'cnn': N, 'semantic': 0} and writer.next_row == 0
  with pytest.raises(InputError, match=r"cannot finalize .*rows done \{'semantic': 0\} of 50"):
    writer.finalize(_meta())
  with pytest.raises(InputError, match=r"unknown feature\(s\) \['clip'\]"):
    writer.append({'clip': np.ones((2, 3))})
  with pytest.raises(InputError, match="feature 'semantic' has dimension 4; expected 5"):
    writer.append({'semantic': np.ones((2, 4))})
  writer.close()
  with pytest.raises(InputError, match='started with other ids'):
    store.StoreWriter(path, _ids(N + 1)[1:], DIMS)
  with pytest.raises(InputError, match='started with other dims'):
    store.StoreWriter(path, _ids(), {'cnn': 12})
  with pytest.raises(InputError, match="started with other dtype 'float32'"):
    store.StoreWriter(path, _ids(), DIMS, dtype='float16')
  writer = store.StoreWriter(path, _ids(), DIMS)
  writer.append({'semantic': np.zeros((N, 5))})
  writer.finalize(_meta())
  assert store.read_store(path)[1]['cnn'].sum() == N * 12


def _good_store(tmp_path):
  return store.write_store(tmp_path / 'store', _ids(), _features(), _meta())


def test_read_errors_name_file_and_expectation(tmp_path):
  with pytest.raises(InputError, match=r'feature store .*nowhere does not exist'):
    store.read_store(tmp_path / 'nowhere')
  path = _good_store(tmp_path)
  with pytest.raises(
    InputError, match=r"has no feature\(s\) \['clip'\]; available: \['cnn', 'semantic'\]"
  ):
    store.read_store(path, names=['cnn', 'clip'])
  ids_file = os.path.join(path, 'ids.txt')
  lines = _ids()
  lines[30] = lines[4]
  with open(ids_file, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with pytest.raises(
    InputError, match=r"ids.txt: id '00000005.jpg' appears twice, on lines 5 and 31"
  ):
    store.read_store(path)
  with open(ids_file, 'w') as f:
    f.write('\n'.join(_ids()[:40]) + '\n')
  with pytest.raises(InputError, match=r'ids.txt has 40 ids; metadata.json says count=50'):
    store.read_store(path)
  with open(ids_file, 'w') as f:
    f.write('\n'.join(_ids()) + '\n')
  np.save(os.path.join(path, 'cnn.npy'), np.zeros((49, 12), np.float32))
  with pytest.raises(
    InputError, match=r'cnn.npy has 49 rows; expected 50, one per line of ids.txt'
  ):
    store.read_store(path)
  np.save(os.path.join(path, 'cnn.npy'), np.zeros((50, 12), np.int32))
  with pytest.raises(InputError, match=r"cnn.npy has dtype int32; expected one of \('float16'"):
    store.read_store(path)
  bad = np.zeros((50, 12), np.float32)
  bad[[3, 17]] = [np.nan] + [0.0] * 11
  np.save(os.path.join(path, 'cnn.npy'), bad)
  store.read_store(path, check_finite=False)  # the values check can be switched off
  with pytest.raises(InputError, match=r"NaN or inf in 2 row\(s\), first: 3 \('00000004.jpg'\)"):
    store.read_store(path)
  np.save(os.path.join(path, 'cnn.npy'), np.zeros((50, 11), np.float32))
  with pytest.raises(InputError, match=r'cnn.npy has dimension 11; metadata.json says 12'):
    store.read_store(path)
  os.remove(os.path.join(path, 'metadata.json'))
  with pytest.raises(InputError, match=r'metadata.json is missing'):
    store.read_store(path)


def test_write_errors(tmp_path):
  path = tmp_path / 'store'
  with pytest.raises(InputError, match=r"id '00000002.jpg' appears at positions 1 and 2"):
    store.write_store(path, _ids()[:2] + ['00000002.jpg'], {'cnn': np.ones((3, 2))}, _meta(['cnn']))
  with pytest.raises(InputError, match=r"feature 'cnn' has 3 rows; expected 50"):
    store.write_store(path, _ids(), {'cnn': np.ones((3, 2))}, _meta(['cnn']))
  big = np.full((N, 2), 1e6)
  with pytest.raises(InputError, match='after casting to float16'):
    store.write_store(path, _ids(), {'cnn': big}, _meta(['cnn']), dtype='float16')
  meta = _meta(['cnn'])
  del meta['features']['cnn']['input_size']
  with pytest.raises(InputError, match=r"feature 'cnn' lacks \['input_size'\]"):
    store.write_store(path, _ids(), {'cnn': np.ones((N, 2))}, meta)
  with pytest.raises(InputError, match="feature name 'my feature' must match"):
    store.write_store(path, _ids(), {'my feature': np.ones((N, 2))}, _meta(['my feature']))
  with pytest.raises(InputError, match='dtype must be one of'):
    store.write_store(path, _ids(), {'cnn': np.ones((N, 2))}, _meta(['cnn']), dtype='float64')
  assert not path.exists()


def test_check_feature_dims(tmp_path):
  _, features, _ = store.read_store(_good_store(tmp_path))
  store.check_feature_dims(features, {'cnn': 12, 'semantic': 5})
  with pytest.raises(
    InputError, match=r"feature 'cnn' has dimension 12, but the checkpoint expects 4096"
  ):
    store.check_feature_dims(features, {'cnn': 4096})
  with pytest.raises(InputError, match=r"the checkpoint expects feature 'clip' \(512-d\)"):
    store.check_feature_dims({'cnn': 12}, {'clip': 512})


def test_non_finite_values_are_refused_when_written_naming_store_feature_and_rows(tmp_path):
  path = tmp_path / 'store'
  cnn = _features()['cnn']
  cnn[7, 3] = np.nan
  cnn[30] = np.inf
  with pytest.raises(
    InputError,
    match=rf"feature store {path}: feature 'cnn' has NaN or inf in 2 row\(s\), first "
    r"7 \('00000008.jpg'\), 30 \('00000031.jpg'\)",
  ):
    store.write_store(path, _ids(), {**_features(), 'cnn': cnn}, _meta())
  assert not path.exists()
  writer = store.StoreWriter(path, _ids(), DIMS)
  writer.append({'cnn': np.ones((10, 12))})
  batch = np.ones((10, 12))
  batch[3, 0] = -np.inf
  message = rf"feature store {path}: .*'cnn' .* in 1 row\(s\), first 13 \('00000014.jpg'\)"
  with pytest.raises(InputError, match=message):
    writer.append({'cnn': batch})
  assert writer.rows_done == {'cnn': 10, 'semantic': 0}  # nothing of the bad batch was written


def _count_scans(monkeypatch) -> list[str]:
  scanned = []
  scan = values.scan

  def counting_scan(path, array):
    scanned.append(os.path.basename(path))
    return scan(path, array)

  monkeypatch.setattr(values, 'scan', counting_scan)
  return scanned


def test_damaged_values_are_caught_when_first_opened_and_a_clean_check_is_recorded(
  tmp_path, monkeypatch
):
  path = _good_store(tmp_path)
  scanned = _count_scans(monkeypatch)
  monkeypatch.setattr(values, 'CHUNK_BYTES', 100)  # 2 rows of cnn per chunk: streamed
  monkeypatch.setattr(values, 'SETTLE_SECONDS', 3600.0)  # however slow this machine is
  store.read_store(path)
  store.read_store(path)
  # Just written: not settled yet, so nothing is recorded and every open scans.
  assert scanned == ['cnn.npy', 'semantic.npy'] * 2
  assert not os.path.exists(os.path.join(path, values.CHECKED_FILE))
  monkeypatch.setattr(values, 'SETTLE_SECONDS', 0.0)  # as if written long ago
  scanned.clear()
  store.read_store(path)
  ids, features, _ = store.read_store(path)
  assert scanned == ['cnn.npy', 'semantic.npy']  # the second open relied on the record
  np.testing.assert_array_equal(features['cnn'], _features()['cnn'])

  time.sleep(0.05)  # past the file system's timestamp tick
  damaged = np.lib.format.open_memmap(os.path.join(path, 'cnn.npy'), mode='r+')
  damaged[41, 11] = np.nan
  damaged[44, 0] = np.inf
  damaged.flush()
  del damaged
  with open(os.path.join(path, values.CHECKED_FILE)) as f:
    recorded = json.load(f)['features']
  assert recorded['cnn'] != values.signature(os.path.join(path, 'cnn.npy'))
  scanned.clear()
  message = (
    rf"feature store {path}: feature 'cnn' \(cnn.npy\) has NaN or inf in 2 row\(s\), first: "
    r"41 \('00000042.jpg'\), 44 \('00000045.jpg'\)\. .*extract the store again"
  )
  with pytest.raises(InputError, match=message):
    store.read_store(path)
  with pytest.raises(InputError, match=message):
    store.read_store(path, mmap=False)
  assert scanned == ['cnn.npy', 'cnn.npy']
  store.read_store(path, names=['semantic'])  # the intact feature is still recorded as checked
  assert scanned == ['cnn.npy', 'cnn.npy']
  store.read_store(path, names=['semantic'], check_finite='force')
  assert scanned[-1] == 'semantic.npy'
  # A replaced file (a new inode, as a copy or np.save into a new file makes) is scanned again.
  bad = np.zeros((N, 5), np.float32)
  bad[0, 0] = np.nan
  np.save(os.path.join(tmp_path, 'new.npy'), bad)
  os.replace(os.path.join(tmp_path, 'new.npy'), os.path.join(path, 'semantic.npy'))
  with pytest.raises(InputError, match=r"feature 'semantic' .* first: 0 \('00000001.jpg'\)"):
    store.read_store(path, names=['semantic'])


def test_a_store_in_a_read_only_folder_is_checked_without_a_record(tmp_path, monkeypatch):
  path = _good_store(tmp_path)
  scanned = _count_scans(monkeypatch)
  monkeypatch.setattr(values, 'SETTLE_SECONDS', 0.0)

  def read_only(path, text):
    raise PermissionError(13, 'Permission denied', path)

  monkeypatch.setattr(values.atomic_files, 'write_text', read_only)
  store.read_store(path)
  store.read_store(path)
  assert scanned == ['cnn.npy', 'semantic.npy'] * 2


def test_nan_in_a_lamem_store_stops_before_training_and_blames_the_store(tmp_path):
  import bad_inputs as bi

  from memjax import train

  run = bi.lamem(tmp_path)
  features_dir = run.overrides['data.features_dir']
  cnn = np.load(os.path.join(features_dir, 'cnn.npy'))
  cnn[[5, 9]] = np.nan
  np.save(os.path.join(features_dir, 'cnn.npy'), cnn)
  with pytest.raises(InputError) as e:
    train.train_and_evaluate(bi.make_config(run.overrides), run.workdir)
  assert f'feature store {features_dir}' in str(e.value)
  with open(os.path.join(features_dir, 'ids.txt')) as f:
    ids = f.read().split()
  expected = f"feature 'cnn' (cnn.npy) has NaN or inf in 2 row(s), first: 5 ({ids[5]!r}), 9 ("
  assert expected in str(e.value)
  assert 'learning rate' not in str(e.value)
