"""--mode=baseline: SVR / ridge / KNN / tree on tiny data, the MLP's folds, tuning inside training
folds, the exact SVR and ridge equal to scikit-learn's own, calibration fields."""

import math
import os

import numpy as np
import pytest
from sklearn import linear_model, pipeline, preprocessing, svm

from memjax import datasets, fold_data, metrics, results, schema
from memjax.errors import InputError
from memjax.experiments import baselines, fold_predictions
from memjax.schema import names


def _config(test_config, method: str):
  config = test_config
  config.data.synthetic.num_examples = 400
  config.baseline.method = method
  config.baseline.num_trials = 3
  config.baseline.startup_trials = 2
  config.baseline.tune_rows = 150
  config.baseline.nystroem_components = 40
  return config


@pytest.mark.parametrize('method', names.METHODS)
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
    assert ev['num_test'] == plan.split.test.size
    assert ev['num_tune'] == (0 if method == 'ridge_cv' else 150)
    assert ev['num_fit'] == plan.split.train.size + plan.split.val.size
    calibration = metrics.calibration(preds['pred'], preds['true'])
    for key in ('pearson', 'mse', 'pred_min', 'pred_p05', 'pred_p95', 'true_max', 'range_ratio'):
      assert ev[key] == pytest.approx(calibration[key])
  assert summary['pearson_mean'] == pytest.approx(np.mean([f['pearson'] for f in summary['folds']]))
  assert summary['calibration']['pred_p95'] == pytest.approx(
    np.mean([f['pred_p95'] for f in summary['folds']])
  )


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
    ('tune_folds', 1, 'config.baseline.tune_folds'),
  ],
)
def test_bad_config_is_an_input_error(test_config, field, value, message):
  """The schema stops a bad baseline config before the mode runs (`memjax baseline`)."""
  config = _config(test_config, 'svr')
  config.baseline[field] = value
  with pytest.raises(InputError, match=message):
    schema.validate(config, 'baseline')


def test_missing_feature_is_an_input_error(test_config, tmp_path):
  config = _config(test_config, 'tree')
  config.features = ('cnn', 'clip')
  with pytest.raises(InputError, match='clip'):
    baselines.run(config, str(tmp_path))


def _features(config) -> tuple[np.ndarray, fold_data.FoldPlan]:
  data = datasets.load(config)
  x = np.hstack([np.asarray(data.features[n], np.float32) for n in config.features])
  return x, fold_data.plan_folds(config, data)[0]


@pytest.mark.parametrize('method', ['svr', 'ridge', 'ridge_cv'])
def test_exact_svr_and_ridge_are_scikit_learns_own(test_config, tmp_path, method):
  config = _config(test_config, method)
  config.baseline.approximation = 'none'
  config.baseline.tune_rows = 0
  config.data.run_folds = (0,)
  baselines.run(config, str(tmp_path))
  ev = results.read_json(os.path.join(tmp_path, 'fold_0', 'eval.json'))
  preds = fold_predictions.load(os.path.join(tmp_path, 'fold_0', 'predictions.npz'))
  x, plan = _features(config)
  params = ev['params']
  if method == 'svr':
    assert ev['approximation'] == 'none (exact RBF SVR)'
    assert set(params) == {'C', 'epsilon', 'gamma'}
    estimator = svm.SVR(kernel='rbf', **params)
  elif method == 'ridge':
    assert ev['approximation'] is None and set(params) == {'alpha'}
    estimator = linear_model.Ridge(**params)
  else:  # no search: RidgeCV's leave-one-out on the fitted rows picks alpha
    assert ev['num_trials'] == 0 and ev['num_tune'] == 0 and ev['val_spearman'] is None
    estimator = linear_model.RidgeCV(alphas=np.logspace(-3, 6, 37))
  rows = np.union1d(plan.split.train, plan.split.val)
  direct = pipeline.make_pipeline(preprocessing.StandardScaler(), estimator)
  direct.fit(x[rows], plan.scores[rows])
  if method == 'ridge_cv':
    assert params == {'alpha': pytest.approx(direct[-1].alpha_)}
  expected = direct.predict(x[plan.split.test])
  np.testing.assert_allclose(preds['pred'], expected, rtol=0, atol=1e-6)
  assert np.std(expected) > 1e-3  # a real fit, not a constant
  assert ev['spearman'] == pytest.approx(metrics.spearman(expected, plan.scores[plan.split.test]))


