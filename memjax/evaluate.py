"""Exact evaluation: predictions for a set of rows, fold scoring from checkpoints, `evaluate` mode.

Every example is scored exactly once: batches are padded and masked on device, the padded rows
are dropped on the host, and the on-device count is checked against the set's size.
"""

import json
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
  fold_data,
  input_pipeline,
  metrics,
  models,
  optimizers,
  parallel,
  results,
  steps,
)
from memjax.errors import InputError


def predict(
  eval_fn, params, fd: fold_data.FoldData, indices: np.ndarray, consts, batch_size: int, mesh: Mesh
) -> tuple[dict, dict]:
  """Predictions ([n, ...] NumPy, in `indices` order) and metric sums over `indices`."""
  outputs, sums = [], None
  share = parallel.process_share(batch_size)
  for batch in input_pipeline.eval_batches(fd.arrays, indices, batch_size=batch_size, share=share):
    preds, batch_sums = eval_fn(params, parallel.to_global(batch, mesh, 0), consts)
    outputs.append(preds)
    sums = batch_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, batch_sums)
  outputs, sums = parallel.fetch((outputs, sums))
  preds = {k: np.concatenate([o[k] for o in outputs])[: indices.size] for k in outputs[0]}
  if int(sums['count']) != indices.size:
    raise AssertionError(f'evaluation counted {sums["count"]} examples, expected {indices.size}')
  return preds, sums


def score(
  eval_fn, params, fd: fold_data.FoldData, indices: np.ndarray, consts, batch_size: int, mesh: Mesh
) -> dict:
  """Spearman, Pearson, MSE, accuracy, loss and count of the model on rows `indices`."""
  preds, sums = predict(eval_fn, params, fd, indices, consts, batch_size, mesh)
  out = metrics.score_metrics(
    preds['score'], fd.arrays['score'][indices], preds['class'], fd.arrays['label'][indices]
  )
  out['loss'] = float(sums['loss'] / sums['count'])
  return out


def model_meta(config: ml_collections.ConfigDict, feature_dims: dict) -> dict:
  """What a checkpoint must agree with the config on to be restored into it."""
  return {
    'features': list(config.features),
    'feature_dims': feature_dims,
    'num_classes': config.num_classes,
    'model': config.model.to_dict(),
    'optimizer': config.optimizer.name,
  }


def check_meta(meta: dict, expected: dict, where: str) -> None:
  """Raises InputError naming every field where a checkpoint and the config differ."""
  expected = json.loads(json.dumps(expected))  # tuples -> lists, as stored
  diffs = [
    f'{k}: checkpoint {meta.get(k)!r} vs config {v!r}'
    for k, v in expected.items()
    if meta.get(k) != v
  ]
  if diffs:
    raise InputError(f'checkpoint {where} does not match the config: ' + '; '.join(diffs))


def evaluate_fold(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  plan: fold_data.FoldPlan,
  fold: int,
  mesh: Mesh,
  workdir: str,
) -> dict:
  """Restores fold `fold`'s chosen checkpoint, scores its test rows, writes `eval.json`."""
  fdir = results.fold_dir(workdir, fold)
  ckpt_dir = os.path.join(fdir, 'checkpoints')
  if not os.path.isdir(ckpt_dir):
    raise InputError(f'no checkpoints for fold {fold}: {ckpt_dir} does not exist.')
  mngr = checkpointing.manager(ckpt_dir, read_only=True)
  step = checkpointing.select_step(mngr, config.eval.checkpoint)
  feature_dims = data.feature_dims(config.features)
  check_meta(
    checkpointing.restore_meta(mngr, step), model_meta(config, feature_dims), f'{ckpt_dir}/{step}'
  )
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 1, 1)
  abstract = steps.abstract_state(model, tx, feature_dims, mesh)
  state, meta = checkpointing.restore(mngr, step, abstract)
  mngr.close()
  fd = fold_data.prepare(config, data, plan, fold, meta['thresholds'], meta['values'])
  consts = parallel.replicate(fd.consts(np.zeros(2, np.uint32)), mesh)
  eval_fn = steps.jit_eval_step(model, mesh, extractors=data.extractors)
  result = score(eval_fn, state.params, fd, fd.split.test, consts, config.eval_batch_size, mesh)
  result.update(
    fold=fold,
    name=fd.name,
    checkpoint_step=step,
    epoch=meta['epoch'],
    val_spearman=meta['val']['spearman'],
    thresholds=meta['thresholds'],
    score_values=meta['values'],
    num_train=int(fd.split.train.size),
    num_val=int(fd.split.val.size),
    num_test=int(fd.split.test.size),
  )
  results.write_json(os.path.join(fdir, results.EVAL_FILE), result)
  logging.info(
    'fold %d: test Spearman %.4f on %d examples (checkpoint step %d)',
    fold,
    result['spearman'],
    result['num_examples'],
    step,
  )
  return result


def folds_to_run(config: ml_collections.ConfigDict, num_folds: int) -> list[int]:
  """`config.data.run_folds`, or all `num_folds` folds when it is empty."""
  chosen = list(config.data.run_folds) or list(range(num_folds))
  bad = [f for f in chosen if not 0 <= f < num_folds]
  if bad:
    raise InputError(f'config.data.run_folds has folds {bad} outside 0..{num_folds - 1}.')
  return chosen


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=evaluate`: re-scores every fold from its checkpoint alone; writes the summary."""
  start = time.time()
  data = datasets.load(config)
  mesh = parallel.make_mesh()
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
  plans = fold_data.plan_folds(config, data)
  fold_results = [
    evaluate_fold(config, data, plans[fold], fold, mesh, workdir)
    for fold in folds_to_run(config, len(plans))
  ]
  summary = results.summarize(
    config, data, fold_results, mode='evaluate', wall_seconds=time.time() - start
  )
  results.write_json(os.path.join(workdir, results.SUMMARY_FILE), summary)
  return summary
