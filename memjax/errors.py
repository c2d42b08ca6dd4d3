"""The one exception type memjax raises for bad input or configuration.

`main.py` turns it into a one-line message and a non-zero exit; anything else is a bug and keeps
its traceback. Running out of disk space is something the user can fix too: writers wrap their
writes in `out_of_space`, which turns it into an `InputError` naming what was being written.
"""

import contextlib
import errno
import os
from collections.abc import Iterator

# errno values that mean "the disk (or quota, or file size limit) is full".
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class InputError(ValueError):
  """Bad data, file or config value; the message names what and where, and what was expected."""


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
