"""Per-example predictions of a trained fold ensemble, and the `predictions.npz` file format.

Each fold directory of an MLP or baseline workdir may hold `predictions.npz`: the fold's test
rows (`rows`, indices into the dataset), their `ids`, the `true` scores of the fold's own label
version and the `pred`icted scores. Baselines write it as they score; for an MLP workdir
`mlp_predictions` restores each fold's chosen checkpoint (as `evaluate` does) and caches it there
when the workdir can be written.

`predict_rows` also serves cross-dataset evaluation (`memjax.experiments.transfer`): any rows of
any dataset with the same features can be scored by any fold restored with `RunParts.restore`.
"""

import errno
import os

import jax
import ml_collections
import numpy as np
from absl import logging

from memjax import datasets, fold_data, folds, metrics, parallel, results, run_parts, scoring
from memjax.errors import NO_SPACE, InputError
from memjax.run_parts import RunParts
from memjax.runtime import atomic_files

PREDICTIONS_FILE = 'predictions.npz'
# errno values of a place memjax may read but not write: caches there are skipped.
_CANNOT_WRITE = (errno.EROFS, errno.EACCES, errno.EPERM, *NO_SPACE)


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


def fold_numbers(workdir: str, holding: str = 'checkpoints') -> list[int]:
  """Fold numbers whose `fold_K/` in `workdir` holds `holding` (their checkpoints), sorted."""
  if not os.path.isdir(workdir):
    return []
  found = []
  for name in os.listdir(workdir):
    number = name.removeprefix('fold_')
    held = os.path.join(workdir, name, holding)
    if name.startswith('fold_') and number.isdigit() and os.path.exists(held):
      found.append(int(number))
  return sorted(found)


def predict_rows(
  config: ml_collections.ConfigDict,
  data: datasets.MemorabilityData,
  parts: RunParts,
  scores: np.ndarray,
  rows: np.ndarray,
  params,
  meta: dict,
) -> np.ndarray:
  """Predicted scores [len(rows)] of a restored fold on `rows` of `data` (labelled by `scores`).

  `parts`: the run's (`run_parts.build` of `config` on `data`). The fold's own thresholds, s_k
  and standardisation (from `meta`) apply.
  """
  rows = np.asarray(rows, np.int64)
  empty = np.zeros(0, np.int64)
  plan = fold_data.FoldPlan('rows', folds.Split(train=empty, val=empty, test=rows), scores)
  fd = fold_data.prepare(config, data, plan, int(meta['fold']), stored=meta)
  consts = parallel.replicate(fd.consts, parts.mesh)
  preds, _ = scoring.predict(parts, params, fd, rows, consts)
  return np.asarray(preds['score'], np.float64)


def mlp_predictions(workdir: str, *, overwrite: bool = False) -> dict[int, dict[str, np.ndarray]]:
  """Test predictions of every trained fold of an MLP workdir, computed from its checkpoints once.

  The config, dataset and fold plan come from the workdir's own `config.json`, so the rows are
  exactly those `eval.json` scored. Each fold's predictions are cached as `fold_K/predictions.npz`
  and read from there next time; a workdir that cannot be written (a read-only mount, a full
  disk) is left untouched and its predictions are computed again each time.

  Returns:
    Fold number -> the arrays of `load` (`rows`, `ids`, `true`, `pred`), for every trained fold.

  Raises:
    InputError: not a trained workdir, or its data or checkpoints are missing.
  """
  config = config_of(workdir)
  numbers = sorted(set(fold_numbers(workdir)) | set(fold_numbers(workdir, PREDICTIONS_FILE)))
  paths = {f: os.path.join(results.fold_dir(workdir, f), PREDICTIONS_FILE) for f in numbers}
  out = {f: load(paths[f]) for f in numbers if not overwrite and os.path.exists(paths[f])}
  todo = [f for f in numbers if f not in out]
  if todo:
    data = datasets.load(config)
    mesh = parallel.make_mesh()
    parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
    plans = fold_data.plan_folds(config, data)
    parts = run_parts.build_parts(config, data.extractors, data.feature_dims(config.features), mesh)
    for fold in todo:
      fold_dir = results.fold_dir(workdir, fold)
      params, meta, _ = parts.restore(fold_dir, config.eval.checkpoint)
      plan = plans[fold]
      rows = plan.split.test
      pred = predict_rows(config, data, parts, plan.scores, rows, params, meta)
      out[fold] = {'rows': rows, 'ids': data.ids[rows], 'true': plan.scores[rows], 'pred': pred}
      _cache(paths[fold], out[fold])
  return {f: out[f] for f in numbers}


def scored_folds(workdir: str, *, baseline: bool) -> list[dict]:
  """Per-fold test predictions of a run, in fold order: the arrays of `load` plus the fold's
  `name` (`fold K`) and test `spearman`. A baseline's folds are those it wrote predictions for;
  an MLP's come from `mlp_predictions`.

  Raises:
    InputError: an MLP workdir whose config, data or checkpoints are missing.
  """
  if baseline:
    numbers = fold_numbers(workdir, PREDICTIONS_FILE)
    by_fold = {
      f: load(os.path.join(results.fold_dir(workdir, f), PREDICTIONS_FILE)) for f in numbers
    }
  else:
    by_fold = mlp_predictions(workdir)
  out = []
  for fold, p in sorted(by_fold.items()):
    p.update(name=f'fold {fold}', spearman=metrics.spearman(p['pred'], p['true']))
    out.append(p)
  return out


def _cache(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Saves `arrays` to `path` when its folder can be written; otherwise logs and goes on."""
  try:
    save(path, arrays['rows'], arrays['ids'], arrays['true'], arrays['pred'])
  except OSError as e:
    if e.errno not in _CANNOT_WRITE:
      raise
    logging.info('fold predictions not cached in %s (%s): computed again next time', path, e)
    return
  logging.info('wrote %d test predictions to %s', len(arrays['rows']), path)
