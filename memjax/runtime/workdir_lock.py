"""One writer per workdir: an advisory `flock` on `WORKDIR/.memjax.lock` for the life of a run.

The command line (`memjax/cli.py`) takes the lock for its mode (`hold_for_mode`, policy in
`MODE_LOCKS`) before running it. A mode that writes into WORKDIR holds it *exclusively*: a second
run on the same WORKDIR is refused at once with an `InputError` naming the holder (pid, host,
mode, start time, command), which the holder writes into the lock file after acquiring it.
`search` workers share one study and so hold it *shared*: any number of them may run together,
but no exclusive run (train, sweep, ...) can start beside them, nor they beside one. Each search
trial directory then has its own exclusive lock (`memjax/experiments/search.py`), and `extract`
locks the feature store it writes (`memjax/extract.py`) rather than WORKDIR.

The kernel drops an `flock` when its process ends, however it ends, so a lock file left by a
killed run is not stale: the next run simply acquires it, logs whose it was, and rewrites it.
Nothing ever deletes the lock file (deleting it would let two runs lock different files). Only
process 0 of a multi-process (`jax.distributed`) run takes the lock; an error there stops every
process. On NFS, `flock` works where the server supports locks (NFSv4, or v3 with lockd).
"""

import contextlib
import datetime
import fcntl
import json
import os
import re
import shlex
import socket
import sys
import time

import jax
from absl import logging

from memjax.errors import InputError

LOCK_FILE = '.memjax.lock'
EXCLUSIVE, SHARED = 'exclusive', 'shared'
_JOIN_SECS = 3.0  # how long a shared starter waits for another one to finish joining

# How each mode locks WORKDIR: (kind or None, whether the mode creates WORKDIR).
# Modes that only use an existing trained workdir (create False) lock nothing when it is absent,
# so they report the missing training themselves.
MODE_LOCKS = {
  'train': (EXCLUSIVE, True),
  'sweep': (EXCLUSIVE, True),
  'baseline': (EXCLUSIVE, True),
  'report': (EXCLUSIVE, True),
  'search': (SHARED, True),  # workers share the study; each trial directory is locked alone
  'evaluate': (EXCLUSIVE, False),  # rewrites eval.json and summary.json
  'transfer': (EXCLUSIVE, False),  # writes transfer results into the trained workdir
  'predict': (SHARED, False),  # reads checkpoints: not while training, but beside other readers
  'extract': (None, False),  # writes no WORKDIR; locks its feature store instead
}


def hold_for_mode(workdir: str, mode: str, *, reads_only: bool = False):
  """The lock the command line holds on WORKDIR while it runs `mode` (see `MODE_LOCKS`);
  `reads_only`: this run writes its results elsewhere (evaluate or transfer with an output), so it
  reads WORKDIR as predict does."""
  kind, create = MODE_LOCKS['predict' if reads_only else mode]
  if kind is None or (not create and not os.path.isdir(workdir)):
    return contextlib.nullcontext()
  # A read-only trained workdir can still be read (predict): only writers need the lock file.
  return hold(workdir, mode, kind, required=kind == EXCLUSIVE or create)


def store_lock_file(directory: str) -> str:
  """The lock file of an output directory that must hold nothing else (a feature store): a
  hidden sibling `.NAME.memjax.lock`."""
  parent, name = os.path.split(os.path.abspath(directory))
  return os.path.join(parent, f'.{name}{LOCK_FILE}')


@contextlib.contextmanager
def hold(
  directory: str,
  mode: str,
  kind: str = EXCLUSIVE,
  *,
  lock_file: str | None = None,
  wait: bool = False,
  required: bool = True,
):
  """Holds the lock of `directory` (creating it) for the duration of the `with` block.

  Args:
    directory: what the lock protects; named in messages.
    mode: what this process does there, recorded for whoever is refused.
    kind: EXCLUSIVE, or SHARED (shares only with other SHARED holders).
    lock_file: the lock file; default `directory/.memjax.lock`.
    wait: wait for an exclusive lock instead of refusing (EXCLUSIVE only).
    required: if False, a lock file that cannot be written is logged and the block runs
      unlocked (for readers of a read-only directory).

  Raises:
    InputError: the lock is held by another run (naming it), or the directory cannot be
      created or written (naming it).
  """
  if jax.process_index() > 0:  # process 0 locks for the whole multi-process run
    yield
    return
  lock_file = lock_file or os.path.join(directory, LOCK_FILE)
  f = _open(lock_file, directory, required)
  if f is None:
    yield
    return
  with f:
    _acquire(f, directory, mode, kind, wait)
    try:
      yield
    finally:
      _release(f, kind)


