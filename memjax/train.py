"""Per-fold training loop and `train_and_evaluate`, the library entry point of `--mode=train`.

A fold trains for `num_epochs`; after each epoch it is scored on its validation rows and
checkpointed (the two latest and the best by validation Spearman are kept). Re-running the same
command resumes an unfinished fold from its latest intact checkpoint and skips finished folds
(those with an `eval.json`); a re-run with a config that changes results is refused
(`run_record`). When a fold's training ends, its chosen checkpoint is restored and scored on the
test rows, so the reported numbers are exactly what `--mode=evaluate` recomputes.

The jitted programs (init, train, eval) are built once per run and shared by every fold: the
fold's constants, its train state and the frozen extractor weights are arguments.

A run killed anywhere (mid-step, mid-checkpoint, between folds) and re-run ends with the same
numbers: Orbax commits a checkpoint by renaming its finished temporary directory, so an
interrupted one is ignored (and removed); data order and dropout keys are functions of
(seed, fold, step), so the steps after the latest checkpoint are redone exactly. SIGTERM or
SIGINT stops at the next chunk of steps with a checkpoint at that step (`runtime.interrupts`).
"""

import contextlib
import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from memjax import (
  augment,
  checkpointing,
  data_identity,
  datasets,
  device_table,
  evaluate,
  finetune,
  fold_data,
  input_pipeline,
  labels,
  models,
  parallel,
  results,
  run_record,
  schema,
  steps,
)
from memjax.errors import DivergedError, InputError, StoppedError
from memjax.features import registry
from memjax.runtime import fault_points, interrupts, progress, scalar_writer, xla_options

NOT_RANKED = -2.0  # the ranking value of a checkpoint written mid-epoch (never the best)


@dataclasses.dataclass(frozen=True)
class Programs:
  """A run's jitted functions, compiled once and shared by its folds.

  Attributes:
    init: `(init_key, dropout_key) -> TrainState`, replicated.
    train: `(state, batches [T, B, ...], consts, frozen) -> (state, metric sums)`.
    train_on_table: `(state, rows [T, B], consts, frozen, table) -> (state, metric sums)`, the
      batches gathered from a device-resident table (`device_table`).
    eval: `(params, batch, consts, frozen) -> (predictions, metric sums)`.
    tx: the optimiser.
    ema: whether the state carries a parameter moving average.
    backbone: the on-the-fly extractors and what fine-tuning trains of them (None: a store).
  """

  init: Callable
  train: Callable
  train_on_table: Callable
  eval: Callable
  tx: object
  ema: bool
  backbone: finetune.Backbone | None = None


def build_programs(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  mesh: Mesh,
  steps_per_epoch: int,
) -> Programs:
  """The jitted init, train and eval functions of `config`."""
  model = models.create_model(config)
  tx = finetune.create_optimizer(config, steps_per_epoch * config.num_epochs, steps_per_epoch)
  dims = data.feature_dims(config.features)
  ema = config.ema_decay > 0
  backbone = finetune.backbone(config, data.extractors)
  recipe = steps.Recipe(
    label_smoothing=config.label_smoothing,
    ema_decay=config.ema_decay,
    augment=augment.spec_of(config),
    unfreeze_step=finetune.unfreeze_step(config, steps_per_epoch),
  )
  train = functools.partial(
    steps.jit_train_steps,
    model,
    tx,
    mesh,
    recipe=recipe,
    backbone=backbone,
    compiler_options=xla_options.compiler_options('train', config.cpu_library_fusions),
  )
  return Programs(  # jax.jit compiles on first call: the path a fold does not take costs nothing
    init=steps.jit_create_state(model, tx, dims, mesh, ema=ema, backbone=backbone),
    train=train(),
    train_on_table=train(on_table=True),
    eval=evaluate.eval_program(config, data, mesh, backbone),
    tx=tx,
    ema=ema,
    backbone=backbone,
  )


def _epoch_metrics(sums, fold: int, step: int, last_good: int | None) -> dict:
  """Host-side training metrics of an epoch; a non-finite loss stops the fold.

  Raises:
    DivergedError: naming the fold, the step, and the last good checkpoint, which is kept.
  """
  sums = parallel.fetch(sums)
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


