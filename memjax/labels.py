"""Memorability score -> K balanced classes, and class probabilities -> score.

Boundary rule: with thresholds t_1 < ... < t_{K-1} (and t_0 = -inf, t_K = +inf), class k holds
the scores s with t_{k-1} < s <= t_k. A score exactly on a threshold goes to the *lower* class,
which matches the paper's reading of t_k as the upper edge of class k. LaMem has many scores
exactly on 0.85, so the rule matters and is tested.
"""

from collections.abc import Sequence

import numpy as np

from memjax.errors import InputError

MIN_CLASSES, MAX_CLASSES = 2, 8
SCORE_VALUES = ('upper_threshold', 'class_mean')


def quantile_thresholds(scores: np.ndarray, num_classes: int) -> np.ndarray:
  """Thresholds that cut `scores` into `num_classes` classes of (nearly) equal size.

  Args:
    scores: training scores only (never validation or test scores), shape [N].
    num_classes: K, in 2..8.

  Returns:
    float64 array [K-1] of strictly increasing thresholds: the k/K quantiles of `scores`
    (linear interpolation), k = 1..K-1.

  Raises:
    InputError: K out of range, non-finite scores, or scores too few/too tied for K classes.
  """
  if not MIN_CLASSES <= num_classes <= MAX_CLASSES:
    raise InputError(
      f'config.num_classes must be in {MIN_CLASSES}..{MAX_CLASSES}, got {num_classes}.'
    )
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 1 or scores.size == 0 or not np.all(np.isfinite(scores)):
    raise InputError('quantile_thresholds needs a non-empty 1-D array of finite scores.')
  thresholds = np.quantile(scores, np.arange(1, num_classes) / num_classes)
  counts = np.bincount(assign_classes(scores, thresholds), minlength=num_classes)
  if np.any(np.diff(thresholds) <= 0) or np.any(counts == 0):
    distinct = np.unique(scores).size
    why = 'have only' if distinct < num_classes else 'are too tied for that, with'
    raise InputError(
      f'config.num_classes={num_classes} needs {num_classes} non-empty score classes, but the '
      f'{scores.size} training scores {why} {distinct} distinct values '
      f'(thresholds {np.round(thresholds, 4).tolist()}, class sizes {counts.tolist()}); '
      'use a smaller config.num_classes.'
    )
  return thresholds


def assign_classes(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
  """Class index of each score: k such that t_{k-1} < s <= t_k (int32, 0-based)."""
  return np.searchsorted(np.asarray(thresholds), np.asarray(scores), side='left').astype(np.int32)


def class_score_values(scores: np.ndarray, thresholds: np.ndarray, how: str) -> np.ndarray:
  """The values s_k of the aggregation m = sum_k p(k) s_k.

  Args:
    scores: training scores, used by `class_mean`.
    thresholds: [K-1] from `quantile_thresholds`.
    how: `upper_threshold` (the paper: s_k = t_k, s_K = 1.0) or `class_mean` (s_k = mean of
      the training scores in class k).

  Returns:
    float64 array [K].
  """
  if how == 'upper_threshold':
    return np.append(np.asarray(thresholds, np.float64), 1.0)
  if how == 'class_mean':
    classes = assign_classes(scores, thresholds)
    num_classes = len(thresholds) + 1
    sums = np.bincount(classes, weights=np.asarray(scores, np.float64), minlength=num_classes)
    return sums / np.bincount(classes, minlength=num_classes)
  raise InputError(f'score_values must be one of {SCORE_VALUES}, got {how!r}.')


def aggregate(probs, values):
  """m = sum_k p(k) s_k for probabilities [..., K] and values [K] (NumPy or JAX arrays)."""
  return probs @ values
