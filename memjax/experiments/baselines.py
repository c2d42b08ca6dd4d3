"""`--mode=baseline`: classical regressors (the paper's Table 1 SVR, KNN and tree; ridge).

Every fold is the MLP's own (`fold_data.plan_folds`), so a baseline and an MLP on the same config
are scored on exactly the same test rows and labels, with the same `metrics.spearman`:

1. **Tuning, inside the training fold only.** Optuna's TPE sampler proposes hyper-parameters
   (`config.baseline.num_trials` per fold); each proposal is fitted on a seeded subsample of the
   fold's training rows (`tune_rows`) and scored by Spearman on the fold's validation rows (the
   rows the MLP uses to pick its checkpoint). The test rows are never seen.
2. **Final fit** of the best proposal on the training + validation rows (a seeded subsample of
   `fit_rows` when set), then one prediction of the test rows.

Features are the concatenation of `config.features`, standardised with the statistics of the
rows each model is fitted on (a `StandardScaler` pipeline step: training rows while tuning,
training + validation rows for the final fit).

* **Exact SVR** (`method='svr'`, `approximation='none'`): exactly scikit-learn's
  `make_pipeline(StandardScaler(), SVR(kernel='rbf', C=C, epsilon=epsilon, gamma=gamma))` on the
  raw scores; the recorded `params` are those three in scikit-learn's own units, so the fold's
  model can be refitted outside memjax. The search space is scaled by the fold's training
  scores (C and epsilon in multiples of their SD, gamma in multiples of 1/num_features, which is
  `gamma='scale'` for standardised features). Costs O(n^2 d) per fit: right for small and
  medium data (thousands of rows), too slow for ~47k x 5120 LaMem rows.
* **Nystroem SVR** (`approximation='nystroem'`, for LaMem sizes): the rows go through a Nystroem
  approximation of the same RBF kernel (`nystroem_components` landmarks) and a linear SVR is
  fitted there on the standardised target (squared epsilon-insensitive loss, solved in the
  primal: fast when rows outnumber components).
* **Ridge** (`method='ridge'`): `make_pipeline(StandardScaler(), Ridge(alpha=alpha))`, alpha
  tuned like the others. `method='ridge_cv'` has no Optuna search and no validation-row tuning:
  `make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_CV_ALPHAS))` fitted on the training +
  validation rows picks alpha by its efficient leave-one-out error on those rows (less noisy than
  a few hundred validation rows on small data); the chosen alpha is recorded.
* KNN and the decision tree fit the standardised target.

What was used is recorded in `eval.json` and `summary.json` (`approximation`, `num_tune`,
`num_fit`), beside the `method`, `features` and the fold's best `params`. Each fold's
`eval.json` carries the calibration fields of `metrics.regression_metrics` (Pearson, MSE, the
predicted vs true range), and `summary.json` their mean over folds (`metrics.fold_summary`);
with repeated cross-validation (`config.data.fold_seeds`) every fold of every fold seed is one
entry of `folds`, and `spearman_mean` / `spearman_std` are over all of them.
"""

import math
import os
import time
import warnings

import ml_collections
import numpy as np
import optuna
from absl import logging
from sklearn import (
  compose,
  exceptions,
  kernel_approximation,
  linear_model,
  neighbors,
  pipeline,
  preprocessing,
  svm,
  tree,
)

from memjax import datasets, evaluate, fold_data, metrics, results
from memjax.errors import InputError
from memjax.experiments import fold_predictions

METHODS = ('svr', 'ridge', 'ridge_cv', 'knn', 'tree')
RIDGE_CV_ALPHAS = np.logspace(-3, 6, 37)  # ridge_cv's grid: 4 per decade
APPROXIMATIONS = ('nystroem', 'none')


def check_config(cfg: ml_collections.ConfigDict) -> None:
  """Validates `config.baseline`.

  Raises:
    InputError: naming the bad field and what was expected.
  """
  if cfg.method not in METHODS:
    raise InputError(f'config.baseline.method must be one of {METHODS}, got {cfg.method!r}.')
  if cfg.approximation not in APPROXIMATIONS:
    raise InputError(
      f'config.baseline.approximation must be one of {APPROXIMATIONS}, got {cfg.approximation!r}.'
    )
  for field in ('num_trials', 'nystroem_components'):
    if cfg[field] < 1:
      raise InputError(f'config.baseline.{field} must be >= 1, got {cfg[field]}.')
  for field in ('tune_rows', 'fit_rows', 'startup_trials'):
    if cfg[field] < 0:
      raise InputError(f'config.baseline.{field} must be >= 0 (0: all), got {cfg[field]}.')


