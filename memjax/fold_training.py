"""Training one fold: epochs of jitted steps, validation, checkpoints, resuming and stopping.

A fold trains for `num_epochs`; after each epoch it is scored on its validation rows and
checkpointed (the two latest and the best by validation Spearman are kept). A fold with
checkpoints resumes from its latest intact one; a damaged one is set aside (never deleted) and the
next is tried. Data order and dropout keys are functions of (seed, fold, step), so the steps after
the latest checkpoint are redone exactly. SIGTERM or SIGINT stops at the next chunk of steps with
a checkpoint at that step (`runtime.interrupts`).
"""

import math
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from memjax import (
  checkpointing,
  device_table,
  fold_data,
  input_pipeline,
  parallel,
  results,
  scoring,
)
from memjax.errors import DivergedError, StoppedError
from memjax.run_parts import RunParts
from memjax.runtime import fault_points, interrupts, progress, scalar_writer
from memjax.train_programs import Programs

NOT_RANKED = -2.0  # the ranking value of a checkpoint written mid-epoch (never the best)


def train_fold(
  config: ml_collections.ConfigDict,
  fd: fold_data.FoldData,
  parts: RunParts,
  programs: Programs,
  workdir: str,
  shown: progress.RunProgress,
  index: int,
  dataset: str,
) -> None:
  """Trains fold `fd.fold` of `dataset` to `config.num_epochs`, resuming from its latest
  checkpoint if any.

  `shown`: the run's progress; this fold is its `index`-th (1-based).

  Raises:
    DivergedError: a non-finite training loss.
    StoppedError: SIGTERM/SIGINT; a checkpoint at the current step was written first.
    InputError: a checkpoint written by a run that differs (`checkpointing.resume`).
  """
  fold, mesh = fd.fold, parts.mesh
  fdir = results.fold_dir(workdir, fold)
  steps_per_epoch = input_pipeline.steps_per_epoch(fd.split.train.size, config.batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  meta = _fold_meta(parts.expected, fd, config, dataset)
  mngr = checkpointing.manager(os.path.join(fdir, 'checkpoints'))
  state, step = checkpointing.resume(
    mngr, fdir, fold, programs.abstract_state, parts.expected, allow=config.resume_changed
  )
  first_step = step
  shown.skip(step)
  resident, why = device_table.choose(config.data.device_resident, fd.arrays)
  table = device_table.put(fd.arrays, mesh) if resident else None
  consts = parallel.replicate(fd.consts, mesh)
  if state is None:
    init_key, dropout_key = jax.random.split(fold_data.fold_key(config.seed, fold))
    weights = None
    if parts.backbone is not None and parts.backbone.trained:
      weights = parallel.replicate(parts.backbone.weights(config.features), mesh)
    rep = lambda x: parallel.replicate(x, mesh)
    state = programs.init(rep(init_key), rep(dropout_key), weights)
  writer = scalar_writer.create_writer(fdir, just_logging=jax.process_index() > 0)
  share = parallel.process_share(config.batch_size)
  sharding = parallel.batch_sharding(mesh, 1)  # chunks [T, B, ...] split along B
  logging.info(
    'fold %d: %d train / %d val / %d test rows; thresholds %s; %d steps per epoch; '
    'row arrays %s (%s)',
    fold,
    fd.split.train.size,
    fd.split.val.size,
    fd.split.test.size,
    np.round(fd.thresholds, 4).tolist(),
    steps_per_epoch,
    'on the devices' if resident else 'on the host',
    why,
  )
  for epoch in range(step // steps_per_epoch, config.num_epochs):
    shown.at(index, epoch + 1, config.num_epochs)
    epoch_end = (epoch + 1) * steps_per_epoch
    sums = None
    calls = input_pipeline.train_calls(
      fd.arrays,
      fd.split.train,
      sharding,
      on_table=table is not None,
      batch_size=config.batch_size,
      steps_per_call=config.steps_per_call,
      seed=(config.seed, fold),
      epoch=epoch,
      first_step=step - epoch * steps_per_epoch,
      share=share,
    )
    for batches, num_steps in calls:
      if table is None:
        state, chunk_sums = programs.train(state, batches, consts, parts.frozen)
      else:
        state, chunk_sums = programs.train_on_table(state, batches, consts, parts.frozen, table)
      fault_points.reached('train_chunk')
      sums = chunk_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, chunk_sums)
      step += num_steps
      shown.advance(num_steps)
      if step < epoch_end and interrupts.requested():
        break
    if step == epoch_end:
      scalars = _train_metrics(parallel.fetch(sums), fold, step, mngr.latest_step())
      val = scoring.score(parts, state.eval_params, fd, fd.split.val, consts)
      scalars.update({f'val_{k}': v for k, v in val.items() if k != 'num_examples'})
      writer.write_scalars(step, scalars)
      rank = val['spearman'] if math.isfinite(val['spearman']) else -1.0
      finished = {**meta, 'epoch': epoch + 1, 'val': val}
      checkpointing.save(mngr, step, state, finished, {checkpointing.BEST_METRIC: rank})
      logging.info(
        'fold %d epoch %d of %d (step %d; %s of the run): train loss %.4f, val Spearman %.4f; %s',
        fold,
        epoch + 1,
        config.num_epochs,
        step,
        shown.where.split(' epoch')[0],
        scalars['train_loss'],
        val['spearman'],
        shown.summary(),
      )
    else:  # stopped mid-epoch: a checkpoint here, never ranked the best
      stopped = {**meta, 'epoch': epoch, 'val': None}
      checkpointing.save(mngr, step, state, stopped, {checkpointing.BEST_METRIC: NOT_RANKED})
    if step < total_steps and interrupts.requested():
      mngr.close()
      raise StoppedError(
        f'{interrupts.signal_name()}: fold {fold} stopped at step {step} with a checkpoint '
        'there; re-run the same command to resume from it.'
      )
  writer.flush()
  mngr.close()
  if step > first_step:
    logging.info(
      'fold %d: this run trained steps %d to %d of %d', fold, first_step, step, total_steps
    )
  else:
    logging.info('fold %d: all %d steps were trained before; nothing to train', fold, step)


def _fold_meta(
  expected: dict, fd: fold_data.FoldData, config: ml_collections.ConfigDict, dataset: str
) -> dict:
  """What each checkpoint of the fold records beside its epoch and validation metrics: the
  run's `expected` record, the fold's thresholds and s_k, and its standardisation when on."""
  meta = {
    **expected,
    'fold': fd.fold,
    'thresholds': fd.thresholds.tolist(),
    'values': fd.values.tolist(),
    'score_values': config.score_values,
    'dataset': dataset,
  }
  if config.standardize:
    meta['shift'] = {n: v.tolist() for n, v in fd.consts.shift.items()}
    meta['scale'] = {n: v.tolist() for n, v in fd.consts.scale.items()}
  return meta


def _train_metrics(sums: dict, fold: int, step: int, last_good: int | None) -> dict:
  """Training metrics of an epoch from its metric sums (on the host); a non-finite loss stops
  the fold.

  Raises:
    DivergedError: naming the fold, the step, and the last good checkpoint, which is kept.
  """
  loss = float(sums['loss'] / sums['count'])
  if not math.isfinite(loss):
    kept = (
      'no checkpoint was written yet'
      if last_good is None
      else f'the last good checkpoint (step {last_good}) is kept'
    )
    raise DivergedError(
      f'fold {fold}: non-finite training loss {loss} in the epoch ending at step {step}; '
      f'{kept}. Lower config.optimizer.learning_rate?'
    )
  return {'train_loss': loss, 'train_accuracy': float(sums['correct'] / sums['count'])}
