"""--mode=baseline: SVR / KNN / tree on tiny data, the MLP's folds, tuning inside training folds."""

import math
import os

import numpy as np
import pytest

from memjax import datasets, fold_data, results
from memjax.errors import InputError
from memjax.experiments import baselines, fold_predictions


def _config(test_config, method: str):
  config = test_config
  config.data.synthetic.num_examples = 400
  config.baseline.method = method
  config.baseline.num_trials = 3
  config.baseline.startup_trials = 2
  config.baseline.tune_rows = 150
  config.baseline.nystroem_components = 40
  return config


@pytest.mark.parametrize('method', baselines.METHODS)
def test_finite_spearman_on_exactly_the_mlp_folds(test_config, tmp_path, method):
  config = _config(test_config, method)
  summary = baselines.run(config, str(tmp_path))
  assert summary['method'] == method and summary['features'] == ['cnn', 'semantic']
  assert summary['dataset'] == 'synthetic' and summary['protocol'] == 'cv5'
  assert (summary['approximation'] is None) == (method != 'svr')
  rho = [f['spearman'] for f in summary['folds']]
  assert all(math.isfinite(r) for r in rho) and summary['spearman_mean'] > 0.1
  assert summary['spearman_mean'] == pytest.approx(np.mean(rho))
  assert summary['spearman_std'] == pytest.approx(np.std(rho, ddof=1))
  on_disk = results.read_json(os.path.join(tmp_path, 'summary.json'))
  assert on_disk['spearman_mean'] == pytest.approx(summary['spearman_mean'])

  # The MLP's own fold plan: same test rows, same labels.
  plans = fold_data.plan_folds(config, datasets.load(config))
  for fold, plan in enumerate(plans):
    fdir = results.fold_dir(str(tmp_path), fold)
    preds = fold_predictions.load(os.path.join(fdir, 'predictions.npz'))
    np.testing.assert_array_equal(preds['rows'], plan.split.test)
    np.testing.assert_array_equal(preds['true'], plan.scores[plan.split.test])
    ev = results.read_json(os.path.join(fdir, 'eval.json'))
    assert ev['spearman'] == pytest.approx(rho[fold])
    assert ev['num_test'] == plan.split.test.size and ev['num_tune'] == 150
    assert ev['num_fit'] == plan.split.train.size + plan.split.val.size


def test_tuning_and_fitting_never_see_test_rows(test_config, tmp_path, monkeypatch):
  config = _config(test_config, 'knn')
  calls = []
  real = baselines.fit_predict

  def spy(cfg, params, x, y, fit_rows, predict_rows, seed):
    calls.append((fit_rows.copy(), predict_rows.copy()))
    return real(cfg, params, x, y, fit_rows, predict_rows, seed)

  monkeypatch.setattr(baselines, 'fit_predict', spy)
  config.data.run_folds = (0,)
  baselines.run(config, str(tmp_path))
  split = fold_data.plan_folds(config, datasets.load(config))[0].split
  tuning, final = calls[:-1], calls[-1]
  assert len(tuning) == config.baseline.num_trials
  for fit, predict in tuning:
    assert set(fit) <= set(split.train)  # a subsample of the training rows
    np.testing.assert_array_equal(predict, split.val)
  np.testing.assert_array_equal(final[0], np.union1d(split.train, split.val))
  np.testing.assert_array_equal(final[1], split.test)


def test_exact_svr_with_a_subsample_is_recorded_and_resumes(test_config, tmp_path):
  config = _config(test_config, 'svr')
  config.baseline.approximation = 'none'
  config.baseline.fit_rows = 200
  summary = baselines.run(config, str(tmp_path))
  assert summary['approximation'] == 'none (exact RBF SVR)' and summary['fit_rows'] == 200
  assert all(f['num_fit'] == 200 for f in summary['folds'])
  eval_path = os.path.join(tmp_path, 'fold_0', 'eval.json')
  mtime = os.path.getmtime(eval_path)
  again = baselines.run(config, str(tmp_path))  # finished folds are skipped
  assert os.path.getmtime(eval_path) == mtime
  assert again['spearman_mean'] == pytest.approx(summary['spearman_mean'])


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('method', 'forest', 'config.baseline.method'),
    ('approximation', 'rff', 'config.baseline.approximation'),
    ('num_trials', 0, 'config.baseline.num_trials'),
  ],
)
def test_bad_config_is_an_input_error(test_config, tmp_path, field, value, message):
  config = _config(test_config, 'svr')
  config.baseline[field] = value
  with pytest.raises(InputError, match=message):
    baselines.run(config, str(tmp_path))


def test_missing_feature_is_an_input_error(test_config, tmp_path):
  config = _config(test_config, 'tree')
  config.features = ('cnn', 'clip')
  with pytest.raises(InputError, match='clip'):
    baselines.run(config, str(tmp_path))
