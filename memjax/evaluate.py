"""Exact evaluation: predictions for a set of rows, fold scoring from checkpoints, `evaluate` mode.

Every example is scored exactly once: batches are padded and masked on device, the padded rows
are dropped on the host, and the on-device count is checked against the set's size.
"""

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from memjax import (
  checkpointing,
  datasets,
  finetune,
  fold_data,
  input_pipeline,
  metrics,
  models,
  parallel,
  results,
  run_record,
  steps,
)
from memjax.errors import InputError
from memjax.runtime import progress, xla_options


def eval_program(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  mesh: Mesh,
  backbone: finetune.Backbone | None = None,
):
  """The jitted eval step of `config` on `data` (built once per run, shared by its folds)."""
  return steps.jit_eval_step(
    models.create_model(config),
    mesh,
    backbone=backbone or finetune.backbone(config, data.extractors),
    compiler_options=xla_options.compiler_options('eval', config.cpu_library_fusions),
  )


def predict(
  eval_fn, params, fd: fold_data.FoldData, indices: np.ndarray, consts, frozen, batch_size, mesh
) -> tuple[dict, dict]:
  """Predictions ([n, ...] NumPy, in `indices` order) and metric sums over `indices`."""
  outputs, sums = [], None
  share = parallel.process_share(batch_size)
  for batch in input_pipeline.eval_batches(fd.arrays, indices, batch_size=batch_size, share=share):
    preds, batch_sums = eval_fn(params, parallel.to_global(batch, mesh, 0), consts, frozen)
    outputs.append(preds)
    sums = batch_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, batch_sums)
  outputs, sums = parallel.fetch((outputs, sums))
  preds = {k: np.concatenate([o[k] for o in outputs])[: indices.size] for k in outputs[0]}
  if int(sums['count']) != indices.size:
    raise AssertionError(f'evaluation counted {sums["count"]} examples, expected {indices.size}')
  return preds, sums


def score(
  eval_fn, params, fd: fold_data.FoldData, indices, consts, frozen, config, mesh: Mesh
) -> dict:
  """Spearman, Pearson, MSE, accuracy, loss, calibration and count of the model on `indices`."""
  preds, sums = predict(eval_fn, params, fd, indices, consts, frozen, config.eval_batch_size, mesh)
  out = metrics.score_metrics(
    preds['score'], fd.arrays['score'][indices], preds['class'], fd.arrays['label'][indices]
  )
  out['loss'] = float(sums['loss'] / sums['count'])
  return out


def restore_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  fold: int,
  workdir: str,
  mesh,
  backbone: finetune.Backbone | None = None,
) -> tuple:
  """(params, meta, step) of fold `fold`'s checkpoint `config.eval.checkpoint` (`backbone`:
  the run's, when the caller has it).

  Raises:
    InputError: no checkpoints, a mismatch with the config, or an unreadable checkpoint.
  """
  dims = data.feature_dims(config.features)
  backbone = backbone or finetune.backbone(config, data.extractors)
  return checkpointing.restore_params(
    results.fold_dir(workdir, fold),
    config.eval.checkpoint,
    steps.abstract_params(models.create_model(config), dims, mesh, backbone=backbone),
    checkpointing.run_meta(config, dims),
  )


def frozen_weights(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  backbone: finetune.Backbone | None = None,
) -> dict:
  """The extractors' fixed weights by feature name (the steps' `frozen`; empty with a store):
  all of them, or what fine-tuning leaves untrained."""
  if data.extractors is None:
    return {}
  backbone = backbone or finetune.backbone(config, data.extractors)
  return backbone.frozen_weights(config.features)


