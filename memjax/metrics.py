"""Correlation and error metrics computed over a whole evaluation set (host NumPy).

Spearman is a rank statistic over all examples, so it cannot be summed batch by batch; the
evaluation loop gathers exact (unpadded) predictions first and calls these once.
"""

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
  a = np.asarray(a, np.float64) - np.mean(a)
  b = np.asarray(b, np.float64) - np.mean(b)
  denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denom) if denom > 0 else float('nan')


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
  """Spearman rank correlation with average ranks for ties; NaN when either input is constant."""
  return pearson(average_ranks(pred), average_ranks(true))


def score_metrics(
  pred_scores: np.ndarray,
  true_scores: np.ndarray,
  pred_classes: np.ndarray,
  true_classes: np.ndarray,
) -> dict[str, float]:
  """Spearman, Pearson, MSE, class accuracy and the example count of one evaluation set."""
  pred_scores = np.asarray(pred_scores, np.float64)
  true_scores = np.asarray(true_scores, np.float64)
  return {
    'spearman': spearman(pred_scores, true_scores),
    'pearson': pearson(pred_scores, true_scores),
    'mse': float(np.mean((pred_scores - true_scores) ** 2)),
    'accuracy': float(np.mean(np.asarray(pred_classes) == np.asarray(true_classes))),
    'num_examples': int(true_scores.size),
  }
