import numpy as np
import pytest

from memjax import labels
from memjax.errors import InputError


def test_thresholds_are_training_quantiles():
  scores = np.arange(1, 9) / 10.0  # 0.1 .. 0.8
  t = labels.quantile_thresholds(scores, 4)
  np.testing.assert_allclose(t, [0.275, 0.45, 0.625])
  np.testing.assert_array_equal(labels.assign_classes(scores, t), [0, 0, 1, 1, 2, 2, 3, 3])


def test_score_on_threshold_goes_to_lower_class():
  t = np.array([0.68, 0.77, 0.85])
  s = np.array([0.68, 0.6800001, 0.77, 0.85, 0.8500001, 1.0, 0.0])
  np.testing.assert_array_equal(labels.assign_classes(s, t), [0, 1, 1, 2, 3, 3, 0])


def test_ties_on_threshold_like_lamem():
  # Many scores exactly 0.85: the median lands on 0.85 and all of them join the lower class.
  scores = np.array([0.5, 0.6, 0.7, 0.85, 0.85, 0.85, 0.9, 0.95])
  t = labels.quantile_thresholds(scores, 2)
  assert t.tolist() == [0.85]
  np.testing.assert_array_equal(labels.assign_classes(scores, t), [0, 0, 0, 0, 0, 0, 1, 1])


@pytest.mark.parametrize('k', range(2, 9))
def test_balanced_bins_for_every_k(k):
  scores = np.random.default_rng(0).uniform(size=4000)
  counts = np.bincount(labels.assign_classes(scores, labels.quantile_thresholds(scores, k)))
  assert counts.size == k
  assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize('k', [1, 9])
def test_k_out_of_range(k):
  with pytest.raises(InputError, match='num_classes must be in 2..8'):
    labels.quantile_thresholds(np.linspace(0, 1, 100), k)


def test_k_larger_than_distinct_scores():
  with pytest.raises(InputError, match='only 2 distinct values'):
    labels.quantile_thresholds(np.array([0.5] * 10 + [0.7] * 10), 4)


def test_score_values_and_aggregation():
  scores = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 1.0])
  t = np.array([0.25, 0.5])
  np.testing.assert_allclose(
    labels.class_score_values(scores, t, 'upper_threshold'), [0.25, 0.5, 1.0]
  )
  np.testing.assert_allclose(labels.class_score_values(scores, t, 'class_mean'), [0.15, 0.35, 0.95])
  probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(
    labels.aggregate(probs, np.array([0.68, 0.77, 1.0])), [0.68, 0.2 * 0.68 + 0.3 * 0.77 + 0.5, 1.0]
  )
  with pytest.raises(InputError, match='score_values'):
    labels.class_score_values(scores, t, 'median')
