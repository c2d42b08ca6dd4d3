"""The exceptions memjax reports to a user in one line, each with its own exit status.

`main.py` turns a `MemjaxError` into a `memjax: error: ...` line and exits with its
`exit_code`: 2 for bad input or configuration (`InputError`), 3 for a diverged run
(`DivergedError`), 75 (EX_TEMPFAIL, "try again") for a run stopped by a signal after writing a
checkpoint to resume from (`StoppedError`). Anything else is a bug and keeps its traceback.

Running out of disk space is something the user can fix too: writers wrap their writes in
`out_of_space`, which turns it into an `InputError` naming what was being written.
"""

import contextlib
import errno
import os
from collections.abc import Iterator

# errno values that mean "the disk (or quota, or file size limit) is full".
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class MemjaxError(Exception):
  """An error whose message is complete for a user; `main.py` prints it in one line."""

  exit_code = 1


class InputError(MemjaxError, ValueError):
  """Bad data, file or config value; the message names what and where, and what was expected."""

  exit_code = 2


class DivergedError(MemjaxError, FloatingPointError):
  """Training produced a non-finite loss; the message names the fold, step and what was kept.

  A FloatingPointError too, so `--mode=search` counts the trial as failed and goes on.
  """

  exit_code = 3


class StoppedError(MemjaxError):
  """A signal (SIGTERM, SIGINT) stopped the run after it wrote a checkpoint to resume from."""

  exit_code = 75


def no_space_reason(error: BaseException) -> str | None:
  """The OS's text for a full disk if `error` is one, else None.

  OSErrors carry an errno; TensorStore (Orbax's array writer) raises ValueErrors that carry only
  the OS's text, so those are matched by it.
  """
  if isinstance(error, InputError):
    return None
  if isinstance(error, OSError):
    return os.strerror(error.errno) if error.errno in NO_SPACE else None
  if isinstance(error, ValueError):
    text = str(error)
    return next((os.strerror(e) for e in NO_SPACE if os.strerror(e) in text), None)
  return None


@contextlib.contextmanager
def out_of_space(what: str, then: str = '') -> Iterator[None]:
  """Turns a full disk inside the block into an InputError; other errors pass unchanged.

  Args:
    what: what was being written, e.g. `checkpoint /w/fold_0/checkpoints/40`.
    then: what was kept and how to go on, appended to the message.

  Raises:
    InputError: `cannot write <what>: No space left on device (<file>). <then>`.
  """
  try:
    yield
  except (OSError, ValueError) as e:
    reason = no_space_reason(e)
    if reason is None:
      raise
    filename = getattr(e, 'filename', None)
    where = f' ({filename})' if filename else ''
    raise InputError(f'cannot write {what}: {reason}{where}. {then}'.rstrip()) from e
