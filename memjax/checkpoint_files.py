"""What each checkpoint's files were when written, to tell a damaged checkpoint from one that
cannot be read for another reason (its path, permissions, library versions), and what becomes of
an unreadable one.

`checkpointing.save` records, per step, every file of the step directory with its size and
sha256 in `fold_K/checkpoint_files/STEP.json` (records of checkpoints Orbax removed are dropped).
`intact` compares a checkpoint with its record: a checkpoint whose files are as written is never
called damaged, set aside or trained again. Training sets a damaged checkpoint aside
(`set_aside`: moved to `fold_K/damaged_checkpoints/`, never deleted); evaluation reports it
(`unreadable`).
"""

import hashlib
import json
import os
import time

import jax
import orbax.checkpoint as ocp

from memjax.errors import InputError
from memjax.runtime import atomic_files

FILES_DIR = 'checkpoint_files'
DAMAGED_DIR = 'damaged_checkpoints'


def _records_dir(checkpoint_dir: str) -> str:
  return os.path.join(os.path.dirname(os.path.abspath(checkpoint_dir)), FILES_DIR)


def sums(step_dir: str) -> dict[str, list]:
  """{relative path: [size, sha256]} of every file under a checkpoint step directory."""
  out = {}
  for directory, _, names in os.walk(step_dir):
    for name in names:
      path = os.path.join(directory, name)
      digest = hashlib.sha256()
      with open(path, 'rb') as f:
        while chunk := f.read(1 << 20):
          digest.update(chunk)
      out[os.path.relpath(path, step_dir)] = [os.path.getsize(path), digest.hexdigest()]
  return out


def record(mngr: ocp.CheckpointManager, step: int) -> None:
  """Records the files of the checkpoint just written (`fold_K/checkpoint_files/STEP.json`),
  so that one that later cannot be read can be told apart from one whose files changed; drops
  the records of checkpoints Orbax has since removed."""
  if jax.process_index() != 0:
    return
  directory = _records_dir(str(mngr.directory))
  os.makedirs(directory, exist_ok=True)
  written = sums(os.path.join(str(mngr.directory), str(step)))
  atomic_files.write_text(os.path.join(directory, f'{step}.json'), json.dumps(written) + '\n')
  kept = {f'{s}.json' for s in mngr.all_steps()}
  for name in os.listdir(directory):
    if name.endswith('.json') and name not in kept:
      os.unlink(os.path.join(directory, name))


def intact(checkpoint_dir: str, step: int) -> bool | None:
  """Whether checkpoint `step`'s files are exactly as written (sizes and sha256 recorded by
  `save`); None when no record exists (written by an older memjax, or the record was lost)."""
  path = os.path.join(_records_dir(checkpoint_dir), f'{step}.json')
  try:
    with open(path, encoding='utf-8') as f:
      written = json.load(f)
  except (OSError, ValueError):
    return None
  step_dir = os.path.join(checkpoint_dir, str(step))
  try:
    now = sums(step_dir)
  except OSError:
    return False
  return bool(written) and all(now.get(path) == value for path, value in written.items())


def set_aside(checkpoint_dir: str, step: int, fold_dir: str) -> str:
  """Moves an unreadable checkpoint to `fold_dir/damaged_checkpoints/` (never deletes it).

  Raises:
    InputError: its files are exactly as written (`intact`): they are not damaged, so the
      checkpoint stays where it is and nothing is trained again.
  """
  source = os.path.join(checkpoint_dir, str(step))
  if intact(checkpoint_dir, step):
    raise InputError(
      f'{os.path.basename(fold_dir)}: checkpoint step {step} at {source} cannot be read, but its '
      'files are exactly as written (sizes and sha256 match the record): they are not damaged, '
      'so it is kept and nothing is trained again; the cause is how they are read (path, '
      'permissions, library versions). Re-run with --verbose for the reason.'
    )
  target_dir = os.path.join(fold_dir, DAMAGED_DIR)
  os.makedirs(target_dir, exist_ok=True)
  target = os.path.join(target_dir, f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
  os.rename(source, target)
  return target


def unreadable(fold: str, checkpoint_dir: str, step: int, why: str, readable: int | None):
  """The one-line error for checkpoint `step` of `fold` that cannot be read (`why`), naming the
  newest readable one (`readable`); it says the files are damaged only when they differ from
  what `record` recorded."""
  found = intact(checkpoint_dir, step)
  if found:
    then = (
      'its files are exactly as written (sizes and sha256 match the record), so they are not '
      'damaged: the cause is how they are read (path, permissions, library versions)'
    )
  elif readable is not None:
    flag = f'--config.eval.checkpoint={readable}'
    then = f'the newest intact checkpoint is step {readable} ({flag})'
  elif found is False:
    then = (
      'its files differ from those written and no other checkpoint of this fold can be read: '
      'train it again'
    )
  else:
    then = (
      'no other checkpoint of this fold can be read either (no record of their files to tell '
      'damage from a reading problem)'
    )
  return InputError(
    f'{fold}: checkpoint step {step} at {os.path.join(checkpoint_dir, str(step))} cannot be read '
    f'({why}); {then}.'
  )