def evaluate_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  plan: fold_data.FoldPlan,
  fold: int,
  mesh: Mesh,
  workdir: str,
  eval_fn=None,
  backbone: finetune.Backbone | None = None,
  write: bool = True,
) -> dict:
  """Restores fold `fold`'s chosen checkpoint, scores its test rows, writes `eval.json`.

  `eval_fn` and `backbone`: the run's, built once for all folds (built here when None).
  `write`: False leaves the fold's folder untouched (`config.eval.output`).
  """
  backbone = backbone or finetune.backbone(config, data.extractors)
  params, meta, step = restore_fold(config, data, fold, workdir, mesh, backbone)
  fd = fold_data.prepare(config, data, plan, fold, stored=meta)
  consts = parallel.replicate(fd.consts(), mesh)
  frozen = parallel.replicate(frozen_weights(config, data, backbone), mesh)
  eval_fn = eval_fn or eval_program(config, data, mesh, backbone)
  result = score(eval_fn, params, fd, fd.split.test, consts, frozen, config, mesh)
  val = meta.get('val') or {}
  result.update(
    fold=fold,
    name=fd.name,
    checkpoint_step=step,
    epoch=meta['epoch'],
    val_spearman=val.get('spearman'),
    num_train=int(fd.split.train.size),
    num_val=int(fd.split.val.size),
    num_test=int(fd.split.test.size),
  )
  if config.model.head == 'classification':
    result.update(thresholds=meta['thresholds'], score_values=meta['values'])
  else:  # a sigmoid score: no classes
    result.pop('accuracy', None)
  if write:
    results.write_json(os.path.join(results.fold_dir(workdir, fold), results.EVAL_FILE), result)
  logging.info(
    'fold %d: test Spearman %.4f on %d examples (checkpoint step %d)',
    fold,
    result['spearman'],
    result['num_examples'],
    step,
    extra=progress.CONSOLE,
  )
  return result


def folds_to_run(config: ml_collections.ConfigDict, num_folds: int) -> list[int]:
  """`config.data.run_folds`, or all `num_folds` folds when it is empty."""
  chosen = list(config.data.run_folds) or list(range(num_folds))
  bad = [f for f in chosen if not 0 <= f < num_folds]
  if bad:
    raise InputError(f'config.data.run_folds has folds {bad} outside 0..{num_folds - 1}.')
  return chosen


def unfinished_folds(config, plans, folds, workdir: str) -> list[str]:
  """`fold K (step S of T)` for each of `folds` whose training has not reached its last step."""
  out = []
  for fold in folds:
    train_rows = plans[fold].split.train.size
    total = input_pipeline.steps_per_epoch(train_rows, config.batch_size) * config.num_epochs
    saved = checkpointing.saved_steps(results.fold_dir(workdir, fold))
    if saved and saved[-1] != total:
      out.append(f'fold {fold} (step {saved[-1]} of {total})')
  return out


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=evaluate`: re-scores every fold from its checkpoint alone; writes the summary (and
  each fold's eval.json), or with `config.eval.output` only that file, leaving WORKDIR untouched
  (a read-only workdir can be evaluated).

  Raises:
    InputError: the workdir holds no trained run or another run; a fold is unfinished (nothing
      is written then); a checkpoint is missing, unreadable or does not match.
  """
  start = time.time()
  run_record.check_kind(workdir, 'evaluate')
  data = datasets.load(config)
  mesh = parallel.make_mesh()
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
  plans = fold_data.plan_folds(config, data)
  folds = folds_to_run(config, len(plans))
  changes = run_record.check(config, data, workdir)
  unfinished = unfinished_folds(config, plans, folds, workdir)
  if unfinished:
    raise InputError(
      f'{workdir}: {", ".join(unfinished)} did not finish training; nothing was written. '
      'Re-run --mode=train to finish, or leave them out with --config.data.run_folds.'
    )
  backbone = finetune.backbone(config, data.extractors)
  eval_fn = eval_program(config, data, mesh, backbone)
  out = config.eval.output
  fold_results = [
    evaluate_fold(config, data, plans[fold], fold, mesh, workdir, eval_fn, backbone, not out)
    for fold in folds
  ]
  summary = results.summarize(
    config, data, fold_results, mode='evaluate', wall_seconds=time.time() - start
  )
  if changes:
    summary['resumed_with_changes'] = changes
  results.write_json(out or os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info('%s', results.mean_line(summary), extra=progress.CONSOLE)
  return summary