def approximation_of(cfg: ml_collections.ConfigDict) -> str | None:
  """What `results` record as the approximation: a string for SVR, None for the others."""
  if cfg.method != 'svr':
    return None
  if cfg.approximation == 'none':
    return 'none (exact RBF SVR)'
  return f'nystroem ({cfg.nystroem_components} components) + linear SVR'


def feature_matrix(data: datasets.MemorabilityData, names) -> np.ndarray:
  """The features `names` of every row, concatenated ([N, sum of dims], float32).

  Raises:
    InputError: a feature is missing, or the data computes features on the fly.
  """
  if data.extractors is not None:
    raise InputError(
      'baselines need stored features: run --mode=extract and set config.data.features_dir '
      '(config.data.on_the_fly=True has no feature rows to fit).'
    )
  data.feature_dims(names)  # raises for missing features
  return np.hstack([np.asarray(data.features[n], np.float32) for n in names])


def subsample(rows: np.ndarray, size: int, seed) -> np.ndarray:
  """A seeded subsample of `size` of `rows` (sorted), or all of them when size is 0 or larger."""
  if size == 0 or size >= rows.size:
    return rows
  return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


def is_exact_svr(cfg: ml_collections.ConfigDict) -> bool:
  """Whether `cfg` is the exact RBF SVR (scikit-learn's `SVR` on the raw scores)."""
  return cfg.method == 'svr' and cfg.approximation == 'none'


def suggest(
  trial: optuna.Trial,
  cfg: ml_collections.ConfigDict,
  num_rows: int,
  num_features: int,
  score_sd: float,
) -> dict:
  """The search space of `cfg.method`.

  Args:
    trial: the Optuna trial that samples.
    cfg: `config.baseline`.
    num_rows: rows a trial fits (bounds KNN's neighbours).
    num_features: feature columns (the exact SVR's gamma is in multiples of 1 / num_features).
    score_sd: SD of the fold's training scores (the exact SVR's C and epsilon are in multiples
      of it, so the space is the same as SVR's on standardised scores).
  """
  if is_exact_svr(cfg):
    return {
      'C': trial.suggest_float('C', 1e-2 * score_sd, 1e2 * score_sd, log=True),
      'epsilon': trial.suggest_float('epsilon', 1e-3 * score_sd, score_sd, log=True),
      'gamma': trial.suggest_float('gamma', 0.03 / num_features, 10.0 / num_features, log=True),
    }
  if cfg.method == 'svr':
    return {
      'C': trial.suggest_float('C', 1e-2, 1e2, log=True),
      'epsilon': trial.suggest_float('epsilon', 1e-3, 1.0, log=True),
      'gamma_scale': trial.suggest_float('gamma_scale', 0.03, 10.0, log=True),
    }
  if cfg.method == 'ridge':
    return {'alpha': trial.suggest_float('alpha', 1e-3, 1e6, log=True)}
  if cfg.method == 'knn':
    return {
      'n_neighbors': trial.suggest_int('n_neighbors', 1, max(1, min(256, num_rows)), log=True),
      'weights': trial.suggest_categorical('weights', ['uniform', 'distance']),
      'metric': trial.suggest_categorical('metric', ['euclidean', 'cosine']),
    }
  return {
    'max_depth': trial.suggest_int('max_depth', 2, 32),
    'min_samples_leaf': trial.suggest_int('min_samples_leaf', 1, 256, log=True),
    'max_features': trial.suggest_float('max_features', 0.05, 1.0),
  }


