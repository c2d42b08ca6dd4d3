"""Per-fold training loop and `train_and_evaluate`, the library entry point of `--mode=train`.

A fold trains for `num_epochs`; after each epoch it is scored on its validation rows and
checkpointed (the latest and the best by validation Spearman are kept). Re-running the same
command resumes an unfinished fold from its latest checkpoint and skips finished folds (those
with an `eval.json`). When a fold's training ends, its best checkpoint is restored and scored on
the test rows, so the reported numbers are exactly what `--mode=evaluate` recomputes.

A run killed anywhere (mid-step, mid-checkpoint, between folds) and re-run ends with the same
numbers: Orbax commits a checkpoint by renaming its finished temporary directory, so an
interrupted one is ignored (and removed); data order and dropout keys are functions of
(seed, fold, step), so the steps after the latest checkpoint are redone exactly. Each fold logs
which steps this run trained (tests/test_kill_resume.py kills runs at `fault_points`).
"""

import math
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions
from jax.sharding import Mesh

from memjax import (
  checkpointing,
  datasets,
  evaluate,
  fold_data,
  input_pipeline,
  labels,
  models,
  optimizers,
  parallel,
  results,
  steps,
)
from memjax.errors import InputError
from memjax.runtime import fault_points


class NonFiniteLossError(InputError, FloatingPointError):
  """Training diverged. An InputError (`main.py` prints one line: lower the learning rate) and a
  FloatingPointError (`--mode=search` counts the trial as failed and goes on)."""


def _epoch_metrics(sums, fold: int, step: int, last_good: int | None) -> dict:
  """Host-side training metrics of an epoch; a non-finite loss stops the fold.

  Raises:
    NonFiniteLossError: naming the fold, the step, and the last good checkpoint, which is kept.
  """
  sums = parallel.fetch(sums)
  loss = float(sums['loss'] / sums['count'])
  if not math.isfinite(loss):
    kept = (
      'no checkpoint was written yet'
      if last_good is None
      else f'the last good checkpoint (step {last_good}) is kept'
    )
    raise NonFiniteLossError(
      f'fold {fold}: non-finite training loss {loss} in the epoch ending at step {step}; '
      f'{kept}. Lower config.optimizer.learning_rate?'
    )
  return {'train_loss': loss, 'train_accuracy': float(sums['correct'] / sums['count'])}


