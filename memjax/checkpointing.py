"""One Orbax CheckpointManager per fold, and the one path that restores parameters.

Each checkpoint holds three items:
* `params`: the parameters evaluation uses (the moving average when `ema_decay` > 0);
* `train`: what only resuming needs: step, optimiser state, dropout key, and the raw parameters
  when `params` holds their moving average;
* `meta` (JSON): the run's result fields and feature widths (`checkpoint_meta.run_meta`, checked
  by `checkpoint_meta.check_meta`), the fold's thresholds, s_k and standardisation, the epoch and
  its validation metrics.
`restore_params` serves evaluate, predict, transfer and report; it reads `meta` and `params`
only. `restore_train_state` restores everything, to resume training.

The two latest checkpoints and the best (by validation Spearman) are kept. One that cannot be
read is reported in one line (fold, step, path, reason); training sets it aside (moved to
`fold_K/damaged_checkpoints/`, never deleted) and resumes from the newest intact one, and
evaluation names the next intact one.
"""

import contextlib
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from memjax import checkpoint_files, checkpoint_meta
from memjax.errors import InputError, out_of_space
from memjax.runtime import orbax_workarounds
from memjax.train_state import TrainState

BEST_METRIC = 'val_spearman'
KEEP_LATEST = 2


def _best_value(metrics: dict) -> float:
  return metrics[BEST_METRIC]


def manager(directory: str, *, read_only: bool = False) -> ocp.CheckpointManager:
  """The fold's manager; creating it removes unfinished (tmp) checkpoints a crash left.

  Failures of Orbax's and TensorStore's worker threads print no traceback of their own: the
  caller gets the error and reports it. Any directory name the OS accepts works (both in
  `orbax_workarounds`).
  """
  orbax_workarounds.quiet_library_threads()
  orbax_workarounds.literal_directory_globs()
  options = ocp.CheckpointManagerOptions(
    best_fn=_best_value,
    best_mode='max',
    preservation_policy=pp.AnyPreservationPolicy(
      [pp.LatestN(n=KEEP_LATEST), pp.BestN(get_metric_fn=_best_value, reverse=False, n=1)]
    ),
    create=not read_only,
    read_only=read_only,
    cleanup_tmp_directories=not read_only,
    enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(
    os.path.abspath(directory), options=options, item_names=('params', 'train', 'meta')
  )


def _train_item(state: TrainState) -> dict:
  item = {'step': state.step, 'opt_state': state.opt_state, 'dropout_key': state.dropout_key}
  if state.ema_params is not None:
    item['params'] = state.params
  return item


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, meta, metrics) -> None:
  """Writes the three items at `step`, ranked by `metrics[BEST_METRIC]`.

  Orbax writes into a temporary directory renamed only once complete, so a failed write never
  looks like a checkpoint; it is removed when its writers are done
  (`orbax_workarounds.remove_unfinished`), or by the next manager of the fold.

  Raises:
    InputError: the disk is full; the message names the checkpoint and the step kept.
  """
  kept = mngr.latest_step()
  then = (
    f'The previous checkpoint (step {kept}) is kept; free space and re-run to resume from it.'
    if kept is not None
    else 'No earlier checkpoint exists; free space and re-run.'
  )
  with out_of_space(f'checkpoint {os.path.join(str(mngr.directory), str(step))}', then):
    try:
      mngr.save(
        step,
        args=ocp.args.Composite(
          params=ocp.args.StandardSave(state.eval_params),
          train=ocp.args.StandardSave(_train_item(state)),
          meta=ocp.args.JsonSave(meta),
        ),
        metrics=metrics,
      )
    except BaseException:
      with contextlib.suppress(Exception):  # items still in flight end before anything else
        mngr.wait_until_finished()
      if jax.process_index() == 0:  # the failed write goes, once its last writer is done
        with contextlib.suppress(Exception):
          orbax_workarounds.remove_unfinished(str(mngr.directory))
      raise
    mngr.wait_until_finished()
    checkpoint_files.record(mngr, step)


