"""Atomic file writes: a synced temporary file beside the target, renamed over it.

A reader sees the old file or the new one, never part of one; on any failure the temporary file
(`.tmp_*` beside the target) is removed and the old file is left as it was.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def replacing(path: str, mode: str = 'w', **open_kwargs) -> Iterator[IO]:
  """Yields a file open for writing whose content replaces `path` when the block succeeds."""
  directory = os.path.dirname(os.path.abspath(path))
  suffix = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp_', suffix=suffix)
  try:
    with os.fdopen(fd, mode, **open_kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_text(path: str, text: str) -> None:
  """Writes `text` (UTF-8) to `path` atomically."""
  with replacing(path, encoding='utf-8', newline='') as f:
    f.write(text)