def train_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  plan: fold_data.FoldPlan,
  fold: int,
  mesh: Mesh,
  workdir: str,
) -> None:
  """Trains fold `fold` to `config.num_epochs`, resuming from its latest checkpoint if any."""
  fdir = results.fold_dir(workdir, fold)
  fd = fold_data.prepare(config, data, plan, fold)
  steps_per_epoch = input_pipeline.steps_per_epoch(fd.split.train.size, config.batch_size)
  if steps_per_epoch == 0:
    raise InputError(
      f'fold {fold} has {fd.split.train.size} training rows, fewer than '
      f'config.batch_size={config.batch_size}.'
    )
  total_steps = steps_per_epoch * config.num_epochs
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, total_steps, steps_per_epoch)
  feature_dims = data.feature_dims(config.features)
  init_key, dropout_key = jax.random.split(fold_data.fold_key(config.seed, fold))
  consts = parallel.replicate(fd.consts(np.asarray(dropout_key)), mesh)

  meta = evaluate.model_meta(config, feature_dims)
  mngr = checkpointing.manager(os.path.join(fdir, 'checkpoints'))
  step = mngr.latest_step()
  if step is None:
    state = steps.create_state(model, tx, feature_dims, parallel.replicate(init_key, mesh), mesh)
    step = 0
  else:
    where = os.path.join(mngr.directory, str(step))
    evaluate.check_meta(checkpointing.restore_meta(mngr, step), meta, where)
    state, _ = checkpointing.restore(
      mngr, step, steps.abstract_state(model, tx, feature_dims, mesh)
    )
    logging.info('fold %d: resuming from checkpoint step %d', fold, step)
  first_step = step
  meta.update(
    fold=fold,
    thresholds=fd.thresholds.tolist(),
    values=fd.values.tolist(),
    score_values=config.score_values,
    dataset=data.name,
  )

  writer = metric_writers.create_default_writer(fdir, just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(
    num_train_steps=total_steps, writer=writer, every_steps=None, every_secs=config.log_every_secs
  )
  train_fn = steps.jit_train_steps(model, mesh, extractors=data.extractors)
  eval_fn = steps.jit_eval_step(model, mesh, extractors=data.extractors)
  share = parallel.process_share(config.batch_size)
  logging.info(
    'fold %d: %d train / %d val / %d test rows; thresholds %s; %d steps per epoch',
    fold,
    fd.split.train.size,
    fd.split.val.size,
    fd.split.test.size,
    np.round(fd.thresholds, 4).tolist(),
    steps_per_epoch,
  )
  for epoch in range(step // steps_per_epoch, config.num_epochs):
    sums = None
    chunks = input_pipeline.train_chunks(
      fd.arrays,
      fd.split.train,
      batch_size=config.batch_size,
      steps_per_call=config.steps_per_call,
      seed=(config.seed, fold),
      epoch=epoch,
      first_step=step - epoch * steps_per_epoch,
      share=share,
    )
    for chunk in chunks:
      state, chunk_sums = train_fn(state, parallel.to_global(chunk, mesh, 1), consts)
      fault_points.reached('train_chunk')
      sums = chunk_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, chunk_sums)
      step += chunk['label'].shape[0]
      progress(step)
    scalars = _epoch_metrics(sums, fold, step, mngr.latest_step())
    val = evaluate.score(
      eval_fn, state.params, fd, fd.split.val, consts, config.eval_batch_size, mesh
    )
    scalars.update({f'val_{k}': v for k, v in val.items() if k != 'num_examples'})
    writer.write_scalars(step, scalars)
    rank_value = val['spearman'] if math.isfinite(val['spearman']) else -1.0
    checkpointing.save(
      mngr,
      step,
      state,
      {**meta, 'epoch': epoch + 1, 'val': val},
      {checkpointing.BEST_METRIC: rank_value},
    )
    logging.info(
      'fold %d epoch %d (step %d): train loss %.4f, val Spearman %.4f',
      fold,
      epoch + 1,
      step,
      scalars['train_loss'],
      val['spearman'],
    )
  writer.flush()
  mngr.close()
  if step > first_step:
    logging.info(
      'fold %d: this run trained steps %d to %d of %d', fold, first_step, step, total_steps
    )
  else:
    logging.info('fold %d: all %d steps were trained before; nothing to train', fold, step)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every fold (resuming or skipping finished ones), scores each fold's best checkpoint
  on its test rows, and writes `config.json`, `fold_K/eval.json` and `summary.json`.

  Returns:
    The summary dict (also written to `WORKDIR/summary.json`).
  """
  start = time.time()
  data = datasets.load(config)
  mesh = parallel.make_mesh()
  parallel.check_divisible(config.batch_size, mesh, 'config.batch_size')
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
  if not 0.0 < config.data.val_fraction < 1.0:
    raise InputError(
      f'config.data.val_fraction must be in (0, 1) (validation rows choose the '
      f'best checkpoint), got {config.data.val_fraction}.'
    )
  plans = fold_data.plan_folds(config, data)
  to_run = evaluate.folds_to_run(config, len(plans))
  for fold in to_run:  # K against every fold's training scores, before anything is written
    labels.quantile_thresholds(plans[fold].scores[plans[fold].split.train], config.num_classes)
  results.write_json(os.path.join(workdir, results.CONFIG_FILE), config.to_dict())
  logging.info(
    '%s; %d devices in %d processes', data.description, jax.device_count(), jax.process_count()
  )
  fold_results = []
  for fold in to_run:
    eval_path = os.path.join(results.fold_dir(workdir, fold), results.EVAL_FILE)
    if os.path.exists(eval_path):
      logging.info('fold %d already finished (%s); skipping', fold, eval_path)
      fold_results.append(results.read_json(eval_path))
      continue
    train_fold(config, data, plans[fold], fold, mesh, workdir)
    fold_results.append(evaluate.evaluate_fold(config, data, plans[fold], fold, mesh, workdir))
    fault_points.reached('fold_done')
  summary = results.summarize(
    config, data, fold_results, mode='train', wall_seconds=time.time() - start
  )
  results.write_json(os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info(
    'mean test Spearman over %d folds: %.4f +- %.4f (ceiling %s)',
    len(fold_results),
    summary['spearman_mean'],
    summary['spearman_std'],
    summary['ceiling'],
  )
  return summary
