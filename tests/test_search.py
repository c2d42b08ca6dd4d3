"""--mode=search: the search space, two workers sharing one SQLite study, the retry of a dead
worker's trial in its own workdir, resuming, and the exported best config."""

import collections
import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from figure_checks import assert_figure
from study_heartbeats import age_heartbeat

from memjax.errors import InputError
from memjax.experiments import search, study_storage

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))

# Tiny trials whose programs are all the same shapes, so both workers share compiled programs.
OVERRIDES = {
  'data.synthetic.num_examples': 300,
  'num_epochs': 1,
  'search.units': (8, 8),
  'search.dropout': (0.0, 0.2),
  'search.learning_rate': (3e-3, 3e-3),
  'search.activations': ('relu',),
  'search.optimizers': ('adam',),
  'search.startup_trials': 2,
  'search.pruner_startup_trials': 2,
  'search.heartbeat_secs': 1,
  'search.grace_secs': 3,
}


def _config(num_trials: int):
  from configs import test as test_cfg

  config = test_cfg.get_config()
  for key, value in {**OVERRIDES, 'search.num_trials': num_trials}.items():
    *parents, leaf = key.split('.')
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def _worker(workdir: str, num_trials: int) -> subprocess.Popen:
  flags = [f'--config.{k}={v}' for k, v in OVERRIDES.items()]
  return subprocess.Popen(
    [
      sys.executable,
      'main.py',
      '--config=configs/test.py',
      f'--workdir={workdir}',
      '--mode=search',
      f'--config.search.num_trials={num_trials}',
      *flags,
    ],
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )


def _wait(proc: subprocess.Popen) -> None:
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]


def test_search_space_maps_onto_the_config(test_config):
  config = test_config  # the default search space
  params = {
    'units_cnn_0': 64,
    'units_semantic_0': 32,
    'units_fusion_0': 1000,
    'dropout': 0.25,
    'activation': 'tanh',
    'optimizer': 'rmsprop',
    'learning_rate': 1e-3,
  }
  assert search.suggest(optuna.trial.FixedTrial(params), config) == params
  out = search.apply_params(config, params)
  assert out.model.branch_units.cnn == (64,) and out.model.branch_units.semantic == (32,)
  assert out.model.hidden_units == (1000,) and out.model.dropout == 0.25
  assert out.model.activation == 'tanh' and out.optimizer.name == 'rmsprop'
  assert out.optimizer.learning_rate == 1e-3
  assert config.model.activation == 'relu'  # the input config is left alone


