"""Where a search's Optuna study lives, and how several workers share it without racing.

The study lives in a database: by default the SQLite file `WORKDIR/study.db`, or any SQLAlchemy
URL in `config.search.storage` (e.g. `postgresql://user:pass@host/db`, with its driver
installed, for workers on several machines). Workers record heartbeats; a trial whose heartbeat
is `grace_secs` stale is failed by the next trial start and its parameters re-queued (up to
`max_retry` times).

Two races are closed here. Trial state changes: on SQLite they take a file lock
(`study.db.lock`) so that two workers never take the same re-queued trial; PostgreSQL does that
itself (optuna's `SELECT ... FOR UPDATE` on the trial row). Set-up: one worker at a time creates
the tables and the study, under the same file lock on SQLite and a session advisory lock
(`pg_advisory_lock`, released by the server when its holder dies) on PostgreSQL. Connections time
out after `CONNECT_TIMEOUT_SECS` rather than hanging on an unreachable server.
"""

import contextlib
import fcntl
import importlib.util
import os
import re
import warnings
import zlib

import ml_collections
import optuna
import sqlalchemy

from memjax.errors import InputError

CONNECT_TIMEOUT_SECS = 30
# The PostgreSQL advisory lock key (a 64-bit int) that serialises creating tables and the study.
_PG_LOCK_KEY = zlib.crc32(b'memjax.experiments.search')


def storage_url(config: ml_collections.ConfigDict, workdir: str) -> str:
  """`config.search.storage`, or the SQLite file `WORKDIR/study.db`."""
  return config.search.storage or f'sqlite:///{os.path.abspath(workdir)}/study.db'


def driver_url(url: str) -> str:
  """`url` with a PostgreSQL driver that is installed, where the URL names none.

  SQLAlchemy 2.1 maps a plain `postgresql://` to psycopg 3, 2.0 to psycopg2; either package
  serves, so the one installed is named (psycopg first). URLs that name a driver
  (`postgresql+psycopg2://`) and other databases are returned unchanged.
  """
  parsed = sqlalchemy.engine.make_url(url)
  if parsed.drivername != 'postgresql':
    return url
  for module in ('psycopg', 'psycopg2'):
    if importlib.util.find_spec(module) is not None:
      return parsed.set(drivername=f'postgresql+{module}').render_as_string(hide_password=False)
  return url


def public_url(url: str) -> str:
  """The URL with any password masked, for logs and results (also for a URL that does not parse)."""
  try:
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
  except sqlalchemy.exc.ArgumentError:
    return re.sub(r'(//[^:/@]*:)[^@]*@', r'\1***@', url)


def open_study(url: str, cfg: ml_collections.ConfigDict, **study_args) -> optuna.Study:
  """Creates or loads the study `cfg.study_name` in the database at `url`, with heartbeats so
  dead workers' trials are retried.

  Args:
    url: a SQLAlchemy URL (`storage_url`).
    cfg: `config.search` (`study_name`, `heartbeat_secs`, `grace_secs`, `max_retry`).
    **study_args: `optuna.create_study`'s other arguments (direction, sampler, pruner).

  Raises:
    InputError: a storage URL that cannot be opened (bad URL, missing database driver,
      unreachable server).
  """
  try:
    url = driver_url(url)
    with _setup_lock(url), warnings.catch_warnings():  # one worker creates the tables
      warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
      storage = _LockedStorage(
        url,
        _lock_path(url),
        engine_kwargs=_engine_kwargs(url),
        heartbeat_interval=cfg.heartbeat_secs,
        grace_period=cfg.grace_secs,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
          max_retry=cfg.max_retry, inherit_intermediate_values=False
        ),
      )
      return optuna.create_study(
        storage=storage, study_name=cfg.study_name, load_if_exists=True, **study_args
      )
  except (ImportError, sqlalchemy.exc.ArgumentError, sqlalchemy.exc.OperationalError) as e:
    raise InputError(
      f'config.search.storage={public_url(url)!r} cannot be opened ({e}); expected a '
      'SQLAlchemy URL such as sqlite:///path/study.db or postgresql://user:pass@host/db with '
      'its driver installed (pip install psycopg2-binary or psycopg for PostgreSQL).'
    ) from e


def _lock_path(url: str) -> str | None:
  """`DATABASE.lock` beside a SQLite database file; None for other databases."""
  parsed = sqlalchemy.engine.make_url(url)
  if parsed.get_backend_name() != 'sqlite' or not parsed.database:
    return None
  return f'{os.path.abspath(parsed.database)}.lock'


@contextlib.contextmanager
def _file_lock(path: str | None):
  """An exclusive lock on `path` among processes of this machine (no-op when path is None)."""
  if path is None:
    yield
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def _setup_lock(url: str):
  """An exclusive lock for the study's set-up: the SQLite file lock, or a PostgreSQL advisory lock.

  Two workers starting at once would otherwise both create optuna's tables and stamp its schema
  version (PostgreSQL then fails one of them with a duplicate-key error). An advisory lock lives
  in the server and dies with the session that holds it, so a killed worker never leaves it held.
  Other databases take no lock.
  """
  parsed = sqlalchemy.engine.make_url(url)
  if parsed.get_backend_name() != 'postgresql':
    with _file_lock(_lock_path(url)):
      yield
    return
  engine = sqlalchemy.create_engine(
    url, poolclass=sqlalchemy.pool.NullPool, connect_args=_connect_args(parsed)
  )
  try:
    with engine.connect() as connection:
      connection.execute(sqlalchemy.text('SELECT pg_advisory_lock(:k)'), {'k': _PG_LOCK_KEY})
      connection.commit()
      try:
        yield
      finally:
        connection.execute(sqlalchemy.text('SELECT pg_advisory_unlock(:k)'), {'k': _PG_LOCK_KEY})
        connection.commit()
  finally:
    engine.dispose()


def _connect_args(parsed: sqlalchemy.engine.URL) -> dict:
  """libpq's connection timeout, for the psycopg drivers (others keep their defaults)."""
  if parsed.get_driver_name() in ('psycopg', 'psycopg2'):
    return {'connect_timeout': CONNECT_TIMEOUT_SECS}
  return {}


def _engine_kwargs(url: str) -> dict:
  parsed = sqlalchemy.engine.make_url(url)
  if parsed.get_backend_name() == 'sqlite':  # wait for other workers' write locks, not fail
    return {'connect_args': {'timeout': 300}}
  return {'pool_pre_ping': True, 'connect_args': _connect_args(parsed)}


class _LockedStorage(optuna.storages.RDBStorage):
  """RDBStorage whose trial state changes are serialised by a file lock on SQLite.

  SQLite has no `SELECT ... FOR UPDATE`, so two workers can both move one waiting trial (a
  re-queued retry) to RUNNING and train it twice, or both fail one stale trial and re-queue it
  twice (optuna/optuna#4621). Under the lock the second worker sees the first one's change.
  """

  def __init__(self, url: str, lock_path: str | None, **kwargs):
    super().__init__(url, **kwargs)
    self._lock_path = lock_path

  def set_trial_state_values(self, trial_id, state, values=None) -> bool:
    with _file_lock(self._lock_path):
      return super().set_trial_state_values(trial_id, state, values)
