"""The regressors of `--mode=baseline` and their Optuna search spaces (scikit-learn estimators).

`make_model` builds the unfitted estimator of `config.baseline` for one set of hyper-parameters;
`suggest` samples those hyper-parameters. memjax/experiments/baselines.py runs the folds.
"""

import ml_collections
import numpy as np
import optuna
from sklearn import (
  compose,
  kernel_approximation,
  linear_model,
  neighbors,
  pipeline,
  preprocessing,
  svm,
  tree,
)

RIDGE_CV_ALPHAS = np.logspace(-3, 6, 37)  # ridge_cv's grid: 4 per decade


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