def saved_steps(fold_dir: str) -> list[int]:
  """The steps of a fold's committed checkpoints, read from its folder (unfinished writes, named
  `STEP.orbax-checkpoint-tmp-*`, are not steps), sorted."""
  directory = os.path.join(fold_dir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def select_step(mngr: ocp.CheckpointManager, which: str) -> int:
  """`best`, `latest`, or a step number given as a string.

  Raises:
    InputError: no checkpoint, or the asked-for step does not exist.
  """
  all_steps = mngr.all_steps()
  if not all_steps:
    raise InputError(f'no checkpoint in {mngr.directory}: train this fold first.')
  if which == 'best':
    return mngr.best_step()
  if which == 'latest':
    return mngr.latest_step()
  if which.isdigit() and int(which) in all_steps:
    return int(which)
  raise InputError(
    f'config.eval.checkpoint={which!r}: expected best, latest or one of the steps '
    f'{sorted(all_steps)} in {mngr.directory}.'
  )


def chosen_step(fold_dir: str, which: str) -> int | None:
  """The step `which` picks among the fold's checkpoints (`select_step`), or None."""
  mngr = manager(os.path.join(fold_dir, 'checkpoints'), read_only=True)
  try:
    return select_step(mngr, which)
  except InputError:
    return None
  finally:
    mngr.close()


def restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def _finite(tree, where: str) -> None:
  for leaf in jax.tree.leaves(tree):
    if jax.numpy.issubdtype(leaf.dtype, jax.numpy.floating) and not np.all(
      np.isfinite(jax.device_get(leaf))
    ):
      raise ValueError(f'non-finite values in {where}')


def _read_params(mngr, step: int, abstract_params) -> tuple:
  restored = mngr.restore(
    step,
    args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()
    ),
  )
  _finite(restored.params, 'the parameters')
  return restored.params, restored.meta


def reason(error: BaseException) -> str:
  text = ' '.join(str(error).split())
  return f'{type(error).__name__}: {text[:300]}'


def restore_params(fold_dir: str, which: str, abstract_params, expected: dict) -> tuple:
  """Restores the evaluation parameters of checkpoint `which` of a fold.

  Args:
    fold_dir: the fold's directory (`WORKDIR/fold_K`).
    which: `best`, `latest` or a step number (`config.eval.checkpoint`).
    abstract_params: `train_state.abstract_params` of the run: shapes and shardings to restore
      into (any device count).
    expected: `checkpoint_meta.run_meta` of the run; what the parameters mean must match
      (`checkpoint_meta.check_meta`).

  Returns:
    (params, meta, step).

  Raises:
    InputError: no checkpoints; a mismatch (every differing field named); a checkpoint that
      cannot be read (fold, step, path, reason, and the next intact checkpoint, if any).
  """
  ckpt_dir = os.path.join(fold_dir, 'checkpoints')
  if not os.path.isdir(ckpt_dir):
    raise InputError(f'no checkpoints for {os.path.basename(fold_dir)}: {ckpt_dir} is missing.')
  mngr = manager(ckpt_dir, read_only=True)
  try:
    step = select_step(mngr, which)
    try:
      params, meta = _read_params(mngr, step, abstract_params)
      error = readable = None
    except Exception as e:
      params, (meta, error) = None, _meta_or_error(mngr, step, e)
      readable = _next_readable(mngr, step, abstract_params)
    if meta is not None:  # a checkpoint of another run is reported as that, readable or not
      checkpoint_meta.check_meta(meta, expected, os.path.join(ckpt_dir, str(step)))
    if error is not None:
      name = os.path.basename(fold_dir)
      raise checkpoint_files.unreadable(name, ckpt_dir, step, reason(error), readable) from error
    return params, meta, step
  finally:
    mngr.close()


def _meta_or_error(mngr, step: int, error: Exception) -> tuple[dict | None, Exception]:
  """(meta, `error`) of a checkpoint whose other items could not be restored, or (None, the
  error that reading its meta raised)."""
  try:
    return restore_meta(mngr, step), error
  except Exception as e:
    return None, e


