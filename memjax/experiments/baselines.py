"""`--mode=baseline`: classical regressors (the paper's Table 1 SVR, KNN and tree; ridge).

Every fold is the MLP's own (`fold_data.plan_folds`), so a baseline and an MLP on the same config
are scored on exactly the same test rows and labels, with the same `metrics.spearman`:

1. **Tuning, inside the training fold only.** Optuna's TPE sampler proposes hyper-parameters
   (`config.baseline.num_trials` per fold); each proposal is fitted on a seeded subsample of the
   fold's training rows (`tune_rows`) and scored by Spearman on the fold's validation rows (the
   rows the MLP uses to pick its checkpoint). With `config.baseline.tune_folds=k` each proposal is
   instead scored by the mean Spearman of a seeded k-fold cross-validation inside the training +
   validation rows: much less noisy when the validation rows are a few hundred. The test rows are
   never seen.
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
  `make_pipeline(StandardScaler(), RidgeCV(alphas=baseline_models.RIDGE_CV_ALPHAS))` fitted on
  the training + validation rows picks alpha by its efficient leave-one-out error on those rows
  (less noisy than a few hundred validation rows on small data); the chosen alpha is recorded.
* KNN and the decision tree fit the standardised target.

What was used is recorded in `eval.json` and `summary.json` (`approximation`, `num_tune`,
`num_fit`), beside the `method`, `features` and the fold's best `params`. Each fold's
`eval.json` carries the calibration fields of `metrics.regression_metrics` (Pearson, MSE, the
predicted vs true range), and `summary.json` their mean over folds (`metrics.fold_summary`);
with repeated cross-validation (`config.data.fold_seeds`) every fold of every fold seed is one
entry of `folds`, and `spearman_mean` / `spearman_std` are over all of them.
"""

import functools
import math
import os
import time
import warnings

import ml_collections
import numpy as np
import optuna
from absl import logging
from sklearn import exceptions, model_selection

from memjax import datasets, fold_data, folds, metrics, results, run_record
from memjax.errors import InputError
from memjax.experiments import baseline_models, fold_predictions


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


def fit(cfg, params, x, y, fit_rows, seed):
  """The model of `make_model` fitted on `fit_rows` (convergence warnings are logged once)."""
  model = baseline_models.make_model(cfg, params, x.shape[1], fit_rows.size, seed)
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


def tune_folds_of(cfg: ml_collections.ConfigDict) -> int:
  """`config.baseline.tune_folds`, checked.

  Raises:
    InputError: 1 or a negative number.
  """
  value = int(cfg.tune_folds)
  if value == 1 or value < 0:
    raise InputError(
      f'config.baseline.tune_folds must be 0 (tune on the val rows) or >= 2, got {value}.'
    )
  return value


def tuning_splits(cfg, plan: fold_data.FoldPlan, seed) -> list[tuple[np.ndarray, np.ndarray]]:
  """The (fitted rows, scored rows) pairs every tuning trial is judged on.

  By default the fold's (training rows, validation rows), as the MLP picks checkpoints; with
  `tune_folds=k`, a seeded k-fold cross-validation inside the fold's training + validation rows
  (less noisy on small data: every such row is scored once per trial). Test rows never appear.

  Raises:
    InputError: too few validation rows, or too few rows for the inner folds.
  """
  split = plan.split
  folds_inner = tune_folds_of(cfg)
  if not folds_inner:
    if split.val.size < 2:
      raise InputError(
        f'{plan.name} has {split.val.size} validation rows; baselines tune on them: raise '
        'config.data.val_fraction.'
      )
    return [(subsample(split.train, cfg.tune_rows, [seed, 1]), split.val)]
  rows = subsample(np.union1d(split.train, split.val), cfg.tune_rows, [seed, 1])
  if rows.size < 2 * folds_inner:
    raise InputError(
      f'{plan.name} has {rows.size} rows to tune on, too few for config.baseline.tune_folds='
      f'{folds_inner}.'
    )
  inner = model_selection.KFold(folds_inner, shuffle=True, random_state=seed)
  return [(rows[fit], rows[scored]) for fit, scored in inner.split(rows)]


def tune(cfg, x, plan: fold_data.FoldPlan, seed: int) -> tuple[dict, float, np.ndarray]:
  """Optuna TPE search of `cfg.method`, each trial scored by Spearman on `tuning_splits`
  (the mean over them with `tune_folds`).

  Only training (and, with `tune_folds`, validation) rows are fitted and scored; the search
  space reads the training scores alone (their SD).

  Returns:
    (best params, best tuning Spearman, every row the trials fitted).
  """
  split = plan.split
  splits = tuning_splits(cfg, plan, seed)
  tune_rows = functools.reduce(np.union1d, [fitted for fitted, _ in splits])
  score_sd = float(np.std(plan.scores[split.train]))
  if not score_sd > 0:
    raise InputError(f'{plan.name}: every training score is the same; nothing to regress.')
  num_fit = min(fitted.size for fitted, _ in splits)

  def objective(trial: optuna.Trial) -> float:
    params = baseline_models.suggest(trial, cfg, num_fit, x.shape[1], score_sd)
    rho = [
      _finite(
        metrics.spearman(
          fit_predict(cfg, params, x, plan.scores, fitted, scored, seed), plan.scores[scored]
        )
      )
      for fitted, scored in splits
    ]
    return float(np.mean(rho))

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
    'tune_folds': tune_folds_of(cfg),
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
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  run_record.check_kind(workdir, 'baseline')
  data = datasets.load(config)
  changes = run_record.check(config, data, workdir, kind='baseline')
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
  for fold in folds.folds_to_run(config.data.run_folds, len(plans)):
    eval_path = os.path.join(results.fold_dir(workdir, fold), results.EVAL_FILE)
    if os.path.exists(eval_path):
      logging.info('fold %d already finished (%s); skipping', fold, eval_path)
      fold_results.append(results.read_json(eval_path))
      continue
    fold_results.append(run_fold(config, data, x, plans[fold], fold, workdir))
  summary = {
    **results.over_folds(config, data, fold_results),
    'method': config.baseline.method,
    'approximation': approximation_of(config.baseline),
    'num_trials': 0 if config.baseline.method == 'ridge_cv' else config.baseline.num_trials,
    'tune_folds': tune_folds_of(config.baseline),
    'tune_rows': config.baseline.tune_rows,
    'fit_rows': config.baseline.fit_rows,
    'mode': 'baseline',
    'wall_seconds': time.time() - start,
  }
  if changes:
    summary['resumed_with_changes'] = changes
  results.write_json(os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info('%s %s', config.baseline.method, results.mean_line(summary))
  return summary