def make_model(
  cfg: ml_collections.ConfigDict, params: dict, num_features: int, num_rows: int, seed: int
):
  """An unfitted scikit-learn regressor whose first step standardises the features.

  The exact SVR and ridge are plain pipelines on the raw scores (scikit-learn's own estimators
  with `params`); the Nystroem SVR (RBF width `gamma_scale / num_features`), KNN and the tree
  fit the standardised target. Nystroem landmarks and KNN's neighbours are capped at the
  `num_rows` the model will be fitted on.
  """
  scaler = preprocessing.StandardScaler()
  if is_exact_svr(cfg):
    return pipeline.make_pipeline(scaler, svm.SVR(kernel='rbf', **params))
  if cfg.method == 'ridge':
    return pipeline.make_pipeline(scaler, linear_model.Ridge(**params))
  if cfg.method == 'ridge_cv':
    return pipeline.make_pipeline(scaler, linear_model.RidgeCV(alphas=RIDGE_CV_ALPHAS))
  steps = [scaler]
  if cfg.method == 'svr':
    steps += [
      kernel_approximation.Nystroem(
        kernel='rbf',
        gamma=params['gamma_scale'] / num_features,
        n_components=min(cfg.nystroem_components, num_rows),
        random_state=seed,
      ),
      svm.LinearSVR(
        C=params['C'],
        epsilon=params['epsilon'],
        loss='squared_epsilon_insensitive',
        dual=False,
        max_iter=1000,  # bounded: large C converges slowly; a warning is logged
        random_state=seed,
      ),
    ]
  elif cfg.method == 'knn':
    knn = {**params, 'n_neighbors': min(params['n_neighbors'], num_rows)}
    steps.append(neighbors.KNeighborsRegressor(**knn, algorithm='brute'))
  else:
    steps.append(tree.DecisionTreeRegressor(**params, random_state=seed))
  return compose.TransformedTargetRegressor(
    regressor=pipeline.make_pipeline(*steps), transformer=preprocessing.StandardScaler()
  )


def fit(cfg, params, x, y, fit_rows, seed):
  """The model of `make_model` fitted on `fit_rows` (convergence warnings are logged once)."""
  model = make_model(cfg, params, x.shape[1], fit_rows.size, seed)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always', exceptions.ConvergenceWarning)
    model.fit(x[fit_rows], y[fit_rows])
  if any(issubclass(w.category, exceptions.ConvergenceWarning) for w in caught):
    logging.log_first_n(
      logging.WARNING, 'baseline %s did not converge for %s', 5, cfg.method, params
    )
  return model


def fit_predict(cfg, params, x, y, fit_rows, predict_rows, seed) -> np.ndarray:
  """Fits on `fit_rows` and predicts `predict_rows`."""
  model = fit(cfg, params, x, y, fit_rows, seed)
  return np.asarray(model.predict(x[predict_rows]), np.float64)


def _finite(value: float) -> float:
  """A Spearman fit for an objective: NaN (constant predictions) counts as no correlation."""
  return value if math.isfinite(value) else 0.0


def tune(cfg, x, plan: fold_data.FoldPlan, seed: int) -> tuple[dict, float, np.ndarray]:
  """Optuna TPE search of `cfg.method` on the fold's training rows, scored on its val rows.

  Only training rows are fitted and only validation rows predicted; the search space reads the
  training scores alone (their SD).

  Returns:
    (best params, best validation Spearman, the training rows each trial fitted).
  """
  split = plan.split
  if split.val.size < 2:
    raise InputError(
      f'{plan.name} has {split.val.size} validation rows; baselines tune on them: raise '
      'config.data.val_fraction.'
    )
  tune_rows = subsample(split.train, cfg.tune_rows, [seed, 1])
  y_val = plan.scores[split.val]
  score_sd = float(np.std(plan.scores[split.train]))
  if not score_sd > 0:
    raise InputError(f'{plan.name}: every training score is the same; nothing to regress.')

  def objective(trial: optuna.Trial) -> float:
    params = suggest(trial, cfg, tune_rows.size, x.shape[1], score_sd)
    pred = fit_predict(cfg, params, x, plan.scores, tune_rows, split.val, seed)
    return _finite(metrics.spearman(pred, y_val))

  sampler = optuna.samplers.TPESampler(
    seed=seed, n_startup_trials=min(cfg.startup_trials, cfg.num_trials)
  )
  study = optuna.create_study(direction='maximize', sampler=sampler)
  study.optimize(objective, n_trials=cfg.num_trials)
  return dict(study.best_params), float(study.best_value), tune_rows


