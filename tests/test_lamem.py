"""LaMem split files under both protocols, with a feature store, on a fake archive."""

import os

import numpy as np
import pytest

from memjax import fold_data, train
from memjax.datasets import lamem
from memjax.errors import InputError
from memjax.features import store

N, TRAIN, VAL = 60, 40, 6  # 14 test rows per split


def _write_lamem(root, num_images=N, drop_from_store=0):
  """A fake LaMem: split files in the real format (each split with its own labels) + a store."""
  rng = np.random.default_rng(0)
  ids = [f'{i:08d}.jpg' for i in range(1, num_images + 1)]
  latent = rng.normal(size=num_images)
  os.makedirs(os.path.join(root, 'splits'))
  labels = {}
  for k in range(1, 6):
    perm = rng.permutation(num_images)
    version = np.clip(0.75 + 0.1 * latent + 0.03 * rng.normal(size=num_images), 0, 1)
    labels[k] = dict(zip(ids, np.round(version, 6), strict=True))
    for kind, rows in (
      ('train', perm[:TRAIN]),
      ('val', perm[TRAIN : TRAIN + VAL]),
      ('test', perm[TRAIN + VAL :]),
    ):
      with open(os.path.join(root, 'splits', f'{kind}_{k}.txt'), 'w') as f:
        f.writelines(f'{ids[r]} {version[r]:.6f}\n' for r in rows)
  kept = ids[drop_from_store:]
  signal = latent[drop_from_store:, None]
  features = {
    'cnn': np.maximum(signal * rng.normal(size=(1, 64)) + rng.normal(size=(len(kept), 64)), 0),
    'semantic': signal * rng.normal(size=(1, 32)) + 0.3 * rng.normal(size=(len(kept), 32)),
  }
  describe = {
    'extractor': 'test',
    'weights_sha256': None,
    'input_size': None,
    'preprocessing': 'none',
  }
  meta = {'source': 'test', 'features': {'cnn': describe, 'semantic': describe}}
  reversed_rows = {k: v[::-1] for k, v in features.items()}  # store order != split order
  store.write_store(os.path.join(root, 'features'), kept[::-1], reversed_rows, meta, 'float16')
  return ids, labels


@pytest.fixture
def lamem_config(test_config, tmp_path):
  ids, labels = _write_lamem(str(tmp_path / 'lamem'))
  test_config.data.name = 'lamem'
  test_config.data.dir = str(tmp_path / 'lamem')
  test_config.data.features_dir = str(tmp_path / 'lamem' / 'features')
  return test_config, ids, labels


def test_official_protocol_uses_each_splits_own_rows_and_labels(lamem_config):
  config, ids, labels = lamem_config
  config.data.protocol = 'official'
  data = lamem.load(config)
  assert data.features['cnn'].dtype == np.float16
  plans = fold_data.plan_folds(config, data)
  assert [p.name for p in plans] == [f'split_{k}' for k in range(1, 6)]
  for k, plan in enumerate(plans, start=1):
    assert (plan.split.train.size, plan.split.val.size, plan.split.test.size) == (40, 6, 14)
    with open(os.path.join(config.data.dir, 'splits', f'test_{k}.txt')) as f:
      expected = [line.split() for line in f]
    np.testing.assert_array_equal(data.ids[plan.split.test], [e[0] for e in expected])
    np.testing.assert_allclose(plan.scores[plan.split.test], [float(e[1]) for e in expected])
  # The same image carries a different label in different splits.
  image = ids[0]
  row = int(np.flatnonzero(data.ids == image)[0])
  assert plans[0].scores[row] == pytest.approx(labels[1][image])
  assert plans[1].scores[row] == pytest.approx(labels[2][image])
  assert labels[1][image] != labels[2][image]


def test_cv5_uses_one_label_version_over_all_images(lamem_config):
  config, ids, labels = lamem_config
  config.data.protocol = 'cv5'
  config.data.label_version = 2
  config.data.num_folds = 5
  data = lamem.load(config)
  np.testing.assert_allclose(data.scores, [labels[2][i] for i in data.ids])
  plans = fold_data.plan_folds(config, data)
  tests = np.sort(np.concatenate([p.split.test for p in plans]))
  np.testing.assert_array_equal(tests, np.arange(N))


