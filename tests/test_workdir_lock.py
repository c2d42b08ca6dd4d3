"""One writer per workdir (memjax/workdir_lock.py): a second run is refused naming the first, a
killed run's lock is taken over, search workers share a workdir, and a workdir that cannot be
written is a one-line error naming it. Two workers sharing a search workdir for real:
tests/test_search.py."""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import main
from memjax import command_line, extract, schema
from memjax.errors import InputError
from memjax.runtime import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Takes the lock of the workdir argv[1] as `train`, then dies by SIGKILL while holding it.
DIE_HOLDING = """
import os, signal, sys
from memjax.runtime import workdir_lock

with workdir_lock.hold(sys.argv[1], 'train'):
  os.kill(os.getpid(), signal.SIGKILL)
"""


def _main(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, 'main.py', '--config=configs/test.py', *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'TF_CPP_MIN_LOG_LEVEL': '2'},
  )


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith('memjax: error:')]


def test_every_mode_has_a_lock_policy():
  assert set(workdir_lock.MODE_LOCKS) == set(schema.MODES)


def test_a_second_run_on_a_workdir_is_refused_naming_the_first(tmp_path):
  workdir = str(tmp_path / 'run')
  with workdir_lock.hold(workdir, 'train'):
    proc = _main(f'--workdir={workdir}', '--mode=train')
  assert proc.returncode == 2, proc.stderr[-3000:]
  (line,) = _error_lines(proc.stderr)
  assert line.startswith(f'memjax: error: {workdir} is in use by pid {os.getpid()} on ')
  assert f'on {socket.gethostname()} (--mode=train since 20' in line
  assert '; command: ' in line and 'pytest' in line  # the holder's command line
  assert os.listdir(workdir) == [workdir_lock.LOCK_FILE]  # the refused run wrote nothing
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
    assert f.read() == ''  # released: holder records cleared


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
  workdir = str(tmp_path / 'run')
  proc = subprocess.run(
    [sys.executable, '-c', DIE_HOLDING, workdir],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
  )
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
  with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
    assert '"mode": "train"' in f.read()  # the dead run's record is still there
  with caplog.at_level(logging.WARNING), workdir_lock.hold(workdir, 'evaluate'):
    with open(os.path.join(workdir, workdir_lock.LOCK_FILE)) as f:
      records = f.read()
    assert '"mode": "evaluate"' in records and '"mode": "train"' not in records
  assert any(
    'taking over the lock of' in r.getMessage() and 'no longer running' in r.getMessage()
    for r in caplog.records
  )


def _refusal(directory: str, mode: str, kind: str = workdir_lock.EXCLUSIVE) -> str:
  """The InputError message of trying to take the lock."""
  with (
    pytest.raises(InputError, match='is in use by') as e,
    workdir_lock.hold(directory, mode, kind),
  ):
    pass
  return str(e.value)


def test_search_workers_share_a_workdir_that_no_writer_can_take(tmp_path):
  workdir = str(tmp_path)
  with (
    workdir_lock.hold(workdir, 'search', workdir_lock.SHARED),
    workdir_lock.hold(workdir, 'search', workdir_lock.SHARED),
  ):
    assert _refusal(workdir, 'train').count('--mode=search') == 2  # both workers named
    assert '--mode=search' in _refusal(workdir, 'sweep')
  with workdir_lock.hold(workdir, 'train'):  # free again
    assert '--mode=train' in _refusal(workdir, 'search', workdir_lock.SHARED)


def test_a_waiting_holder_gets_the_lock_when_it_is_released(tmp_path):
  """Search trial directories: a retry waits for a stalled worker's directory."""
  directory, order = str(tmp_path), []

  def wait_for_it():
    with workdir_lock.hold(directory, 'search trial 2', wait=True):
      order.append('waiter')

  with workdir_lock.hold(directory, 'search trial 1'):
    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    time.sleep(0.5)
    order.append('holder')
  waiter.join(timeout=30)
  assert order == ['holder', 'waiter']


def test_an_unwritable_workdir_is_a_one_line_error_naming_it(tmp_path, test_config, capsys):
  """main.py's run and error handler, in this process (the error is not about processes)."""
  (tmp_path / 'file.txt').write_text('not a directory')
  workdir = str(tmp_path / 'file.txt' / 'sub')  # fails even for root
  with pytest.raises(SystemExit) as exit_, command_line.reporting_errors(verbose=False):
    main.run(test_config, workdir, 'train')
  assert exit_.value.code == 2
  (line,) = _error_lines(capsys.readouterr().err)
  assert line == (
    f'memjax: error: cannot use {workdir} as a directory to write in: Not a directory '
    f'({workdir}). Choose a writable directory.'
  )
  if os.geteuid() != 0:  # root writes anywhere
    readonly = tmp_path / 'readonly'
    readonly.mkdir(mode=0o500)
    with (
      pytest.raises(InputError, match=f'cannot use {readonly} .*Permission denied'),
      workdir_lock.hold(str(readonly), 'train'),
    ):
      pass


def test_reading_modes_leave_a_missing_workdir_alone(tmp_path):
  missing = str(tmp_path / 'missing')
  for mode in ('evaluate', 'predict', 'transfer', 'extract'):
    with workdir_lock.hold_for_mode(missing, mode):
      pass
  assert not os.path.exists(missing)


def test_a_second_extraction_into_one_store_is_refused(test_config, tmp_path):
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(tmp_path / 'images')
  config.data.features_dir = str(tmp_path / 'store')
  lock_file = workdir_lock.store_lock_file(config.data.features_dir)
  assert lock_file == str(tmp_path / '.store.memjax.lock')
  with (
    workdir_lock.hold(config.data.features_dir, 'extract', lock_file=lock_file),
    pytest.raises(InputError, match=f'{tmp_path / "store"} is in use by .*--mode=extract'),
  ):
    extract.extract(config, str(tmp_path / 'run'))


def test_a_shared_starter_waits_for_another_one_still_joining(tmp_path):
  """Two search workers started at the same moment: the first holds the lock exclusively while it
  writes its record, then shares it; the second must join, not be refused."""
  import fcntl

  lock_file = tmp_path / workdir_lock.LOCK_FILE
  first = open(lock_file, 'a+')  # noqa: SIM115
  fcntl.flock(first, fcntl.LOCK_EX)

  def downgrade():
    time.sleep(0.5)
    fcntl.flock(first, fcntl.LOCK_SH)

  thread = threading.Thread(target=downgrade)
  thread.start()
  with workdir_lock.hold(str(tmp_path), 'search', workdir_lock.SHARED):
    pass  # joined
  thread.join()
  first.close()
  # An exclusive holder for good still means a refusal (after the short wait).
  with (
    workdir_lock.hold(str(tmp_path), 'train', workdir_lock.EXCLUSIVE),
    pytest.raises(InputError, match=r'is in use by pid \d+ .*--mode=train'),
    workdir_lock.hold(str(tmp_path), 'search', workdir_lock.SHARED),
  ):
    pass
