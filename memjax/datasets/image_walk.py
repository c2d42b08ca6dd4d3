"""Walking a user's folder of images: symlinks followed, cycles cut, every real file listed once.

`glob('**', recursive=True)` follows directory symlinks without noticing cycles (a link to a
parent folder repeats paths until the OS's path limit) and lists a file once per path that
reaches it, so an image reachable through two links would be scored, or trained on, twice.
`list_files` walks with `os.walk(followlinks=True)`, remembers the (st_dev, st_ino) of every
directory it entered and every file it listed, and so enters each real directory once and lists
each real file once (also hard links), under the first path that reaches it (folders are walked
in sorted order, a folder's files before its subfolders).
Names starting with `.` are skipped, as `glob` does (`.DS_Store`, `._photo.jpg`, `.cache/`).
"""

import os
from collections.abc import Iterable

from absl import logging

from memjax.errors import InputError

SHOW = 3  # skipped paths quoted in a log line


def _key(stat: os.stat_result) -> tuple[int, int]:
  return stat.st_dev, stat.st_ino


def list_files(root: str | os.PathLike, extensions: Iterable[str] | None = None) -> list[str]:
  """Every file under `root` whose extension is in `extensions`, each real file once, sorted.

  Args:
    root: the folder to walk; paths returned start with it as given.
    extensions: lower-case extensions with the dot (e.g. `{'.jpg', '.png'}`), matched
      case-insensitively; None lists every file.

  Returns:
    The paths, sorted. A directory reached again (a symlink cycle, or two links to one folder)
    is not walked again; a file reached again (a second link, a hard link) is not listed again;
    broken links and unreadable folders are skipped with a warning.

  Raises:
    InputError: `root` is not a directory.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise InputError(f'{root} is not a folder; expected a folder of images.')
  wanted = None if extensions is None else {e.lower() for e in extensions}
  seen_dirs: set[tuple[int, int]] = set()
  seen_files: set[tuple[int, int]] = set()
  paths: list[str] = []
  repeated: list[str] = []
  broken: list[str] = []
  unreadable: list[str] = []

  def on_error(error: OSError) -> None:
    unreadable.append(f'{error.filename} ({error.strerror})')

  for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
    try:
      key = _key(os.stat(dirpath))
    except OSError as e:
      unreadable.append(f'{dirpath} ({e.strerror})')
      dirnames[:] = []
      continue
    if key in seen_dirs:  # a cycle, or a second way into a folder already walked
      repeated.append(dirpath)
      dirnames[:] = []
      continue
    seen_dirs.add(key)
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    for name in sorted(filenames):
      if name.startswith('.'):
        continue
      if wanted is not None and os.path.splitext(name)[1].lower() not in wanted:
        continue
      path = os.path.join(dirpath, name)
      try:
        stat = os.stat(path)
      except OSError:
        broken.append(path)
        continue
      if _key(stat) in seen_files:
        repeated.append(path)
        continue
      seen_files.add(_key(stat))
      paths.append(path)
  if repeated:
    logging.info(
      '%s: %d path(s) lead to folders or files already listed (symlink cycles or links), '
      'each listed once: %s',
      root,
      len(repeated),
      ', '.join(repeated[:SHOW]),
    )
  if broken:
    logging.warning(
      '%s: skipped %d broken link(s): %s', root, len(broken), ', '.join(broken[:SHOW])
    )
  if unreadable:
    logging.warning(
      '%s: skipped %d unreadable folder(s): %s', root, len(unreadable), ', '.join(unreadable[:SHOW])
    )
  return sorted(paths)
