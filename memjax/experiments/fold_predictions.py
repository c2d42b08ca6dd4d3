"""Per-example predictions of a trained fold ensemble, and the `predictions.npz` file format.

Each fold directory of an MLP or baseline workdir may hold `predictions.npz`: the fold's test
rows (`rows`, indices into the dataset), their `ids`, the `true` scores of the fold's own label
version and the `pred`icted scores. Baselines write it as they score; for an MLP workdir
`write_mlp_predictions` restores each fold's chosen checkpoint (as `evaluate` does) and writes it.

`predict_rows` also serves cross-dataset evaluation (`memjax.experiments.transfer`): any rows of
any dataset with the same features can be scored by any fold restored with
`evaluate.restore_fold`.
"""

import os

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from memjax import (
  datasets,
  evaluate,
  fold_data,
  folds,
  parallel,
  results,
)
from memjax.errors import InputError
from memjax.runtime import atomic_files

PREDICTIONS_FILE = 'predictions.npz'


def save(path: str, rows: np.ndarray, ids: np.ndarray, true: np.ndarray, pred: np.ndarray) -> None:
  """Writes a predictions file atomically (process 0 only)."""
  if jax.process_index() != 0:
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with atomic_files.replacing(path, 'wb') as f:
    np.savez(
      f,
      rows=np.asarray(rows, np.int64),
      ids=np.asarray(ids).astype(str),
      true=np.asarray(true, np.float64),
      pred=np.asarray(pred, np.float64),
    )


def load(path: str) -> dict[str, np.ndarray]:
  """Reads a predictions file into a dict of arrays (`rows`, `ids`, `true`, `pred`).

  Raises:
    InputError: the file is missing or lacks one of the arrays.
  """
  if not os.path.exists(path):
    raise InputError(f'{path} does not exist: expected a predictions file.')
  with np.load(path) as f:
    out = {k: f[k] for k in f.files}
  missing = {'rows', 'ids', 'true', 'pred'} - set(out)
  if missing:
    raise InputError(f'{path} lacks arrays {sorted(missing)}.')
  return out


def config_of(workdir: str) -> ml_collections.ConfigDict:
  """The config a training run recorded in `WORKDIR/config.json`.

  Raises:
    InputError: the workdir has no config.json (it was never trained).
  """
  path = os.path.join(workdir, results.CONFIG_FILE)
  if not os.path.exists(path):
    raise InputError(f'{path} does not exist: {workdir} is not a trained workdir.')
  return ml_collections.ConfigDict(results.read_json(path))


def fold_numbers(workdir: str) -> list[int]:
  """Fold numbers with checkpoints in `workdir`, sorted."""
  if not os.path.isdir(workdir):
    return []
  found = []
  for name in os.listdir(workdir):
    number = name.removeprefix('fold_')
    checkpoints = os.path.join(workdir, name, 'checkpoints')
    if name.startswith('fold_') and number.isdigit() and os.path.isdir(checkpoints):
      found.append(int(number))
  return sorted(found)


def predict_rows(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  scores: np.ndarray,
  rows: np.ndarray,
  params,
  meta: dict,
  mesh: Mesh,
  eval_fn=None,
) -> np.ndarray:
  """Predicted scores [len(rows)] of a restored fold on `rows` of `data` (labelled by `scores`).

  The fold's own thresholds, s_k and standardisation (from `meta`) apply.
  """
  rows = np.asarray(rows, np.int64)
  empty = np.zeros(0, np.int64)
  plan = fold_data.FoldPlan('rows', folds.Split(train=empty, val=empty, test=rows), scores)
  fd = fold_data.prepare(config, data, plan, int(meta['fold']), stored=meta)
  consts = parallel.replicate(fd.consts(), mesh)
  frozen = parallel.replicate(evaluate.frozen_weights(config, data), mesh)
  eval_fn = eval_fn or evaluate.eval_program(config, data, mesh)
  preds, _ = evaluate.predict(
    eval_fn, params, fd, rows, consts, frozen, config.eval_batch_size, mesh
  )
  return np.asarray(preds['score'], np.float64)


def write_mlp_predictions(workdir: str, *, overwrite: bool = False) -> list[str]:
  """Writes `fold_K/predictions.npz` (test rows) for every trained fold of an MLP workdir.

  The config, dataset and fold plan come from the workdir's own `config.json`, so the rows are
  exactly those `eval.json` scored.

  Returns:
    The paths of the predictions files (written now or already there).

  Raises:
    InputError: not a trained workdir, or its data or checkpoints are missing.
  """
  config = config_of(workdir)
  numbers = fold_numbers(workdir)
  paths = {f: os.path.join(results.fold_dir(workdir, f), PREDICTIONS_FILE) for f in numbers}
  todo = [f for f in numbers if overwrite or not os.path.exists(paths[f])]
  if todo:
    data = datasets.load(config)
    mesh = parallel.make_mesh()
    parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
    plans = fold_data.plan_folds(config, data)
    eval_fn = evaluate.eval_program(config, data, mesh)
    for fold in todo:
      params, meta, _ = evaluate.restore_fold(config, data, fold, workdir, mesh)
      plan = plans[fold]
      rows = plan.split.test
      pred = predict_rows(config, data, plan.scores, rows, params, meta, mesh, eval_fn)
      save(paths[fold], rows, data.ids[rows], plan.scores[rows], pred)
      logging.info('fold %d: wrote %d test predictions to %s', fold, rows.size, paths[fold])
  return [paths[f] for f in numbers]
