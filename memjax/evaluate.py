"""Evaluation: a fold's chosen checkpoint scored on its test rows, and `--mode=evaluate`.

The scores are exact (`scoring`: every test example once, the count checked) and are what
training reported for the same checkpoint.
"""

import os
import time

import ml_collections
from absl import logging

from memjax import (
  checkpointing,
  datasets,
  fold_data,
  folds,
  input_pipeline,
  parallel,
  results,
  run_parts,
  run_record,
  scoring,
)
from memjax.errors import InputError
from memjax.run_parts import RunParts
from memjax.runtime import progress


def evaluate_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  parts: RunParts,
  plan: fold_data.FoldPlan,
  fold: int,
  workdir: str,
  write: bool = True,
) -> dict:
  """Restores fold `fold`'s chosen checkpoint (`config.eval.checkpoint`), scores its test rows,
  writes `eval.json`.

  `parts`: the run's, built once for all folds. `write`: False leaves the fold's folder untouched
  (`config.eval.output`).

  Raises:
    InputError: no checkpoints, a mismatch with the run, or an unreadable checkpoint.
  """
  params, meta, step = parts.restore(results.fold_dir(workdir, fold), config.eval.checkpoint)
  fd = fold_data.prepare(config, data, plan, fold, stored=meta)
  consts = parallel.replicate(fd.consts, parts.mesh)
  result = scoring.score(parts, params, fd, fd.split.test, consts)
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
  if parts.model.head == 'classification':
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
  to_run = folds.folds_to_run(config.data.run_folds, len(plans))
  changes = run_record.check(config, data, workdir)
  unfinished = unfinished_folds(config, plans, to_run, workdir)
  if unfinished:
    raise InputError(
      f'{workdir}: {", ".join(unfinished)} did not finish training; nothing was written. '
      'Re-run --mode=train to finish, or leave them out with --config.data.run_folds.'
    )
  parts = run_parts.build_parts(config, data.extractors, data.feature_dims(config.features), mesh)
  out = config.eval.output
  fold_results = [
    evaluate_fold(config, data, parts, plans[fold], fold, workdir, not out) for fold in to_run
  ]
  summary = results.summarize(
    config, data, fold_results, mode='evaluate', wall_seconds=time.time() - start
  )
  if changes:
    summary['resumed_with_changes'] = changes
  results.write_json(out or os.path.join(workdir, results.SUMMARY_FILE), summary)
  logging.info('%s', results.mean_line(summary), extra=progress.CONSOLE)
  return summary
