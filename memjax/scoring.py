"""Exact scoring of a fold's rows: predictions and metrics of restored or training parameters.

Every example is scored exactly once: batches are padded and masked on device, the padded rows
are dropped on the host, and the on-device count is checked against the set's size. Training
scores its validation rows with it, evaluation its test rows, the experiments any rows.
"""

import jax
import numpy as np

from memjax import input_pipeline, metrics, parallel
from memjax.fold_consts import FoldConsts
from memjax.fold_data import FoldData
from memjax.run_parts import RunParts


def predict(
  parts: RunParts, params, fd: FoldData, indices: np.ndarray, consts: FoldConsts
) -> tuple[dict, dict]:
  """Predictions ([n, ...] NumPy, in `indices` order) and metric sums over `indices`.

  `consts`: the fold's constants, replicated on `parts.mesh`.
  """
  outputs, sums = [], None
  batches = input_pipeline.eval_batches(
    fd.arrays, indices, batch_size=parts.eval_batch_size, share=parts.eval_share
  )
  for batch in batches:
    batch = input_pipeline.place(batch, parts.eval_sharding)
    preds, batch_sums = parts.eval(params, batch, consts, parts.frozen)
    outputs.append(preds)
    sums = batch_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, batch_sums)
  outputs, sums = parallel.fetch((outputs, sums))
  preds = {k: np.concatenate([o[k] for o in outputs])[: indices.size] for k in outputs[0]}
  if int(sums['count']) != indices.size:
    raise AssertionError(f'evaluation counted {sums["count"]} examples, expected {indices.size}')
  return preds, sums


def score(parts: RunParts, params, fd: FoldData, indices: np.ndarray, consts: FoldConsts) -> dict:
  """Spearman, Pearson, MSE, accuracy, loss, calibration and count of the model on `indices`."""
  preds, sums = predict(parts, params, fd, indices, consts)
  out = metrics.score_metrics(
    preds['score'], fd.arrays['score'][indices], preds['class'], fd.arrays['label'][indices]
  )
  out['loss'] = float(sums['loss'] / sums['count'])
  return out