def test_official_protocol_end_to_end(lamem_config, tmp_path):
  config, _, labels = lamem_config
  config.data.protocol = 'official'
  summary = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert summary['dataset'] == 'lamem' and summary['protocol'] == 'official'
  assert summary['synthetic'] is False and summary['label_version'] is None
  assert [f['name'] for f in summary['folds']] == [f'split_{k}' for k in range(1, 6)]
  assert all((f['num_train'], f['num_val'], f['num_test']) == (40, 6, 14) for f in summary['folds'])
  assert summary['spearman_mean'] > 0.3  # the features carry the latent every label follows
  for k, fold in enumerate(summary['folds'], 1):  # classes from the split's own training labels
    with open(os.path.join(config.data.dir, 'splits', f'train_{k}.txt')) as f:
      train_scores = [labels[k][line.split()[0]] for line in f]
    want = np.quantile(train_scores, np.arange(1, config.num_classes) / config.num_classes)
    np.testing.assert_allclose(fold['thresholds'], want, atol=1e-5)


@pytest.mark.parametrize(
  'line, message',
  [
    ('00000001.jpg\n', 'line 2, column 2 \\(score\\): missing'),
    ('00000001.jpg 0.5 extra\n', "expected '<image file> <score>'"),
    ('00000001.jpg high\n', "score 'high' is not a number"),
    ('00000001.jpg 1.5\n', 'outside \\[0, 1\\]'),
    ('00000001.jpg nan\n', 'outside \\[0, 1\\]'),
    (
      '00000002.jpg 0.5\n00000002.jpg 0.6\n',
      "'00000002.jpg' is listed twice, on lines 2 and 3",
    ),
  ],
)
def test_malformed_split_lines(tmp_path, line, message):
  path = tmp_path / 'train_1.txt'
  path.write_text('00000009.jpg 0.700000\n' + line)
  with pytest.raises(InputError, match=message) as err:
    lamem.read_split_file(str(path))
  assert str(path) in str(err.value) and 'line' in str(err.value)


def test_missing_inputs(lamem_config, tmp_path):
  config, _, _ = lamem_config
  os.remove(os.path.join(config.data.dir, 'splits', 'val_3.txt'))
  with pytest.raises(InputError, match='split file .*val_3.txt is missing'):
    lamem.load(config)
  config.data.dir = str(tmp_path / 'nowhere')
  with pytest.raises(InputError, match='expected the LaMem folder holding splits/'):
    lamem.load(config)


def test_id_absent_from_store(test_config, tmp_path):
  _write_lamem(str(tmp_path), drop_from_store=1)
  test_config.data.name = 'lamem'
  test_config.data.dir = str(tmp_path)
  test_config.data.features_dir = str(tmp_path / 'features')
  with pytest.raises(InputError, match="image '00000001.jpg' is not in the feature store"):
    lamem.load(test_config)


def test_synthetic_default_through_the_store_matches_in_memory(test_config, tmp_path):
  from memjax import datasets

  in_memory = datasets.load(test_config)
  test_config.data.features_dir = str(tmp_path / 'store')
  written = datasets.load(test_config)  # generates and writes the store
  assert store.is_complete(str(tmp_path / 'store'))
  reread = datasets.load(test_config)  # memory-maps it
  assert isinstance(reread.features['cnn'], np.memmap)
  for data in (written, reread):
    np.testing.assert_array_equal(data.ids, in_memory.ids)
    np.testing.assert_array_equal(data.scores, in_memory.scores)
    np.testing.assert_array_equal(data.features['semantic'], in_memory.features['semantic'])
    assert data.ceiling == in_memory.ceiling and data.synthetic
  test_config.seed = 1
  with pytest.raises(InputError, match='seed: store 0 vs config 1'):
    datasets.load(test_config)