def _resume(config, mngr, fdir: str, fold: int, abstract, expected: dict):
  """The newest intact checkpoint's (state, step), or (None, 0); damaged ones are set aside.

  Raises:
    InputError: the checkpoint was written by a run that differs in a field its parameters
      depend on (always), or in one resuming depends on (unless `config.resume_changed`), or
      it cannot be restored across the differences `resume_changed` allowed.
  """
  while (step := mngr.latest_step()) is not None:
    where = os.path.join(str(mngr.directory), str(step))
    try:
      meta = checkpointing.restore_meta(mngr, step)
    except Exception as e:
      _set_aside(mngr, step, fdir, fold, where, e)
      continue
    diffs = checkpointing.check_meta(
      meta, expected, where, resume=True, allow=config.resume_changed
    )
    if diffs:
      logging.warning('fold %d: resuming despite differences: %s', fold, '; '.join(diffs))
    try:
      state, _ = checkpointing.restore_train_state(mngr, step, abstract)
    except Exception as e:
      if diffs:  # not damage: the changed config cannot take this checkpoint's state
        raise InputError(
          f'checkpoint {where} cannot be resumed with the changed {"; ".join(diffs)} '
          f'({checkpointing.reason(e)}). Use a new --workdir.'
        ) from e
      _set_aside(mngr, step, fdir, fold, where, e)
      continue
    logging.info('fold %d: resuming from checkpoint step %d', fold, step)
    return state, step
  return None, 0


def _set_aside(mngr, step: int, fdir: str, fold: int, where: str, error: Exception) -> None:
  aside = checkpointing.set_aside(mngr, step, fdir)
  logging.warning(
    'fold %d: checkpoint step %d at %s cannot be read (%s); moved to %s, trying the next',
    fold,
    step,
    where,
    checkpointing.reason(error),
    aside,
  )
  mngr.reload()


