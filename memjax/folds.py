"""Deterministic k-fold assignment, train/validation/test splits and the folds a run takes
(pure NumPy).

Every assignment is a function of (ids, num_folds, seed) only: rows are first put in id order,
so shuffling the rows of a dataset does not change which fold an image lands in.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from memjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Split:
  """Row indices (sorted) of one fold's training, validation and test examples."""

  train: np.ndarray
  val: np.ndarray
  test: np.ndarray


def _check_unique(ids: np.ndarray) -> np.ndarray:
  order = np.argsort(ids, kind='stable')
  sorted_ids = ids[order]
  dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
  if dup.size:
    raise InputError(f'duplicate image id {str(sorted_ids[dup[0]])!r}: ids must be unique.')
  return order


def assign_folds(ids: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
  """Fold index (0..num_folds-1) of every row; fold sizes differ by at most one.

  Raises:
    InputError: fewer rows than folds, num_folds < 2, or duplicate ids.
  """
  ids = np.asarray(ids)
  if num_folds < 2 or ids.size < num_folds:
    raise InputError(
      f'need num_folds >= 2 and at least num_folds rows; got num_folds={num_folds} '
      f'for {ids.size} rows.'
    )
  order = _check_unique(ids)
  perm = np.random.default_rng([seed, num_folds]).permutation(ids.size)
  fold_of = np.empty(ids.size, np.int32)
  fold_of[order[perm]] = np.arange(ids.size) % num_folds
  return fold_of


def split_fold(
  ids: np.ndarray, fold_of: np.ndarray, fold: int, val_fraction: float, seed: int
) -> Split:
  """Test = fold `fold`; validation = a seeded `val_fraction` of the rest; train = the remainder.

  Raises:
    InputError: a fraction outside [0, 1) or an empty training set.
  """
  if not 0.0 <= val_fraction < 1.0:
    raise InputError(f'data.val_fraction must be in [0, 1), got {val_fraction}.')
  ids = np.asarray(ids)
  test = np.flatnonzero(fold_of == fold)
  rest = np.flatnonzero(fold_of != fold)
  rest = rest[np.argsort(ids[rest], kind='stable')]
  rest = rest[np.random.default_rng([seed, fold, 1]).permutation(rest.size)]
  num_val = int(round(val_fraction * rest.size))
  train, val = np.sort(rest[num_val:]), np.sort(rest[:num_val])
  if train.size == 0:
    raise InputError(f'fold {fold} has no training examples.')
  return Split(train=train, val=val, test=test)


def folds_to_run(run_folds: Sequence[int], num_folds: int) -> list[int]:
  """`run_folds` (`config.data.run_folds`), or all `num_folds` folds when it is empty.

  Raises:
    InputError: a fold outside 0..num_folds-1.
  """
  chosen = list(run_folds) or list(range(num_folds))
  bad = [f for f in chosen if not 0 <= f < num_folds]
  if bad:
    raise InputError(f'config.data.run_folds has folds {bad} outside 0..{num_folds - 1}.')
  return chosen
