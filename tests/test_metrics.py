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
