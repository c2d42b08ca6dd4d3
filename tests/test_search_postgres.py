"""--mode=search on a real PostgreSQL server: two workers share one study, one is SIGKILLed
mid-trial, and the search ends with every trial accounted for.

The test starts its own server (Debian's `postgresql` package: initdb into a temporary folder,
`pg_ctl start` on a free loopback port, trust authentication, fsync off), as the `postgres` user
when run as root (the server refuses root). Without the server binaries or `psycopg2` it is
skipped, unless `CI` is set: there a missing install step (`.ci/run` installs both) fails it.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import optuna
import pytest
import sqlalchemy

from memjax.experiments import search, study_storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLED = -signal.SIGKILL
START_TIMEOUT = 60  # seconds for initdb and the server's start
WORKER_TIMEOUT = 240
# Tiny trials of one program (the SQLite tests' sizes): 2 folds of 1 epoch each.
OVERRIDES = {
  'data.synthetic.num_examples': 300,
  'num_epochs': 1,
  'search.num_trials': 3,
  'search.units': (8, 8),
  'search.dropout': (0.0, 0.2),
  'search.learning_rate': (3e-3, 3e-3),
  'search.activations': ('relu',),
  'search.optimizers': ('adam',),
  'search.startup_trials': 2,
  'search.pruner_startup_trials': 2,
  'search.heartbeat_secs': 1,
  'search.grace_secs': 4,  # a heartbeat thread starved on a loaded machine is not a dead worker
}


def _missing(reason: str):
  """Skips, or fails under CI, where the install step should have provided the server."""
  if os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no'):
    pytest.fail(f'{reason}; CI must install it (.ci/run: apt-get install -y postgresql).')
  pytest.skip(f'{reason}; install it (apt-get install -y postgresql; pip install psycopg2-binary).')


def _server_binaries() -> str | None:
  """The folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/*/bin."""
  if shutil.which('pg_ctl') and shutil.which('initdb'):
    return os.path.dirname(shutil.which('pg_ctl'))
  found = sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'), key=lambda p: p.split('/')[-3])
  return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def postgres_url():
  """A fresh PostgreSQL server on 127.0.0.1; yields its URL, stops it (immediately) after."""
  if study_storage.driver_url('postgresql://h/d') == 'postgresql://h/d':
    _missing('no PostgreSQL driver (pip install psycopg2-binary, or psycopg) is installed')
  bindir = _server_binaries()
  if bindir is None:
    _missing('PostgreSQL server binaries (Debian package postgresql) not found')
  run_as: list[str] = []
  if os.geteuid() == 0:  # the server refuses to run as root
    try:
      pwd.getpwnam('postgres')
    except KeyError:
      _missing('running as root and there is no postgres user to run the server')
    run_as = ['runuser', '-u', 'postgres', '--']
  # Outside pytest's tmp_path: its parents are private to root, and the server runs as postgres.
  base = tempfile.mkdtemp(prefix='memjax-pg-')
  data, log = os.path.join(base, 'data'), os.path.join(base, 'server.log')
  if run_as:
    os.chown(base, pwd.getpwnam('postgres').pw_uid, -1)
  port = _free_port()
  options = (
    f'-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base} '
    '-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50'
  )
  pg_ctl = [*run_as, os.path.join(bindir, 'pg_ctl'), '-D', data]
  try:
    subprocess.run(
      [*run_as, os.path.join(bindir, 'initdb'), '-D', data, '-U', 'memjax', '--auth=trust'],
      check=True,
      capture_output=True,
      timeout=START_TIMEOUT,
      cwd=base,
    )
    started = subprocess.run(
      [*pg_ctl, '-l', log, '-o', options, '-w', '-t', str(START_TIMEOUT), 'start'],
      capture_output=True,
      text=True,
      timeout=START_TIMEOUT + 10,
      cwd=base,
    )
    if started.returncode:
      with open(log) as f:
        pytest.fail(f'PostgreSQL did not start: {started.stderr}\n{f.read()[-2000:]}')
    yield f'postgresql://memjax@127.0.0.1:{port}/postgres'
  finally:
    if os.path.exists(os.path.join(data, 'postmaster.pid')):
      subprocess.run([*pg_ctl, '-m', 'immediate', 'stop'], capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def _worker(workdir: str, url: str, cache_dir: str, kill_at: str = '') -> subprocess.Popen:
  env = {
    **os.environ,
    'JAX_PLATFORMS': 'cpu',
    'JAX_COMPILATION_CACHE_DIR': cache_dir,
    'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
    'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1',
    'TF_CPP_MIN_LOG_LEVEL': '2',
  }
  env.pop('MEMJAX_KILL_AT', None)
  if kill_at:
    env['MEMJAX_KILL_AT'] = kill_at
  return subprocess.Popen(
    [
      sys.executable,
      'main.py',
      '--config=configs/test.py',
      f'--workdir={workdir}',
      '--mode=search',
      f'--config.search.storage={url}',
      *[f'--config.{k}={v}' for k, v in OVERRIDES.items()],
    ],
    cwd=ROOT,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
    env=env,
  )


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
  try:
    _, err = proc.communicate(timeout=WORKER_TIMEOUT)
  except subprocess.TimeoutExpired:
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f'worker {proc.pid} ran past {WORKER_TIMEOUT} s:\n{err[-3000:]}')
  return proc.returncode, err


def test_two_workers_on_postgresql_one_killed_mid_trial_every_trial_accounted_for(
  postgres_url, tmp_path, jax_cache_dir
):
  workdir, cache = str(tmp_path / 'search'), jax_cache_dir
  # Worker A dies by SIGKILL in the first chunk of training steps of the second fold of its first
  # trial (each fold-epoch is 2 chunks): mid-trial, its trial RUNNING with one fold reported.
  # Worker B starts at the same time and keeps going.
  victim = _worker(workdir, postgres_url, cache, kill_at='train_chunk:3')
  survivor = _worker(workdir, postgres_url, cache)
  code, log = _finish(victim)
  killed_at = time.monotonic()
  assert code == KILLED, f'worker A exited {code}, expected SIGKILL:\n{log[-3000:]}'
  assert 'MEMJAX_KILL_AT=train_chunk:3: killing this process' in log
  storage = optuna.storages.RDBStorage(study_storage.driver_url(postgres_url))
  dead = [
    t
    for t in optuna.load_study(study_name='memjax', storage=storage).trials
    if t.user_attrs.get('worker', '').endswith(f':{victim.pid}')
  ]
  # RUNNING, or already failed as stale by worker B; one fold reported either way.
  assert len(dead) == 1 and dead[0].state.name in ('RUNNING', 'FAIL'), dead
  assert len(dead[0].intermediate_values) == 1
  dead_dir = dead[0].user_attrs['workdir']
  finished_fold = os.path.join(dead_dir, 'fold_0', 'eval.json')
  finished_mtime = os.path.getmtime(finished_fold)

  code, log = _finish(survivor)
  assert code == 0, log[-3000:]
  trials = optuna.load_study(study_name='memjax', storage=storage).trials
  if any(t.state.name in ('RUNNING', 'WAITING') for t in trials):
    # B reached the budget before A's heartbeat went stale: restarting the killed worker's
    # command (as its user would) fails the stale trial and runs its retry.
    print('worker B finished first; re-running the killed worker')
    time.sleep(max(0.0, OVERRIDES['search.grace_secs'] + 1 - (time.monotonic() - killed_at)))
    code, log = _finish(_worker(workdir, postgres_url, cache))
    assert code == 0, log[-3000:]
    trials = optuna.load_study(study_name='memjax', storage=storage).trials

  # Every trial accounted for: finished, or failed with exactly one retry (a retry's
  # `retry_history` ends with the trial it replaces), and the budget of finished trials reached.
  states = [t.state.name for t in trials]
  assert [t.number for t in trials] == list(range(len(trials)))
  assert set(states) <= {'COMPLETE', 'PRUNED', 'FAIL'}, states  # nothing RUNNING or WAITING
  # The budget is reached, and passed by at most one trial: a second worker's last start, or the
  # killed trial's retry run after B had finished the budget alone.
  budget = OVERRIDES['search.num_trials']
  assert budget <= sum(s in ('COMPLETE', 'PRUNED') for s in states) <= budget + 1, states
  retries = [t for t in trials if 'retry_history' in t.system_attrs]
  # Every failed trial has exactly one retry, and every retry replaces a failed trial.
  replaced = sorted(t.system_attrs['retry_history'][-1] for t in retries)
  assert replaced == [t.number for t in trials if t.state.name == 'FAIL'], states
  retry_of = {t.system_attrs['retry_history'][-1]: t for t in retries}
  # The killed trial: failed, retried with its parameters in its own folder, finished there, and
  # its finished fold was not trained again.
  last = trials[dead[0].number]
  assert last.state.name == 'FAIL'
  while last.state.name == 'FAIL':  # a retry that itself stalled under load is retried too
    last = retry_of[last.number]
  assert last.state.name in ('COMPLETE', 'PRUNED') and last.params == dead[0].params
  assert last.user_attrs['workdir'] == dead_dir
  assert os.path.getmtime(finished_fold) == finished_mtime
  assert last.user_attrs['fold_spearman'][0] == dead[0].user_attrs['fold_spearman'][0]
  with open(os.path.join(workdir, search.SEARCH_FILE)) as f:
    summary = json.load(f)
  assert summary['storage'] == postgres_url  # no password in it to mask
  assert [r['state'] for r in summary['trials']] == states
  assert len({t.user_attrs['worker'] for t in trials}) >= 2  # both workers took trials
  assert not os.path.exists(os.path.join(workdir, 'study.db'))  # nothing went to SQLite


def test_workers_starting_together_create_the_tables_once(postgres_url, test_config, tmp_path):
  # Without a lock, concurrent first starts race in CREATE TABLE: PostgreSQL then fails some
  # with a duplicate-key IntegrityError (seen in 4 of 12 starts of 4 processes at once).
  engine = sqlalchemy.create_engine(
    study_storage.driver_url(postgres_url), isolation_level='AUTOCOMMIT'
  )
  with engine.connect() as connection:
    connection.execute(sqlalchemy.text('CREATE DATABASE race'))
  engine.dispose()
  test_config.search.storage = postgres_url.rsplit('/', 1)[0] + '/race'
  barrier, outcomes = threading.Barrier(6), []

  def start():
    barrier.wait()
    try:
      outcomes.append(search.open_study(test_config, str(tmp_path)).study_name)
    except Exception as e:  # noqa: BLE001 (any failure is the finding)
      outcomes.append(repr(e))

  threads = [threading.Thread(target=start) for _ in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=120)
  assert outcomes == ['memjax'] * 6
  storage = optuna.storages.RDBStorage(study_storage.driver_url(test_config.search.storage))
  assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ['memjax']