def _next_readable(mngr, step: int, abstract_params) -> int | None:
  """The newest checkpoint other than `step` whose parameters can be read, or None."""
  others = [s for s in sorted(mngr.all_steps(), reverse=True) if s != step]
  return next((s for s in others if _readable(mngr, s, abstract_params)), None)


def _readable(mngr, step: int, abstract_params) -> bool:
  try:
    _read_params(mngr, step, abstract_params)
    return True
  except Exception:
    return False


def restore_train_state(mngr: ocp.CheckpointManager, step: int, abstract: TrainState):
  """Restores the full train state (to resume) and meta at `step` into `abstract`'s structure.

  Raises:
    Exception: whatever Orbax raises for an unreadable checkpoint (`resume` sets such a
      checkpoint aside and tries the next).
  """
  train = {
    'step': abstract.step,
    'opt_state': abstract.opt_state,
    'dropout_key': abstract.dropout_key,
  }
  if abstract.ema_params is not None:
    train['params'] = abstract.params
  restored = mngr.restore(
    step,
    args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract.eval_params),
      train=ocp.args.StandardRestore(train),
      meta=ocp.args.JsonRestore(),
    ),
  )
  item = restored.train
  if abstract.ema_params is None:
    state = abstract.replace(params=restored.params, ema_params=None)
  else:
    state = abstract.replace(params=item['params'], ema_params=restored.params)
  state = state.replace(
    step=item['step'], opt_state=item['opt_state'], dropout_key=item['dropout_key']
  )
  _finite((state.params, state.opt_state), 'the train state')
  if int(state.step) != step:
    raise ValueError(f'the train state holds step {int(state.step)}, not {step}')
  return state, restored.meta


def resume(
  mngr: ocp.CheckpointManager,
  fold_dir: str,
  fold: int,
  abstract: TrainState,
  expected: dict,
  *,
  allow: bool,
) -> tuple[TrainState | None, int]:
  """The newest intact checkpoint's (train state, step), or (None, 0); the unreadable ones
  before it are set aside (`checkpoint_files.set_aside`).

  Args:
    mngr: the fold's manager.
    fold_dir: the fold's directory (`WORKDIR/fold_K`).
    fold: the fold's number, for the log.
    abstract: `train_state.abstract_state` of the run: the structure to restore into.
    expected: `checkpoint_meta.run_meta` of the run's config.
    allow: `config.resume_changed`: resume despite differing fields outside `MEANING`.

  Raises:
    InputError: the checkpoint was written by a run that differs in a field its parameters
      depend on (always), or in one resuming depends on (unless `allow`), or it cannot be
      restored across the differences `allow` let through.
  """
  while (step := mngr.latest_step()) is not None:
    where = os.path.join(str(mngr.directory), str(step))
    try:
      state, meta = restore_train_state(mngr, step, abstract)
      error = None
    except Exception as e:
      state, (meta, error) = None, _meta_or_error(mngr, step, e)
    if meta is not None:  # a checkpoint of another run is refused, readable or not
      diffs = checkpoint_meta.check_meta(meta, expected, where, resume=True, allow=allow)
      if diffs:
        logging.warning('fold %d: resuming despite differences: %s', fold, '; '.join(diffs))
      if state is not None:
        logging.info('fold %d: resuming from checkpoint step %d', fold, step)
        return state, step
      if diffs:  # not damage: the changed config cannot take this checkpoint's state
        raise InputError(
          f'checkpoint {where} cannot be resumed with the changed {"; ".join(diffs)} '
          f'({reason(error)}). Use a new --workdir.'
        ) from error
    aside = checkpoint_files.set_aside(str(mngr.directory), step, fold_dir)
    logging.warning(
      'fold %d: checkpoint step %d at %s cannot be read (%s); moved to %s, trying the next',
      fold,
      step,
      where,
      reason(error),
      aside,
    )
    mngr.reload()
  return None, 0
