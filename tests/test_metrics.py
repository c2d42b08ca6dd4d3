import types

import numpy as np
import pytest
from scipy import stats

from memjax import metrics


@pytest.mark.parametrize('seed', range(3))
def test_average_ranks_and_spearman_match_scipy_with_ties(seed):
  rng = np.random.default_rng(seed)
  true = np.round(rng.uniform(size=500), 2)  # many ties
  pred = np.round(true + rng.normal(scale=0.2, size=500), 1)  # more ties
  np.testing.assert_allclose(metrics.average_ranks(true), stats.rankdata(true))
  np.testing.assert_allclose(
    metrics.spearman(pred, true), stats.spearmanr(pred, true).statistic, rtol=1e-12
  )
  np.testing.assert_allclose(
    metrics.pearson(pred, true), stats.pearsonr(pred, true).statistic, rtol=1e-12
  )


def test_hand_computed_ranks():
  np.testing.assert_array_equal(metrics.average_ranks(np.array([3, 1, 3, 2])), [3.5, 1, 3.5, 2])
  assert metrics.spearman(np.array([1, 2, 3]), np.array([30, 20, 10])) == pytest.approx(-1.0)


def test_constant_prediction_gives_nan():
  assert np.isnan(metrics.spearman(np.ones(5), np.arange(5)))


def test_score_metrics():
  m = metrics.score_metrics(
    np.array([0.5, 0.7, 0.9]), np.array([0.6, 0.7, 0.8]), np.array([0, 1, 1]), np.array([0, 1, 2])
  )
  assert m['spearman'] == pytest.approx(1.0)
  assert m['mse'] == pytest.approx(0.02 / 3)
  assert m['accuracy'] == pytest.approx(2 / 3)
  assert m['num_examples'] == 3


def test_calibration_fields_by_hand():
  true = np.linspace(0.0, 1.0, 101)  # percentiles 5 and 95 are 0.05 and 0.95
  pred = 0.5 + 0.25 * (true - 0.5)  # ranked perfectly, squeezed into [0.375, 0.625]
  m = metrics.score_metrics(pred, true, np.zeros(101), np.zeros(101))
  assert m['spearman'] == pytest.approx(1.0) and m['pearson'] == pytest.approx(1.0)
  assert m['mse'] == pytest.approx(np.mean((0.75 * (true - 0.5)) ** 2))
  assert (m['true_min'], m['true_max']) == pytest.approx((0.0, 1.0))
  assert (m['true_p05'], m['true_p95']) == pytest.approx((0.05, 0.95))
  assert (m['pred_min'], m['pred_max']) == pytest.approx((0.375, 0.625))
  assert (m['pred_p05'], m['pred_p95']) == pytest.approx((0.3875, 0.6125))
  assert m['pred_mean'] == pytest.approx(0.5) and m['pred_std'] == pytest.approx(true.std() / 4)
  assert m['range_ratio'] == pytest.approx(0.25)
  assert metrics.regression_metrics(pred, true).keys() == m.keys() - {'accuracy'}


def test_calibration_of_constant_truth_has_nan_ratio():
  m = metrics.calibration(np.array([0.1, 0.2, 0.3]), np.full(3, 0.5))
  assert np.isnan(m['range_ratio']) and np.isnan(m['pearson'])


def test_fold_summary_means_sds_and_extremes():
  rng = np.random.default_rng(0)
  folds = []
  for _ in range(4):
    true = rng.uniform(size=50)
    folds.append(metrics.regression_metrics(true + rng.normal(scale=0.1, size=50), true))
  s = metrics.fold_summary(folds)
  pearsons = [f['pearson'] for f in folds]
  assert s['pearson_mean'] == pytest.approx(np.mean(pearsons))
  assert s['pearson_std'] == pytest.approx(np.std(pearsons, ddof=1))
  assert s['mse_mean'] == pytest.approx(np.mean([f['mse'] for f in folds]))
  assert s['range_ratio_std'] == pytest.approx(np.std([f['range_ratio'] for f in folds], ddof=1))
  cal = s['calibration']
  assert cal['pred_p95'] == pytest.approx(np.mean([f['pred_p95'] for f in folds]))
  assert cal['pred_min_all'] == min(f['pred_min'] for f in folds)
  assert cal['true_max_all'] == max(f['true_max'] for f in folds)


def test_fold_summary_leaves_out_fields_some_folds_lack():
  old = {'spearman': 0.5, 'pearson': 0.4, 'mse': 0.02}  # an eval.json from before calibration
  new = metrics.regression_metrics(np.array([0.1, 0.3, 0.2]), np.array([0.2, 0.4, 0.1]))
  s = metrics.fold_summary([old, new])
  assert s['pearson_mean'] == pytest.approx((0.4 + new['pearson']) / 2)
  assert 'range_ratio_mean' not in s and 'calibration' not in s
  assert metrics.fold_summary([]) == {}


def test_spearman_by_fold_seed_groups_repeated_folds():
  folds = [
    {'name': f'seed{seed}_fold_{k}', 'spearman': 0.1 * seed + 0.01 * k}
    for seed in (0, 7)
    for k in range(3)
  ]
  assert metrics.fold_summary(folds)['spearman_by_fold_seed'] == pytest.approx(
    {'0': 0.01, '7': 0.71}
  )
  one_seed = [{'name': f'fold_{k}', 'spearman': 0.5} for k in range(3)]
  assert 'spearman_by_fold_seed' not in metrics.fold_summary(one_seed)


def test_run_summary_carries_the_calibration_over_folds(test_config):
  from memjax import results

  data = types.SimpleNamespace(
    name='synthetic', synthetic=True, description='d', label_version=1, ceiling=None
  )
  rng = np.random.default_rng(1)
  folds = []
  for fold in range(3):
    true = rng.uniform(size=40)
    pred = true + rng.normal(scale=0.2, size=40)
    m = metrics.score_metrics(pred, true, np.zeros(40), np.zeros(40))
    folds.append({**m, 'fold': fold, 'name': f'fold_{fold}', 'thresholds': [0.5]})
  summary = results.summarize(test_config, data, folds, mode='train', wall_seconds=1.0)
  assert summary['spearman_mean'] == pytest.approx(np.mean([f['spearman'] for f in folds]))
  assert summary['mse_mean'] == pytest.approx(np.mean([f['mse'] for f in folds]))
  assert summary['pearson_std'] == pytest.approx(np.std([f['pearson'] for f in folds], ddof=1))
  cal = summary['calibration']
  assert cal['pred_p05'] == pytest.approx(np.mean([f['pred_p05'] for f in folds]))
  assert cal['true_min_all'] == min(f['true_min'] for f in folds)
