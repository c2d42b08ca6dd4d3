"""labels.py's refusals and output types, word for word (added for mutants that survived the
first mutation run: every message and dtype promise here was unchecked)."""

import numpy as np
import pytest

from memjax import labels
from memjax.errors import InputError

NOT_SCORES = 'quantile_thresholds needs a non-empty 1-D array of finite scores.'


@pytest.mark.parametrize(
  'scores',
  [np.zeros((4, 2)), np.zeros(0), np.array([0.1, np.nan, 0.3, 0.4]), np.array([0.2, np.inf])],
  ids=['2-D', 'empty', 'nan', 'inf'],
)
def test_not_a_score_vector(scores):
  with pytest.raises(InputError) as e:
    labels.quantile_thresholds(scores, 2)
  assert str(e.value) == NOT_SCORES


def test_one_score_is_too_few_for_two_classes():
  with pytest.raises(InputError) as e:
    labels.quantile_thresholds(np.array([0.5]), 2)
  assert str(e.value) == (
    'config.num_classes=2 needs 2 non-empty score classes, but the 1 training scores have only 1 '
    'distinct values (thresholds [0.5], class sizes [1, 0]); use a smaller config.num_classes.'
  )


def test_an_empty_top_class_is_refused():
  # The median is the largest score: every score sits in the lower class. Strictly increasing
  # thresholds alone would not see it; the class sizes do.
  with pytest.raises(InputError) as e:
    labels.quantile_thresholds(np.array([0.123456, 1.0, 1.0, 1.0]), 2)
  assert str(e.value) == (
    'config.num_classes=2 needs 2 non-empty score classes, but the 4 training scores are too '
    'tied for that, with 2 distinct values (thresholds [1.0], class sizes [4, 0]); use a smaller '
    'config.num_classes.'
  )


def test_thresholds_are_rounded_to_four_places_in_the_message():
  scores = np.array([0.123456] + [0.654321] * 3)
  with pytest.raises(InputError, match=r'too tied .* 2 distinct values \(thresholds \[0\.6543\]'):
    labels.quantile_thresholds(scores, 2)


def test_float64_whatever_the_input_dtype():
  scores = np.linspace(0.1, 0.9, 9, dtype=np.float32)
  t = labels.quantile_thresholds(scores, 3)
  assert t.dtype == np.float64
  values = labels.class_score_values(scores, t.astype(np.float32), 'upper_threshold')
  assert values.dtype == np.float64 and values.shape == (3,)
  means = labels.class_score_values(scores, t, 'class_mean')
  assert means.dtype == np.float64
  np.testing.assert_allclose(means, [0.2, 0.5, 0.8], rtol=1e-6)


def test_class_means_have_one_value_per_class_even_when_one_is_empty():
  # Stored thresholds applied to other scores may leave the top class empty: still K values.
  with np.errstate(invalid='ignore', divide='ignore'):
    values = labels.class_score_values(
      np.array([0.1, 0.2, 0.3]), np.array([0.15, 0.5]), 'class_mean'
    )
  assert values.shape == (3,)
  np.testing.assert_allclose(values[:2], [0.1, 0.25])
  assert np.isnan(values[2])