def train_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  fd: fold_data.FoldData,
  mesh: Mesh,
  workdir: str,
  programs: Programs,
  shown: progress.RunProgress,
  index: int,
) -> None:
  """Trains fold `fd.fold` to `config.num_epochs`, resuming from its latest checkpoint if any.

  `shown`: the run's progress; this fold is its `index`-th (1-based).

  Raises:
    DivergedError: a non-finite training loss.
    StoppedError: SIGTERM/SIGINT; a checkpoint at the current step was written first.
  """
  fold = fd.fold
  fdir = results.fold_dir(workdir, fold)
  steps_per_epoch = input_pipeline.steps_per_epoch(fd.split.train.size, config.batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  feature_dims = data.feature_dims(config.features)
  expected = checkpointing.run_meta(config, feature_dims)
  consts = parallel.replicate(fd.consts(), mesh)
  backbone = programs.backbone
  frozen = parallel.replicate(evaluate.frozen_weights(config, data, backbone), mesh)
  mngr = checkpointing.manager(os.path.join(fdir, 'checkpoints'))
  model = models.create_model(config)
  abstract = steps.abstract_state(
    model, programs.tx, feature_dims, mesh, ema=programs.ema, backbone=backbone
  )
  state, step = _resume(config, mngr, fdir, fold, abstract, expected)
  shown.skip(step)
  if state is None:
    init_key, dropout_key = jax.random.split(fold_data.fold_key(config.seed, fold))
    weights = None
    if backbone is not None and backbone.trained:
      weights = parallel.replicate(backbone.weights(config.features), mesh)
    rep = lambda x: parallel.replicate(x, mesh)
    state = programs.init(rep(init_key), rep(dropout_key), weights)
  first_step = step
  meta = {
    **expected,
    'fold': fold,
    'thresholds': fd.thresholds.tolist(),
    'values': fd.values.tolist(),
    'score_values': config.score_values,
    'dataset': data.name,
  }
  if config.standardize:
    meta['shift'] = {n: v.tolist() for n, v in fd.shift.items()}
    meta['scale'] = {n: v.tolist() for n, v in fd.scale.items()}

  writer = scalar_writer.create_writer(fdir, just_logging=jax.process_index() > 0)
  share = parallel.process_share(config.batch_size)
  resident, why = device_table.choose(config.data.device_resident, fd.arrays)
  table = device_table.put(fd.arrays, mesh) if resident else None
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
    sums = None
    calls = _train_calls(
      fd,
      table,
      mesh,
      batch_size=config.batch_size,
      steps_per_call=config.steps_per_call,
      seed=(config.seed, fold),
      epoch=epoch,
      first_step=step - epoch * steps_per_epoch,
      share=share,
    )
    for batches, num_steps in calls:
      if table is None:
        state, chunk_sums = programs.train(state, batches, consts, frozen)
      else:
        state, chunk_sums = programs.train_on_table(state, batches, consts, frozen, table)
      fault_points.reached('train_chunk')
      sums = chunk_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, chunk_sums)
      step += num_steps
      shown.advance(num_steps)
      if step < (epoch + 1) * steps_per_epoch and interrupts.requested():
        _stop(mngr, step, state, {**meta, 'epoch': epoch, 'val': None}, fold)
    scalars = _epoch_metrics(sums, fold, step, mngr.latest_step())
    val = evaluate.score(
      programs.eval, state.eval_params, fd, fd.split.val, consts, frozen, config, mesh
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
    if epoch + 1 < config.num_epochs and interrupts.requested():
      _stop(mngr, step, None, None, fold)
  writer.flush()
  mngr.close()
  if step > first_step:
    logging.info(
      'fold %d: this run trained steps %d to %d of %d', fold, first_step, step, total_steps
    )
  else:
    logging.info('fold %d: all %d steps were trained before; nothing to train', fold, step)


def _train_calls(fd: fold_data.FoldData, table, mesh: Mesh, **order):
  """(batches argument, number of steps) of each train call of an epoch: gathered chunks
  [T, B, ...] from the host, or [T, B] row numbers of the device-resident `table`."""
  if table is None:
    for chunk in input_pipeline.train_chunks(fd.arrays, fd.split.train, **order):
      yield parallel.to_global(chunk, mesh, 1), chunk['label'].shape[0]
  else:
    for rows in input_pipeline.train_row_chunks(fd.split.train, **order):
      yield parallel.to_global({'rows': rows}, mesh, 1)['rows'], rows.shape[0]


def _stop(mngr, step: int, state, meta: dict | None, fold: int) -> None:
  """Writes a checkpoint at `step` (unless one is there) and raises StoppedError."""
  if state is not None:
    checkpointing.save(mngr, step, state, meta, {checkpointing.BEST_METRIC: NOT_RANKED})
  mngr.close()
  raise StoppedError(
    f'{interrupts.signal_name()}: fold {fold} stopped at step {step} with a checkpoint there; '
    're-run the same command to resume from it.'
  )


def finished_result(workdir: str, fold: int, total_steps: int, which: str) -> dict | None:
  """The fold's `eval.json` when the fold is finished, else None.

  A fold is finished when its checkpoints reach the last step (`total_steps`) and its `eval.json`
  scored the checkpoint that `which` (`config.eval.checkpoint`) picks among them. Any other
  `eval.json` (of a fold a killed run left unfinished, or of another checkpoint) is logged and
  not taken: the fold is trained on from its checkpoints and scored again.
  """
  fdir = results.fold_dir(workdir, fold)
  path = os.path.join(fdir, results.EVAL_FILE)
  if not os.path.exists(path):
    return None
  result = results.read_json(path)
  saved = checkpointing.saved_steps(fdir)
  newest = saved[-1] if saved else None
  if newest != total_steps:
    why = f'its newest checkpoint is step {newest} of {total_steps}'
  else:
    chosen = checkpointing.chosen_step(fdir, which)
    if result.get('checkpoint_step') == chosen:
      return result
    why = (
      f'{path} scored step {result.get("checkpoint_step")}, not step {chosen} that '
      f'config.eval.checkpoint={which!r} picks'
    )
  logging.info('fold %d is not finished (%s): training and scoring it', fold, why)
  return None


def check_store_extractors(config: ml_collections.ConfigDict, data: datasets.MemorabilityData):
  """With features from a store: the config's extractor of each feature, where it can be built
  (its weight file given, or shipped by a package), must be the one the store was made with;
  `predict` will compute the features with it.

  Raises:
    InputError: naming the feature and what differs.
  """
  if data.extractors is not None or not data.sources:
    return
  stored = {n: data_identity.feature_identities(data, [n]) for n in config.features}
  for name in config.features:
    if name not in config.extractors or not stored[name]:
      continue
    try:
      extractor = registry.build(config, name)
    except InputError as e:
      logging.info('feature %s: its config extractor is not checked against the store: %s', name, e)
      continue
    data_identity.check_identities(
      stored[name],
      {name: data_identity.extractor_identity(extractor)},
      f'the feature store {config.data.features_dir}',
      'config.extractors.{name}',
    )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every fold (resuming or skipping finished ones), scores each fold's chosen
  checkpoint on its test rows, and writes `config.json`, `run.json`, `fold_K/eval.json` and
  `summary.json`.

  Returns:
    The summary dict (also written to `WORKDIR/summary.json`).
  """
  start = time.time()
  data = datasets.load(config)
  mesh = parallel.make_mesh()
  schema.check_devices(config, mesh)
  plans = fold_data.plan_folds(config, data)
  to_run = evaluate.folds_to_run(config, len(plans))
  spe = {}
  for fold in to_run:  # K and sizes against every fold, before anything is written
    train = plans[fold].split.train
    labels.quantile_thresholds(plans[fold].scores[train], config.num_classes)
    spe[fold] = input_pipeline.steps_per_epoch(train.size, config.batch_size)
    if spe[fold] == 0:
      raise InputError(
        f'fold {fold} has {train.size} training rows, fewer than '
        f'config.batch_size={config.batch_size}.'
      )
  check_store_extractors(config, data)
  changes = run_record.check(config, data, workdir)
  results.write_json(os.path.join(workdir, results.CONFIG_FILE), config.to_dict())
  logging.info(
    '%s; %d devices in %d processes', data.description, jax.device_count(), jax.process_count()
  )
  programs: dict[int, Programs] = {}  # by steps per epoch (schedules depend on it)
  fold_results = []
  finished = {
    f: finished_result(workdir, f, spe[f] * config.num_epochs, config.eval.checkpoint)
    for f in to_run
  }
  shown = progress.RunProgress(
    sum(spe[f] * config.num_epochs for f in to_run if finished[f] is None),
    len(to_run),
    config.batch_size,
  )
  with interrupts.stop_requests(), contextlib.closing(shown):
    for index, fold in enumerate(to_run, start=1):
      if finished[fold] is not None:
        logging.info('fold %d already finished; skipping', fold)
        fold_results.append(finished[fold])
        continue
      by_epoch = config.optimizer.schedule != 'constant' or config.finetune.mode != 'none'
      key = spe[fold] if by_epoch else 0  # schedules and the unfreeze step depend on it
      if key not in programs:
        programs[key] = build_programs(config, data, mesh, spe[fold])
      fd = fold_data.prepare(config, data, plans[fold], fold)
      train_fold(config, data, fd, mesh, workdir, programs[key], shown, index)
      fold_results.append(
        evaluate.evaluate_fold(
          config,
          data,
          plans[fold],
          fold,
          mesh,
          workdir,
          programs[key].eval,
          programs[key].backbone,
        )
      )
      fault_points.reached('fold_done')
      if fold != to_run[-1] and interrupts.requested():
        raise StoppedError(
          f'{interrupts.signal_name()}: stopped after fold {fold} finished; re-run the same '
          'command to go on with the next fold.'
        )
  summary = results.summarize(
    config, data, fold_results, mode='train', wall_seconds=time.time() - start
  )
  if changes:
    summary['resumed_with_changes'] = changes
  results.write_json(os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info('%s', results.mean_line(summary), extra=progress.CONSOLE)
  return summary