def test_two_workers_share_the_study_retry_a_dead_trial_resume_and_export(tmp_path):
  workdir = str(tmp_path)
  config = _config(3)
  # A trial whose worker died: RUNNING, with a heartbeat already older than grace_secs.
  study = search.open_study(config, workdir)
  with pytest.warns(UserWarning, match='Heartbeat'):
    dead = study.ask()
  dead_dir = os.path.join(workdir, 'trials', 'dead_trial')
  dead.set_user_attr('workdir', dead_dir)
  study._storage.record_heartbeat(dead._trial_id)
  age_heartbeat(os.path.join(workdir, 'study.db'), dead._trial_id, config.search.grace_secs + 1)

  workers = [_worker(workdir, 3), _worker(workdir, 3)]
  for w in workers:
    _wait(w)
  with open(os.path.join(workdir, search.SEARCH_FILE)) as f:
    summary = json.load(f)
  rows = summary['trials']
  assert [r['number'] for r in rows] == list(range(len(rows)))
  finished = [r for r in rows if r['state'] in ('COMPLETE', 'PRUNED')]
  failed = [r['number'] for r in rows if r['state'] == 'FAIL']
  assert {r['state'] for r in rows} <= {'COMPLETE', 'PRUNED', 'FAIL'}  # nothing RUNNING
  # The dead trial failed (and, were a worker's heartbeat starved past grace_secs under load,
  # that trial too); every failed trial has exactly one retry.
  assert dead.number in failed
  assert sorted(r['retry_of'] for r in rows if r['retry_of'] is not None) == failed
  # The budget is reached, and passed only by a trial started while the last one ran, plus at
  # most one retry per failed trial beyond the dead one.
  assert 3 <= len(finished) <= 3 + len(failed), rows
  assert summary['states'] == dict(collections.Counter(r['state'] for r in rows))
  assert {r['worker'].rsplit(':', 1)[1] for r in finished} == {str(w.pid) for w in workers}
  assert rows[dead.number]['state'] == 'FAIL' and rows[dead.number]['retry_of'] is None
  retry = [r for r in rows if r['retry_of'] == dead.number]
  assert len(retry) == 1 and retry[0]['state'] in ('COMPLETE', 'PRUNED')
  assert retry[0]['workdir'] == dead_dir  # the retry continued in the dead trial's workdir
  assert os.path.exists(os.path.join(dead_dir, 'fold_0', 'eval.json'))
  for r in finished:  # the objective: the mean of the folds' test Spearmans (so far, if pruned)
    folds = r['fold_spearman']
    assert (len(folds) == 2) if r['state'] == 'COMPLETE' else (1 <= len(folds) <= 2), r
    assert all(-1 <= v <= 1 for v in folds) and r['value'] == pytest.approx(np.mean(folds)), r
    assert r['params']['units_fusion_0'] == 8 and r['params']['activation'] == 'relu'

  # Resume: the same command loads the study; with its budget reached it only re-exports.
  config = _config(len(finished))
  again = search.run(config, workdir)
  assert [r['number'] for r in again['trials']] == [r['number'] for r in rows]
  resumed = optuna.load_study(
    study_name='memjax', storage=study_storage.storage_url(config, workdir)
  )

  # The best config loads and equals the best trial's config.
  spec = importlib.util.spec_from_file_location('best', os.path.join(workdir, 'best_config.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  best = resumed.best_trial
  expected = search.apply_params(config, best.params)
  assert module.get_config().to_dict() == expected.to_dict()
  assert module.get_config().model.hidden_units == (best.params['units_fusion_0'],)
  assert again['best_trial'] == best.number and again['best_value'] == pytest.approx(best.value)
  with open(os.path.join(workdir, 'trials.csv')) as f:
    table = list(csv.DictReader(f))
  assert [(int(t['number']), t['state']) for t in table] == [
    (r['number'], r['state']) for r in rows
  ]
  assert [t['retry_of'] for t in table] == [
    '' if r['retry_of'] is None else str(r['retry_of']) for r in rows
  ]
  assert_figure(os.path.join(workdir, 'search.png'))
  assert study_storage.storage_url(config, workdir) == f'sqlite:///{workdir}/study.db'
  with open(os.path.join(workdir, 'study.db'), 'rb') as f:
    assert f.read(16) == b'SQLite format 3\x00'


def test_bad_storage_url_is_an_input_error(tmp_path):
  config = _config(1)
  config.search.storage = 'nosuchdb://user:secret@host/db'
  with pytest.raises(InputError, match='config.search.storage') as e:
    search.open_study(config, str(tmp_path))
  assert 'secret' not in str(e.value)


def test_storage_urls_name_an_installed_driver_and_never_show_a_password(tmp_path):
  url = study_storage.driver_url('postgresql://user:secret@127.0.0.1:5432/db')
  assert url.startswith(('postgresql+psycopg://', 'postgresql+psycopg2://'))
  assert url.endswith('://user:secret@127.0.0.1:5432/db')
  assert study_storage.driver_url('postgresql+psycopg2://u@h/d') == 'postgresql+psycopg2://u@h/d'
  assert study_storage.driver_url('sqlite:////tmp/study.db') == 'sqlite:////tmp/study.db'
  assert study_storage.public_url('postgresql://user:secret@h/db') == 'postgresql://user:***@h/db'
  assert 'secret' not in study_storage.public_url('not a url://user:secret@h/db')
  config = _config(1)
  config.search.storage = 'not a url://user:secret@host/db'
  with pytest.raises(InputError, match='config.search.storage') as e:
    search.open_study(config, str(tmp_path))
  assert 'secret' not in str(e.value)


def test_a_postgresql_server_that_is_not_there_is_one_input_error(tmp_path):
  if study_storage.driver_url('postgresql://h/d') == 'postgresql://h/d':
    pytest.skip('no PostgreSQL driver installed (pip install psycopg2-binary)')
  with socket.socket() as s:  # a loopback port nobody listens on
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  config = _config(1)
  config.search.storage = f'postgresql://user:secret@127.0.0.1:{port}/db'
  start = time.monotonic()
  with pytest.raises(InputError, match=r'config.search.storage=.*user:\*\*\*@') as e:
    search.open_study(config, str(tmp_path))
  assert (
    'secret' not in str(e.value) and time.monotonic() - start < study_storage.CONNECT_TIMEOUT_SECS
  )
