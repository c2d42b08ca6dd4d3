import numpy as np
import pytest

from memjax import folds
from memjax.errors import InputError


def _ids(n):
  return np.array([f'{i:08d}.jpg' for i in range(n)])


def test_folds_disjoint_covering_balanced_deterministic():
  ids = _ids(1003)
  fold_of = folds.assign_folds(ids, 5, seed=3)
  assert set(fold_of.tolist()) == set(range(5))
  counts = np.bincount(fold_of)
  assert counts.sum() == 1003 and counts.max() - counts.min() <= 1
  np.testing.assert_array_equal(fold_of, folds.assign_folds(ids, 5, seed=3))
  assert not np.array_equal(fold_of, folds.assign_folds(ids, 5, seed=4))
  tests = []
  for k in range(5):
    split = folds.split_fold(ids, fold_of, k, 0.1, seed=3)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert sum(map(len, parts)) == 1003
    assert set.union(*parts) == set(range(1003))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(split.val) == round(0.1 * (1003 - len(split.test)))
    tests.append(split.test)
  # Every row is a test row in exactly one fold.
  np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(1003))


def test_assignment_depends_on_ids_not_row_order():
  ids = _ids(200)
  perm = np.random.default_rng(0).permutation(200)
  fold_of = folds.assign_folds(ids, 5, seed=0)
  fold_of_shuffled = folds.assign_folds(ids[perm], 5, seed=0)
  np.testing.assert_array_equal(fold_of[perm], fold_of_shuffled)
  val = folds.split_fold(ids, fold_of, 2, 0.2, seed=0).val
  val_shuffled = folds.split_fold(ids[perm], fold_of_shuffled, 2, 0.2, seed=0).val
  assert set(ids[val]) == set(ids[perm][val_shuffled])


def test_bad_inputs():
  with pytest.raises(InputError, match='duplicate image id .00000001.jpg.'):
    folds.assign_folds(np.array(['00000001.jpg', '00000002.jpg', '00000001.jpg']), 2, 0)
  with pytest.raises(InputError, match='num_folds'):
    folds.assign_folds(_ids(3), 5, 0)
  with pytest.raises(InputError, match='val_fraction'):
    folds.split_fold(_ids(10), folds.assign_folds(_ids(10), 2, 0), 0, 1.0, 0)
