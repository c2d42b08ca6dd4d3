"""Correlation and error metrics computed over a whole evaluation set (host NumPy).

Spearman is a rank statistic over all examples, so it cannot be summed batch by batch; the
evaluation loop gathers exact (unpadded) predictions first and calls these once.

Besides the ranking, `calibration` says where the predicted scores lie against the true ones
(Pearson, MSE, min / max / 5th and 95th percentiles of each, and the ratio of their 5-95
spreads): a model can rank well while squeezing every score into the top half of the range.
`fold_summary` averages these over folds for `summary.json` (MLP and baseline runs alike).
"""

import re

import numpy as np


def average_ranks(x: np.ndarray) -> np.ndarray:
  """1-based ranks of `x`, ties getting the average of the ranks they span (as scipy's default)."""
  x = np.asarray(x)
  order = np.argsort(x, kind='stable')
  sorted_x = x[order]
  # Start index of each run of equal values, and the run each sorted element belongs to.
  is_start = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
  starts = np.flatnonzero(is_start)
  ends = np.append(starts[1:], x.size)  # exclusive
  run = np.cumsum(is_start) - 1
  ranks = np.empty(x.size, np.float64)
  ranks[order] = ((starts + ends + 1) / 2.0)[run]
  return ranks


def pearson(a: np.ndarray, b: np.ndarray) -> float:
  """Pearson correlation; NaN when either input is constant."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  a, b = a - a.mean(), b - b.mean()
  denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denom) if denom > 0 else float('nan')


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
  """Spearman rank correlation with average ranks for ties; NaN when either input is constant."""
  return pearson(average_ranks(pred), average_ranks(true))


CALIBRATION_PERCENTILES = (5, 95)


def score_range(scores: np.ndarray, prefix: str) -> dict[str, float]:
  """Where `scores` lie: `{prefix}_min`, `_max`, `_p05`, `_p95`, `_mean`, `_std` (ddof=0)."""
  scores = np.asarray(scores, np.float64)
  low, high = np.percentile(scores, CALIBRATION_PERCENTILES)
  return {
    f'{prefix}_min': float(scores.min()),
    f'{prefix}_max': float(scores.max()),
    f'{prefix}_p05': float(low),
    f'{prefix}_p95': float(high),
    f'{prefix}_mean': float(scores.mean()),
    f'{prefix}_std': float(scores.std()),
  }


def calibration(pred_scores: np.ndarray, true_scores: np.ndarray) -> dict[str, float]:
  """How predicted scores sit against the true ones, beyond their ranking.

  Returns:
    Pearson, MSE, the range of each (`pred_*` and `true_*`: min, max, 5th / 95th percentile,
    mean, SD) and `range_ratio`: the predictions' 5-95 percentile spread over the true one
    (1: they cover the true range; 0.5: squeezed into half of it; NaN for constant truth).
  """
  pred = np.asarray(pred_scores, np.float64)
  true = np.asarray(true_scores, np.float64)
  out = {'pearson': pearson(pred, true), 'mse': float(np.mean((pred - true) ** 2))}
  out.update(score_range(pred, 'pred'))
  out.update(score_range(true, 'true'))
  true_spread = out['true_p95'] - out['true_p05']
  pred_spread = out['pred_p95'] - out['pred_p05']
  out['range_ratio'] = float(pred_spread / true_spread) if true_spread > 0 else float('nan')
  return out


def regression_metrics(pred_scores: np.ndarray, true_scores: np.ndarray) -> dict[str, float]:
  """Spearman, the `calibration` fields and the example count of one evaluation set."""
  pred = np.asarray(pred_scores, np.float64)
  true = np.asarray(true_scores, np.float64)
  return {
    'spearman': spearman(pred, true),
    **calibration(pred, true),
    'num_examples': int(true.size),
  }


def score_metrics(
  pred_scores: np.ndarray,
  true_scores: np.ndarray,
  pred_classes: np.ndarray,
  true_classes: np.ndarray,
) -> dict[str, float]:
  """`regression_metrics` plus the class accuracy of one evaluation set."""
  out = regression_metrics(pred_scores, true_scores)
  out['accuracy'] = float(np.mean(np.asarray(pred_classes) == np.asarray(true_classes)))
  return out


FOLD_SUMMARY_KEYS = ('pearson', 'mse', 'range_ratio')
CALIBRATION_KEYS = tuple(
  f'{who}_{what}'
  for who in ('pred', 'true')
  for what in ('min', 'max', 'p05', 'p95', 'mean', 'std')
)


def _over_folds(fold_results: list, key: str) -> np.ndarray | None:
  """The folds' values of `key` (None in JSON -> NaN), or None when a fold lacks it."""
  if not fold_results or any(key not in r for r in fold_results):
    return None
  return np.array([np.nan if r[key] is None else r[key] for r in fold_results], np.float64)


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
  return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def fold_summary(fold_results: list) -> dict:
  """Calibration over folds for `summary.json`.

  A field that any fold lacks (an `eval.json` of a resumed run written without it) is left out
  rather than averaged over the folds that have it.

  Returns:
    `pearson_mean`, `pearson_std`, `mse_mean`, `mse_std`, `range_ratio_mean`,
    `range_ratio_std` (SD with ddof=1, like `spearman_std`), and `calibration`: per
    `pred_*` / `true_*` range field, the mean over folds, plus the extremes over folds
    (`pred_min_all`, `pred_max_all`, `true_min_all`, `true_max_all`); with repeated
    cross-validation, `spearman_by_fold_seed`.
  """
  out = {}
  for key in FOLD_SUMMARY_KEYS:
    values = _over_folds(fold_results, key)
    if values is not None:
      out[f'{key}_mean'], out[f'{key}_std'] = _mean_sd(values)
  ranges = {}
  for key in CALIBRATION_KEYS:
    values = _over_folds(fold_results, key)
    if values is not None:
      ranges[key] = float(values.mean())
  for who in ('pred', 'true'):
    lows, highs = _over_folds(fold_results, f'{who}_min'), _over_folds(fold_results, f'{who}_max')
    if lows is not None and highs is not None:
      ranges[f'{who}_min_all'], ranges[f'{who}_max_all'] = float(lows.min()), float(highs.max())
  if ranges:
    out['calibration'] = ranges
  by_seed = spearman_by_fold_seed(fold_results)
  if by_seed:
    out['spearman_by_fold_seed'] = by_seed
  return out


def spearman_by_fold_seed(fold_results: list) -> dict[str, float]:
  """Mean test Spearman per fold seed of a repeated cross-validation, keyed by the seed.

  Folds are grouped by their names (`seed{S}_fold_{k}`, as `fold_data.plan_folds` names them
  under `config.data.fold_seeds`); empty when any fold has another name (one fold seed).
  """
  groups = {}
  for r in fold_results:
    match = re.fullmatch(r'seed(-?\d+)_fold_\d+', str(r.get('name', '')))
    if match is None:
      return {}
    groups.setdefault(match.group(1), []).append(np.nan if r['spearman'] is None else r['spearman'])
  return {seed: float(np.mean(rho)) for seed, rho in groups.items()}
