"""One Orbax CheckpointManager per fold: the latest and the best (by validation Spearman) kept.

Each checkpoint holds two items: `state` (params, optimiser state, step) and `meta` (JSON: the
fold's thresholds and score values, feature dimensions, K, epoch, validation metrics), so that a
checkpoint alone is enough to score new data.
"""

import contextlib
import os

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from memjax.errors import InputError, out_of_space

BEST_METRIC = 'val_spearman'


def _best_value(metrics: dict) -> float:
  return metrics[BEST_METRIC]


def manager(directory: str, *, read_only: bool = False) -> ocp.CheckpointManager:
  """The fold's manager; creating it removes unfinished (tmp) checkpoints a crash left."""
  options = ocp.CheckpointManagerOptions(
    best_fn=_best_value,
    best_mode='max',
    preservation_policy=pp.AnyPreservationPolicy(
      [pp.LatestN(n=1), pp.BestN(get_metric_fn=_best_value, reverse=False, n=1)]
    ),
    create=not read_only,
    read_only=read_only,
    cleanup_tmp_directories=not read_only,
    enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(
    os.path.abspath(directory), options=options, item_names=('state', 'meta')
  )


def save(mngr: ocp.CheckpointManager, step: int, state, meta: dict, metrics: dict) -> None:
  """Writes `state` and `meta` at `step`, ranked by `metrics[BEST_METRIC]`.

  Orbax writes into a temporary directory renamed only once complete, so a failed write never
  looks like a checkpoint (the next manager of the fold removes it).

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
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics=metrics,
      )
    except BaseException:
      with contextlib.suppress(Exception):  # items still in flight end before anything else
        mngr.wait_until_finished()
      raise
    mngr.wait_until_finished()


def select_step(mngr: ocp.CheckpointManager, which: str) -> int:
  """`best`, `latest`, or a step number given as a string.

  Raises:
    InputError: no checkpoint, or the asked-for step does not exist.
  """
  steps = mngr.all_steps()
  if not steps:
    raise InputError(f'no checkpoint in {mngr.directory}: train this fold first.')
  if which == 'best':
    return mngr.best_step()
  if which == 'latest':
    return mngr.latest_step()
  if which.isdigit() and int(which) in steps:
    return int(which)
  raise InputError(
    f'config.eval.checkpoint={which!r}: expected best, latest or one of the steps '
    f'{sorted(steps)} in {mngr.directory}.'
  )


def restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict:
  return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state):
  """Restores (state, meta) at `step` into `abstract_state`'s structure and shardings, which may
  be on a different device count than the one that wrote it."""
  restored = mngr.restore(
    step,
    args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
    ),
  )
  return restored.state, restored.meta


def abstract_like(state_shapes, sharding):
  """ShapeDtypeStructs carrying `sharding`, from the `jax.eval_shape` of a state."""
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state_shapes
  )
