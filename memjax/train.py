"""`train_and_evaluate`, the library entry point of `--mode=train`: every fold trained and tested.

Each step below goes down to the module that owns it, in this order: the data, its feature
store's extractors against the config's (`data_identity`), the folds the run takes, each checked
(`fold_data.run_plans`), the run's parts, built once (`run_parts`: model, backbone, eval step),
the folds already finished (`evaluate.finished_result`), and the workdir's record
(`run_record.check`): everything is checked before it, the first write. The parts and the jitted
training programs (`train_programs`) are passed to each fold: `fold_training` trains it,
`evaluate` restores its chosen checkpoint and scores its test rows, so the reported numbers are
exactly what `--mode=evaluate` recomputes. Re-running the same command resumes an unfinished
fold from its latest intact checkpoint and skips finished folds; a re-run with a config that
changes results is refused (`run_record`).

A run killed anywhere (mid-step, mid-checkpoint, between folds) and re-run ends with the same
numbers: Orbax commits a checkpoint by renaming its finished temporary directory, so an
interrupted one is ignored (and removed); data order and dropout keys are functions of
(seed, fold, step), so the steps after the latest checkpoint are redone exactly.
"""

import contextlib
import os
import time

import jax
import ml_collections
from absl import logging

from memjax import (
  data_identity,
  datasets,
  evaluate,
  fold_data,
  fold_training,
  input_pipeline,
  parallel,
  results,
  run_parts,
  run_record,
  schema,
  train_programs,
)
from memjax.errors import StoppedError
from memjax.runtime import fault_points, interrupts, progress


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
  data_identity.check_store_extractors(config, data)
  plans = fold_data.run_plans(config, data)
  parts = run_parts.build_parts(config, data.extractors, data.feature_dims(config.features), mesh)
  spe = {
    f: input_pipeline.steps_per_epoch(p.split.train.size, config.batch_size)
    for f, p in plans.items()
  }
  finished = {
    f: evaluate.finished_result(workdir, f, spe[f] * config.num_epochs, config.eval.checkpoint)
    for f in plans
  }
  changes = run_record.check(config, data, workdir)  # the first write, after every check
  results.write_json(os.path.join(workdir, results.CONFIG_FILE), config.to_dict())
  logging.info(
    '%s; %d devices in %d processes', data.description, jax.device_count(), jax.process_count()
  )
  to_run = list(plans)
  shown = progress.RunProgress(
    sum(spe[f] * config.num_epochs for f in to_run if finished[f] is None),
    len(to_run),
    config.batch_size,
  )
  programs: dict[int, train_programs.Programs] = {}  # by steps per epoch (schedules need it)
  fold_results = []
  with interrupts.stop_requests(), contextlib.closing(shown):
    for index, fold in enumerate(to_run, start=1):
      if finished[fold] is not None:
        logging.info('fold %d already finished; skipping', fold)
        fold_results.append(finished[fold])
        continue
      by_epoch = config.optimizer.schedule != 'constant' or config.finetune.mode != 'none'
      key = spe[fold] if by_epoch else 0  # schedules and the unfreeze step depend on it
      if key not in programs:
        programs[key] = train_programs.build_programs(config, parts, spe[fold])
      fd = fold_data.prepare(config, data, plans[fold], fold)
      fold_training.train_fold(config, fd, parts, programs[key], workdir, shown, index, data.name)
      fold_results.append(evaluate.evaluate_fold(config, data, parts, plans[fold], fold, workdir))
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