def _open(lock_file: str, directory: str, required: bool):
  try:
    os.makedirs(os.path.dirname(lock_file), exist_ok=True)
    return open(lock_file, 'a+', encoding='utf-8')  # noqa: SIM115 (held for the whole run)
  except OSError as e:
    message = (
      f'cannot use {directory} as a directory to write in: {e.strerror} ({e.filename}). '
      'Choose a writable directory.'
    )
    if required:
      raise InputError(message) from e
    logging.warning('%s Going on without the lock file %s.', message, lock_file)
    return None


def _acquire(f, directory: str, mode: str, kind: str, wait: bool) -> None:
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    if kind == SHARED and _join_shared(f):  # joins the other shared holders
      f.write(_record(mode, kind))
      f.flush()
      return
    holders = _describe(_holders(f, live_only=True))
    if not wait:
      raise InputError(_refusal(directory, holders)) from None
    logging.info('waiting for %s, in use by %s', directory, holders)
    fcntl.flock(f, fcntl.LOCK_EX)
  left = _holders(f, live_only=False)  # records only a holder that did not release can leave
  if left:
    logging.warning(
      'taking over the lock of %s from %s, which is no longer running (killed or crashed)',
      directory,
      _describe(left),
    )
  f.truncate(0)
  f.write(_record(mode, kind))
  f.flush()
  if kind == SHARED and not _try(f, fcntl.LOCK_SH):  # another run took it between the two calls
    raise InputError(_refusal(directory, _describe(_holders(f, live_only=True))))


def _join_shared(f) -> bool:
  """Takes a shared lock, waiting out a shared holder that is still between its exclusive
  first grab and its shared lock (a worker started at the same moment); an exclusive holder
  keeps its lock for its whole run, so the wait then ends in a refusal."""
  deadline = time.monotonic() + _JOIN_SECS
  while True:
    if _try(f, fcntl.LOCK_SH):
      return True
    if time.monotonic() > deadline:
      return False
    time.sleep(0.05)


def _release(f, kind: str) -> None:
  """Clears the holder records (the last of several shared holders does) and unlocks."""
  if kind == EXCLUSIVE or _try(f, fcntl.LOCK_EX):
    f.truncate(0)
    f.flush()
  fcntl.flock(f, fcntl.LOCK_UN)


def _try(f, operation: int) -> bool:
  try:
    fcntl.flock(f, operation | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  return True


def _record(mode: str, kind: str) -> str:
  command = shlex.join([os.path.basename(sys.executable), *sys.argv])
  record = {
    'pid': os.getpid(),
    'host': socket.gethostname(),
    'mode': mode,
    'kind': kind,
    'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
    'command': re.sub(r'(://[^:/@\s]*:)[^@\s]*@', r'\1***@', command),  # no passwords
  }
  return json.dumps(record) + '\n'


def _holders(f, *, live_only: bool) -> list[dict]:
  """The holder records in the lock file; `live_only` drops this host's ended processes."""
  f.seek(0)
  records = []
  for line in f.read().splitlines():
    try:
      record = json.loads(line)
    except ValueError:  # a record being written right now
      continue
    if not live_only or record.get('host') != socket.gethostname() or _alive(record.get('pid')):
      records.append(record)
  return records


def _alive(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError):
    return True
  return True


def _describe(records: list[dict]) -> str:
  if not records:
    return 'another memjax run (which has not written its details yet)'
  return '; '.join(
    f'pid {r.get("pid")} on {r.get("host")} (--mode={r.get("mode")} since {r.get("started")}; '
    f'command: {r.get("command")})'
    for r in records
  )


def _refusal(directory: str, holders: str) -> str:
  return (
    f'{directory} is in use by {holders}. Wait for that run to end or use another directory '
    '(its lock ends with its process, even a killed one).'
  )
