"""A full disk: training on a real small tmpfs stops with one error line and no traceback from
any library thread (Orbax's workers, TensorStore's callbacks, asyncio's unretrieved tasks)."""

import logging
import os
import subprocess
import sys
import threading
import time
import types

import mounts
import pytest

from memjax.runtime import orbax_workarounds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Sizes at which the disk fills inside a checkpoint write of configs/test.py (fold 0's first and
# second checkpoint); before the fix each printed 6-22 library tracebacks.
@pytest.mark.parametrize('size', ['120k', '250k'])
def test_a_full_disk_is_one_error_line_and_no_traceback(tmp_path, jax_cache_dir, size):
  with mounts.small_tmpfs(str(tmp_path / 'disk'), size) as disk:
    env = {
      **os.environ,
      'JAX_PLATFORMS': 'cpu',
      'JAX_COMPILATION_CACHE_DIR': jax_cache_dir,
      'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
      'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1',
      'TF_CPP_MIN_LOG_LEVEL': '2',
    }
    proc = subprocess.run(
      [sys.executable, 'main.py', '--config=configs/test.py', f'--workdir={disk}/run'],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=300,
    )
  log = proc.stdout + proc.stderr
  assert proc.returncode == 2, log[-4000:]
  assert 'Traceback' not in log and 'never retrieved' not in log, log[-6000:]
  errors = [line for line in log.splitlines() if line.startswith('memjax: error:')]
  assert len(errors) == 1 and 'No space left on device' in errors[0], errors
  assert 'cannot write checkpoint' in errors[0] and 'free space and re-run' in errors[0]


def _record(pathname: str, error: BaseException | None, name='absl') -> logging.LogRecord:
  exc_info = (type(error), error, error.__traceback__) if error else None
  return logging.LogRecord(name, logging.ERROR, pathname, 1, 'failed: %s', (error,), exc_info)


def test_only_orbax_thread_tracebacks_are_dropped(monkeypatch):
  keep = orbax_workarounds._library_thread_failure
  mine = _record('/x/memjax/train.py', ValueError('a bug'))
  assert keep(mine) and mine.exc_info  # not Orbax's: untouched
  orbax = _record('/x/orbax/checkpoint/future.py', ValueError('NOT_FOUND: x'))
  assert keep(orbax) and orbax.exc_info is None  # the message stays, the traceback goes
  assert not keep(_record('/x/orbax/future.py', ValueError('RESOURCE_EXHAUSTED: disk')))
  assert not keep(_record('/x/orbax/future.py', OSError(28, 'No space left on device')))
  assert keep(_record('/x/orbax/future.py', None))
  # A TensorStore future's error has no Python frames; asyncio reports it from its own module.
  future = _record('/x/asyncio/base_events.py', ValueError('RESOURCE_EXHAUSTED: x'), 'asyncio')
  assert not keep(future)
  other = _record('/x/asyncio/base_events.py', ValueError('NOT_FOUND: x'), 'asyncio')
  assert keep(other) and other.exc_info is None
  assert keep(_record('/x/absl/base.py', ValueError('RESOURCE_EXHAUSTED: x')))  # not a library's

  seen = []
  orbax_workarounds.quiet_library_threads()
  monkeypatch.setattr(orbax_workarounds, '_previous_unraisablehook', seen.append)
  closed = types.SimpleNamespace(exc_value=RuntimeError('Event loop is closed'))
  other = types.SimpleNamespace(exc_value=RuntimeError('something else'))
  sys.unraisablehook(closed)
  sys.unraisablehook(other)
  assert seen == [other]


def test_a_failed_save_is_removed_once_its_last_writer_is_done(tmp_path, monkeypatch):
  # What a failed save leaves: one item's writes still adding files (and directories, as
  # TensorStore's file driver does) to the step's temporary directory after the save raised.
  item = tmp_path / '20.orbax-checkpoint-tmp' / 'train.orbax-checkpoint-tmp'
  item.mkdir(parents=True)
  kept = tmp_path / '10'
  kept.mkdir()
  done = threading.Event()

  def writer():
    for i in range(40):
      while True:  # the removal may take the directory between the two calls: write again
        try:
          item.mkdir(parents=True, exist_ok=True)
          (item / f'chunk_{i}').write_bytes(b'x')
          break
        except (FileExistsError, FileNotFoundError):
          pass
      time.sleep(0.01)
    done.set()

  # A settling time well above the writer's pauses, so a loaded machine cannot end it early.
  monkeypatch.setattr(orbax_workarounds, '_SETTLE_SECS', 1.0)
  thread = threading.Thread(target=writer)
  thread.start()
  try:
    orbax_workarounds.remove_unfinished(str(tmp_path))
  finally:
    thread.join()
  assert done.is_set() and sorted(os.listdir(tmp_path)) == ['10']