@pytest.mark.parametrize('method', ['svr', 'ridge', 'ridge_cv'])
def test_scikit_learn_never_fits_or_scales_with_test_rows(
  test_config, tmp_path, monkeypatch, method
):
  config = _config(test_config, method)
  config.baseline.approximation = 'none'
  config.data.run_folds = (0,)
  fits, predicts = [], []
  real_fit, real_predict = pipeline.Pipeline.fit, pipeline.Pipeline.predict

  def fit_spy(self, x, y=None, **kwargs):
    fits.append((np.array(x), self))
    return real_fit(self, x, y, **kwargs)

  def predict_spy(self, x, **kwargs):
    predicts.append(np.array(x))
    return real_predict(self, x, **kwargs)

  monkeypatch.setattr(pipeline.Pipeline, 'fit', fit_spy)
  monkeypatch.setattr(pipeline.Pipeline, 'predict', predict_spy)
  baselines.run(config, str(tmp_path))
  x, plan = _features(config)
  split = plan.split
  row_of = {row.tobytes(): i for i, row in enumerate(x)}
  assert len(row_of) == x.shape[0]  # every row is identifiable by its features

  def rows(matrix):
    return np.array([row_of[r.tobytes()] for r in matrix])

  num_trials = 0 if method == 'ridge_cv' else config.baseline.num_trials
  assert len(fits) == len(predicts) == num_trials + 1
  for (fitted, _), predicted in zip(fits[:-1], predicts[:-1], strict=True):  # tuning trials
    assert set(rows(fitted)) <= set(split.train) and rows(fitted).size == 150
    np.testing.assert_array_equal(rows(predicted), split.val)
  final_x, final_model = fits[-1]
  trainval = np.union1d(split.train, split.val)
  np.testing.assert_array_equal(rows(final_x), trainval)
  np.testing.assert_array_equal(rows(predicts[-1]), split.test)
  assert not any(set(rows(f)) & set(split.test) for f, _ in fits)
  scaler = final_model.steps[0][1]  # standardised with the fitted rows' own statistics
  np.testing.assert_allclose(scaler.mean_, x[trainval].astype(np.float64).mean(0), atol=1e-5)
  np.testing.assert_allclose(scaler.scale_, x[trainval].astype(np.float64).std(0), rtol=1e-4)


def test_every_planned_fold_of_every_fold_seed_is_run_and_summarised(
  test_config, tmp_path, monkeypatch
):
  config = _config(test_config, 'ridge')
  real_plan = fold_data.plan_folds

  def two_fold_seeds(cfg, data):  # what config.data.fold_seeds=(0, 1) plans: 2 x 2 folds
    other = cfg.copy_and_resolve_references()
    other.seed = cfg.seed + 1
    return real_plan(cfg, data) + real_plan(other, data)

  monkeypatch.setattr(fold_data, 'plan_folds', two_fold_seeds)
  summary = baselines.run(config, str(tmp_path))
  plans = two_fold_seeds(config, datasets.load(config))
  assert len(summary['folds']) == len(plans) == 4
  for fold, plan in enumerate(plans):
    preds = fold_predictions.load(os.path.join(tmp_path, f'fold_{fold}', 'predictions.npz'))
    np.testing.assert_array_equal(preds['rows'], plan.split.test)
  assert not np.array_equal(plans[0].split.test, plans[2].split.test)
  rho = [f['spearman'] for f in summary['folds']]
  assert summary['spearman_mean'] == pytest.approx(np.mean(rho))
  assert summary['spearman_std'] == pytest.approx(np.std(rho, ddof=1))
  assert summary['mse_std'] == pytest.approx(np.std([f['mse'] for f in summary['folds']], ddof=1))


def test_tune_folds_cross_validates_inside_train_and_val_rows(test_config, tmp_path, monkeypatch):
  config = _config(test_config, 'ridge')
  config.baseline.tune_rows = 0
  config.baseline.tune_folds = 3  # set here until configs/default.py has the field
  config.data.run_folds = (0,)
  calls = []
  real = baselines.fit_predict

  def spy(cfg, params, x, y, fit_rows, predict_rows, seed):
    calls.append((fit_rows.copy(), predict_rows.copy()))
    return real(cfg, params, x, y, fit_rows, predict_rows, seed)

  monkeypatch.setattr(baselines, 'fit_predict', spy)
  summary = baselines.run(config, str(tmp_path))
  split = fold_data.plan_folds(config, datasets.load(config))[0].split
  trainval = np.union1d(split.train, split.val)
  tuning, final = calls[:-1], calls[-1]
  assert len(tuning) == 3 * config.baseline.num_trials
  for t in range(config.baseline.num_trials):
    inner = tuning[3 * t : 3 * t + 3]
    scored = np.concatenate([s for _, s in inner])
    np.testing.assert_array_equal(np.sort(scored), trainval)  # each row scored once per trial
    for fitted, scored_rows in inner:
      np.testing.assert_array_equal(np.union1d(fitted, scored_rows), trainval)
      assert not set(fitted) & set(scored_rows)
  np.testing.assert_array_equal(final[0], trainval)
  np.testing.assert_array_equal(final[1], split.test)
  fold = summary['folds'][0]
  assert fold['tune_folds'] == 3 and fold['num_tune'] == trainval.size
  config.baseline.tune_folds = 1
  with pytest.raises(InputError, match='config.baseline.tune_folds'):
    baselines.run(config, str(tmp_path / 'bad'))
