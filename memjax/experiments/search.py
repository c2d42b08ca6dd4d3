"""`--mode=search`: Optuna (TPE) hyper-parameter search of the fusion MLP, as in the paper.

Searched: the units of every layer (log-uniform in `config.search.units`), the dropout rate, the
activation (relu/tanh), the optimiser (adam/rmsprop/sgd) and the learning rate (log-uniform).
Objective: the mean test Spearman over the k folds, each fold trained and scored by
`train.train_and_evaluate` (`config.data.run_folds` = that fold) in the trial's own workdir
`WORKDIR/trials/trial_NNNN/`. After each fold the running mean is reported, and the median
pruner stops trials that fall behind.

The study lives in a database (`study_storage`: `WORKDIR/study.db` or `config.search.storage`).
Re-running the command resumes the study; several processes running the same command share it,
each taking the next trial, until `config.search.num_trials` trials have finished (completed or
pruned). A worker that dies (SIGKILL, lost machine) leaves its trial RUNNING; once its heartbeat
is stale the trial is failed and re-queued, and the retry continues in the dead trial's workdir,
so its finished folds are skipped and an unfinished fold resumes from its latest checkpoint. A
worker that reaches the trial budget first fails the trials whose heartbeat went stale and runs
their retries, so a dead worker's trial is never left RUNNING behind a finished search; one that
dies within `grace_secs` of the end is retried by re-running the command once it is stale.
Workers hold WORKDIR shared (`memjax/runtime/workdir_lock.py`: no train or sweep can start in it
meanwhile), and each trial directory exclusively: a retry waits until a stalled worker whose
trial was failed as stale lets go of its directory, so two processes never train in one trial
directory.

Every worker, when done, writes `WORKDIR/search.json`, `trials.csv`, `search.png` and
`best_config.py`: a config file with the best trial's values, runnable with `--config=`.
"""

import copy
import math
import os
import socket
import time
import warnings

import ml_collections
import numpy as np
import optuna
from absl import logging

from memjax import results, run_record, train
from memjax.errors import InputError
from memjax.experiments import config_export, figures, study_storage, tables
from memjax.runtime import workdir_lock

SEARCH_FILE, TRIALS_FILE, BEST_CONFIG_FILE = 'search.json', 'trials.csv', 'best_config.py'
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
WAITING = (optuna.trial.TrialState.WAITING,)


def open_study(config: ml_collections.ConfigDict, workdir: str) -> optuna.Study:
  """Creates or loads the search's study (`study_storage.open_study`): maximised, TPE sampler,
  median pruner.

  Raises:
    InputError: a storage URL that cannot be opened.
  """
  s = config.search
  return study_storage.open_study(
    study_storage.storage_url(config, workdir),
    s,
    direction='maximize',
    sampler=optuna.samplers.TPESampler(seed=s.sampler_seed, n_startup_trials=s.startup_trials),
    pruner=optuna.pruners.MedianPruner(n_startup_trials=s.pruner_startup_trials, n_warmup_steps=0),
  )


def suggest(trial: optuna.Trial, config: ml_collections.ConfigDict) -> dict:
  """Samples the search space; every layer of `config.model` gets its own width."""
  s = config.search
  params = {}
  for name in config.features:
    for i in range(len(config.model.branch_units[name])):
      params[f'units_{name}_{i}'] = trial.suggest_int(f'units_{name}_{i}', *s.units, log=True)
  for i in range(len(config.model.hidden_units)):
    params[f'units_fusion_{i}'] = trial.suggest_int(f'units_fusion_{i}', *s.units, log=True)
  params['dropout'] = trial.suggest_float('dropout', *s.dropout)
  params['activation'] = trial.suggest_categorical('activation', list(s.activations))
  params['optimizer'] = trial.suggest_categorical('optimizer', list(s.optimizers))
  params['learning_rate'] = trial.suggest_float('learning_rate', *s.learning_rate, log=True)
  return params


