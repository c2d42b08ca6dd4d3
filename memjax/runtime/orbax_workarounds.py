"""Workarounds for how Orbax, TensorStore and etils behave in places memjax cannot configure.

* `quiet_library_threads`: a failed checkpoint write or read (a full disk, a missing file) makes
  Orbax's worker threads log their tracebacks, asyncio report unretrieved task exceptions and
  TensorStore call back onto an event loop Orbax already closed; the caller of `save` or
  `restore` gets the same error and reports it in one line, so these print no traceback.
* `literal_directory_globs`: etils' `epath.Path.glob`, which Orbax uses to list a checkpoint's
  files, takes the directory itself as a pattern.
* `remove_unfinished`: a failed save leaves TensorStore writes in flight with nothing to wait on,
  and removing its temporary directory races with them.

`checkpointing.manager` installs the first two, once per process; `checkpointing.save` calls the
third when a write fails.
"""

import glob as glob_lib
import logging as std_logging
import os
import shutil
import sys
import time
import traceback

from etils.epath import gpath

from memjax.errors import no_space_reason

UNFINISHED = '.orbax-checkpoint-tmp'  # in the name of a checkpoint (or item) still being written
_SETTLE_SECS = 0.2  # an unfinished checkpoint gone for this long has no writer left
_WAIT_SECS = 60.0  # the longest wait for the writers of a failed save


def _library_thread_failure(record: std_logging.LogRecord) -> bool:
  """Keeps the traceback of a failure in Orbax's worker threads and event loops out of the log
  (absl's `Thread.run() raised`, asyncio's `Task/Future exception was never retrieved`): the same
  error reaches the caller of `save` or `restore`, which reports it in one line. The message
  stays, except for a full disk, whose one line is the caller's.

  memjax runs no event loop of its own, so everything asyncio reports is a library's; an absl
  record is Orbax's when it was logged from, or its error raised through, Orbax's code. A
  TensorStore future's error carries no Python frames at all, hence the first rule.
  """
  if not record.exc_info or record.exc_info[1] is None:
    return True
  error = record.exc_info[1]
  frames = traceback.extract_tb(error.__traceback__)
  from_library = (
    record.name == 'asyncio'
    or '/orbax/' in record.pathname
    or any('/orbax/' in f.filename for f in frames)
  )
  if not from_library:
    return True
  if no_space_reason(error) or 'RESOURCE_EXHAUSTED' in str(error):
    return False
  record.exc_info, record.exc_text = None, None
  return True


def _quiet_unraisable(unraisable) -> None:
  """Drops TensorStore's callbacks onto an event loop Orbax closed after a failed write or read
  (`RuntimeError: Event loop is closed`, raised in a library thread, with nothing to report);
  everything else goes to the previous hook."""
  error = unraisable.exc_value
  if isinstance(error, RuntimeError) and str(error) == 'Event loop is closed':
    return
  _previous_unraisablehook(unraisable)


_previous_unraisablehook = sys.unraisablehook


def quiet_library_threads() -> None:
  """Installs (once) `_library_thread_failure` on absl's and asyncio's loggers, and
  `_quiet_unraisable`."""
  for name in ('absl', 'asyncio'):
    logger = std_logging.getLogger(name)
    if _library_thread_failure not in logger.filters:
      logger.addFilter(_library_thread_failure)
  if sys.unraisablehook is not _quiet_unraisable:
    global _previous_unraisablehook
    _previous_unraisablehook = sys.unraisablehook
    sys.unraisablehook = _quiet_unraisable


def literal_directory_globs() -> None:
  """Makes `epath.Path(d).glob(pattern)` take a local `d` literally (installed once).

  etils 1.15 joins the directory and the pattern and globs the whole string, so a directory
  whose name holds `[`, `]`, `*` or `?` (a workdir named `exp[lr=3e-3]`) is itself read as a
  pattern. Orbax lists the per-process OCDBT files of a checkpoint with it: under such a
  workdir it found none, skipped their merge, and wrote checkpoints it could not read back.
  Paths with a URI scheme (gs://, s3://) keep their backend's glob.
  """
  if getattr(gpath._GPath.glob, 'literal_directory', False):
    return
  original = gpath._GPath.glob

  def glob(self, pattern: str):
    directory = os.fspath(self)
    if '://' in directory:
      yield from original(self, pattern)
      return
    for found in glob_lib.glob(os.path.join(glob_lib.escape(directory), pattern)):
      yield type(self)(found)

  glob.literal_directory = True
  gpath._GPath.glob = glob


def remove_unfinished(directory: str) -> None:
  """Removes the unfinished checkpoints in a fold's `directory` (`STEP.orbax-checkpoint-tmp`)
  once nothing writes into them any more.

  Orbax writes a checkpoint's items concurrently. When one fails (a full disk), the save raises
  while the other items' TensorStore writes go on in TensorStore's threads, with no future left
  to wait on: removing the directory then races with them (`Directory not empty`, or files that
  appear again after it is gone). So the removal is repeated until the directory stays gone for
  `_SETTLE_SECS`; after `_WAIT_SECS` a last removal raises what keeps it.
  """
  pattern = os.path.join(glob_lib.escape(directory), f'*{UNFINISHED}*')
  deadline = time.monotonic() + _WAIT_SECS
  while found := glob_lib.glob(pattern):
    if time.monotonic() > deadline:
      for path in found:
        shutil.rmtree(path)
      return
    for path in found:
      shutil.rmtree(path, ignore_errors=True)
    time.sleep(_SETTLE_SECS)
