"""Real mounts for tests of read-only and full disks: a read-only view of a folder and a small
tmpfs. Both need root (the test machines run as root); elsewhere the test is skipped, saying why."""

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest


def _mount(*args: str) -> None:
  done = subprocess.run(['mount', *args], capture_output=True, text=True, check=False)
  if done.returncode != 0:
    pytest.skip(f'mount {" ".join(args)} not permitted here: {done.stderr.strip()}')


@contextlib.contextmanager
def read_only_view(source: str, target: str) -> Iterator[str]:
  """`source` seen read-only at `target` (a read-only bind mount: writes fail with EROFS)."""
  os.makedirs(target, exist_ok=True)
  _mount('--bind', '-o', 'ro', source, target)
  try:
    with open(os.path.join(target, '.probe'), 'w'):
      pass
  except OSError:
    pass
  else:  # an old kernel that ignores ro on a bind mount
    os.unlink(os.path.join(target, '.probe'))
    subprocess.run(['umount', target], check=True)
    pytest.skip('this kernel ignores ro on bind mounts')
  try:
    yield target
  finally:
    subprocess.run(['umount', '-l', target], check=True)


@contextlib.contextmanager
def small_tmpfs(target: str, size: str) -> Iterator[str]:
  """A tmpfs of `size` (e.g. '8m') at `target`: writes past it fail with ENOSPC."""
  os.makedirs(target, exist_ok=True)
  _mount('-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', target)
  try:
    yield target
  finally:
    subprocess.run(['umount', '-l', target], check=True)