def apply_params(config: ml_collections.ConfigDict, params: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with a trial's parameters set."""
  out = copy.deepcopy(config)
  for name in config.features:
    width = len(config.model.branch_units[name])
    out.model.branch_units[name] = tuple(params[f'units_{name}_{i}'] for i in range(width))
  width = len(config.model.hidden_units)
  out.model.hidden_units = tuple(params[f'units_fusion_{i}'] for i in range(width))
  out.model.dropout = params['dropout']
  out.model.activation = params['activation']
  out.optimizer.name = params['optimizer']
  out.optimizer.learning_rate = params['learning_rate']
  return out


def _folds(config: ml_collections.ConfigDict) -> list[int]:
  return list(config.data.run_folds) or list(range(config.data.num_folds))


def make_objective(config: ml_collections.ConfigDict, workdir: str):
  """The objective: mean test Spearman over the folds, reported (and prunable) fold by fold."""

  def objective(trial: optuna.Trial) -> float:
    trial_config = apply_params(config, suggest(trial, config))
    # A retried trial inherits its user attributes, so it resumes in the dead trial's workdir.
    tdir = trial.user_attrs.get('workdir') or os.path.join(
      workdir, 'trials', f'trial_{trial.number:04d}'
    )
    trial.set_user_attr('workdir', tdir)
    trial.set_user_attr('worker', f'{socket.gethostname()}:{os.getpid()}')
    with workdir_lock.hold(tdir, f'search trial {trial.number}', wait=True):
      return run_folds(trial, trial_config, tdir)

  def run_folds(trial: optuna.Trial, trial_config: ml_collections.ConfigDict, tdir: str):
    rhos = []
    for step, fold in enumerate(_folds(config)):
      sub = copy.deepcopy(trial_config)
      sub.data.run_folds = (fold,)
      rho = train.train_and_evaluate(sub, tdir)['folds'][0]['spearman']
      if rho is None or not math.isfinite(rho):
        logging.warning(
          'trial %d fold %d: Spearman %s (constant predictions) counts as 0',
          trial.number,
          fold,
          rho,
        )
        rho = 0.0
      rhos.append(float(rho))
      trial.set_user_attr('fold_spearman', rhos)
      trial.report(float(np.mean(rhos)), step)
      if trial.should_prune():
        logging.info(
          'trial %d pruned after %d folds (mean %.4f)', trial.number, step + 1, np.mean(rhos)
        )
        raise optuna.TrialPruned()
    return float(np.mean(rhos))

  return objective


def _count(study: optuna.Study, states) -> int:
  return len(study.get_trials(deepcopy=False, states=states))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs trials until the study holds `config.search.num_trials` finished ones; exports results.

  Returns:
    The search summary (also `WORKDIR/search.json`).

  Raises:
    InputError: bad search config or storage, or every trial of this worker failing.
  """
  start = time.time()
  run_record.claim(config, workdir, 'search')
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  study = open_study(config, workdir)
  url = study_storage.public_url(study_storage.storage_url(config, workdir))
  logging.info(
    'study %r in %s: %d finished trials of %d',
    study.study_name,
    url,
    _count(study, FINISHED),
    config.search.num_trials,
  )
  objective = make_objective(config, workdir)
  failures = 0
  while _trials_left(study, config.search.num_trials):
    before = _count(study, (optuna.trial.TrialState.FAIL,))
    try:
      study.optimize(objective, n_trials=1, catch=(FloatingPointError,))
    except ValueError as e:  # another worker already failed this trial as stale (a long stall)
      if not str(e).startswith('Cannot tell a '):
        raise
      logging.warning('trial result not recorded: %s (its heartbeat went stale); continuing', e)
    if _count(study, (optuna.trial.TrialState.FAIL,)) > before:
      failures += 1
      if failures >= config.search.num_trials:
        raise InputError(
          f'{failures} trials of this worker failed (non-finite losses); narrow '
          'config.search.learning_rate.'
        )
  return export(config, study, workdir, url, time.time() - start)


def _trials_left(study: optuna.Study, num_trials: int) -> bool:
  """Whether to run another trial: the budget is not reached, or a retry is waiting.

  Once the budget is reached, trials of dead workers whose heartbeat went stale are failed now
  (optuna otherwise does it only when a trial starts), and their re-queued retries are run, so
  that a search that ends leaves no dead worker's trial RUNNING.
  """
  if _count(study, FINISHED) < num_trials:
    return True
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    optuna.storages.fail_stale_trials(study)
  return _count(study, WAITING) > 0


def trial_rows(study: optuna.Study) -> list[dict]:
  """One dict per trial: number, state, value, fold Spearmans, duration, workdir, parameters."""
  rows = []
  for t in study.get_trials(deepcopy=False):
    duration = (
      (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
    )
    last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
    rows.append(
      {
        'number': t.number,
        'state': t.state.name,
        'value': t.value if t.value is not None else last,
        'fold_spearman': t.user_attrs.get('fold_spearman', []),
        'seconds': duration,
        'workdir': t.user_attrs.get('workdir'),
        'worker': t.user_attrs.get('worker'),
        'retry_of': t.system_attrs.get('failed_trial'),
        'params': dict(t.params),
      }
    )
  return rows


def export(config, study: optuna.Study, workdir: str, url: str, wall_seconds: float) -> dict:
  """Writes search.json, trials.csv, search.png and best_config.py; returns the summary."""
  rows = trial_rows(study)
  states = [r['state'] for r in rows]
  summary = {
    'study_name': study.study_name,
    'storage': url,
    'num_trials': len(rows),
    'states': {s: states.count(s) for s in sorted(set(states))},
    'trials': rows,
    'wall_seconds_this_worker': wall_seconds,
  }
  if _count(study, (optuna.trial.TrialState.COMPLETE,)):
    best = study.best_trial
    best_config = apply_params(config, best.params)
    best_config.data.run_folds = config.data.run_folds
    path = os.path.join(workdir, BEST_CONFIG_FILE)
    folds = _folds(config)
    config_export.write(
      path,
      best_config,
      f'Best trial {best.number} of Optuna study {study.study_name!r} ({url}): mean test '
      f'Spearman {best.value:.4f} over folds {folds}.\n\n'
      f'python main.py --config={path} --workdir=/tmp/memjax/search_best',
    )
    summary.update(
      best_trial=best.number,
      best_value=best.value,
      best_params=best.params,
      best_config=path,
      best_workdir=best.user_attrs.get('workdir'),
    )
  param_names = sorted({k for r in rows for k in r['params']})
  tables.write_csv(
    os.path.join(workdir, TRIALS_FILE),
    ['number', 'state', 'value', 'fold_spearman', 'seconds', 'retry_of'] + param_names,
    [
      [
        r['number'],
        r['state'],
        tables.fmt(r['value']),
        ' '.join(f'{v:.4f}' for v in r['fold_spearman']),
        tables.fmt(r['seconds'], 1),
        '' if r['retry_of'] is None else r['retry_of'],
      ]
      + [tables.fmt(r['params'].get(k)) for k in param_names]
      for r in rows
    ],
  )
  figures.search_history(
    os.path.join(workdir, 'search.png'),
    [(r['number'], r['value'], r['state']) for r in rows],
    f'Optuna TPE study {study.study_name!r}: {len(rows)} trials',
  )
  results.write_json(os.path.join(workdir, SEARCH_FILE), summary)
  logging.info('search: %s; best %s', summary['states'], summary.get('best_value'))
  return summary