def run_fold(config, data, x, plan: fold_data.FoldPlan, fold: int, workdir: str) -> dict:
  """Tunes, fits and scores one fold; writes `fold_K/eval.json` and `fold_K/predictions.npz`."""
  cfg = config.baseline
  start = time.time()
  seed = int(config.seed) * 1000 + fold
  split = plan.split
  fit_rows = subsample(np.union1d(split.train, split.val), cfg.fit_rows, [seed, 2])
  if cfg.method == 'ridge_cv':  # alpha by leave-one-out on the fitted rows: no search
    model = fit(cfg, {}, x, plan.scores, fit_rows, seed)
    pred = np.asarray(model.predict(x[split.test]), np.float64)
    params, val_spearman, tune_rows = {'alpha': float(model[-1].alpha_)}, None, fit_rows[:0]
  else:
    params, val_spearman, tune_rows = tune(cfg, x, plan, seed)
    pred = fit_predict(cfg, params, x, plan.scores, fit_rows, split.test, seed)
  true = plan.scores[split.test]
  result = {
    **metrics.regression_metrics(pred, true),
    'fold': fold,
    'name': plan.name,
    'method': cfg.method,
    'params': params,
    'val_spearman': val_spearman,
    'num_trials': 0 if cfg.method == 'ridge_cv' else cfg.num_trials,
    'approximation': approximation_of(cfg),
    'num_tune': int(tune_rows.size),
    'num_fit': int(fit_rows.size),
    'num_train': int(split.train.size),
    'num_val': int(split.val.size),
    'num_test': int(split.test.size),
    'wall_seconds': time.time() - start,
  }
  fdir = results.fold_dir(workdir, fold)
  fold_predictions.save(
    os.path.join(fdir, fold_predictions.PREDICTIONS_FILE),
    split.test,
    data.ids[split.test],
    true,
    pred,
  )
  results.write_json(os.path.join(fdir, results.EVAL_FILE), result)
  logging.info(
    'fold %d: %s test Spearman %.4f (val %s, params %s, %.0f s)',
    fold,
    cfg.method,
    result['spearman'],
    'not used' if val_spearman is None else f'{val_spearman:.4f}',
    params,
    result['wall_seconds'],
  )
  return result


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=baseline`: every fold of `config.baseline.method`; resumes by skipping finished folds.

  Returns:
    The summary (also `WORKDIR/summary.json`): the MLP's fields `dataset`, `protocol`,
    `features`, `folds` (every fold `fold_data.plan_folds` plans, all fold seeds),
    `spearman_mean`, `spearman_std` and the calibration of `metrics.fold_summary`, plus
    `method` and `approximation`.
  """
  start = time.time()
  check_config(config.baseline)
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  data = datasets.load(config)
  results.write_json(os.path.join(workdir, results.CONFIG_FILE), config.to_dict())
  x = feature_matrix(data, config.features)
  logging.info(
    '%s; baseline %s on %s (%d dims)',
    data.description,
    config.baseline.method,
    list(config.features),
    x.shape[1],
  )
  plans = fold_data.plan_folds(config, data)
  fold_results = []
  for fold in evaluate.folds_to_run(config, len(plans)):
    eval_path = os.path.join(results.fold_dir(workdir, fold), results.EVAL_FILE)
    if os.path.exists(eval_path):
      logging.info('fold %d already finished (%s); skipping', fold, eval_path)
      fold_results.append(results.read_json(eval_path))
      continue
    fold_results.append(run_fold(config, data, x, plans[fold], fold, workdir))
  rho = np.array([np.nan if r['spearman'] is None else r['spearman'] for r in fold_results])
  summary = {
    'dataset': data.name,
    'synthetic': data.synthetic,
    'data_description': data.description,
    'protocol': config.data.protocol,
    'label_version': data.label_version if config.data.protocol == 'cv5' else None,
    'method': config.baseline.method,
    'features': list(config.features),
    'approximation': approximation_of(config.baseline),
    'num_trials': 0 if config.baseline.method == 'ridge_cv' else config.baseline.num_trials,
    'tune_rows': config.baseline.tune_rows,
    'fit_rows': config.baseline.fit_rows,
    'folds': fold_results,
    'spearman_mean': float(rho.mean()),
    'spearman_std': float(rho.std(ddof=1)) if rho.size > 1 else 0.0,
    **metrics.fold_summary(fold_results),
    'ceiling': data.ceiling,
    'mode': 'baseline',
    'wall_seconds': time.time() - start,
  }
  results.write_json(os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info(
    '%s mean test Spearman over %d folds: %.4f +- %.4f',
    config.baseline.method,
    len(fold_results),
    summary['spearman_mean'],
    summary['spearman_std'],
  )
  return summary
