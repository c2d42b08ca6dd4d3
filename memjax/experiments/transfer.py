"""`--mode=transfer`: cross-dataset evaluation, the paper's Tables 2 and 3.

A trained fold ensemble (WORKDIR, trained with the same config) scores every dataset of
`config.transfer.datasets`; each entry is a ConfigDict with

* `data`: overrides of `config.data` that load the other dataset, e.g. `name='image_folder'`,
  `dir`, `csv`, and `features_dir` (its feature store from `--mode=extract`) or
  `on_the_fly=True` (features computed from the images by the frozen extractors);
* `seed`: overrides `config.seed` when not None (the synthetic generator's seed);
* `first_row`: rows before it are left out (e.g. synthetic rows the model trained on);
* `paper`: the paper's Spearman for that dataset, or None; `about`: one line for the table.

Each fold's chosen checkpoint predicts every labelled row with its own thresholds and s_k; the
ensemble prediction is the mean over folds. Results: `WORKDIR/transfer/NAME.json` and
`NAME.npz` (predictions), and `WORKDIR/transfer.json` with the table (`transfer.md`, `.csv`).
"""

import os
import time

import ml_collections
import numpy as np
from absl import logging

from memjax import (
  data_identity,
  datasets,
  metrics,
  parallel,
  results,
  run_parts,
  run_record,
  schema,
)
from memjax.errors import InputError
from memjax.experiments import fold_predictions, tables

TRANSFER_FILE = 'transfer.json'


def evaluate_dataset(config, workdir: str, name: str, entry, mesh, record=None, out=None) -> dict:
  """Scores dataset `name` with every fold of `workdir`; writes its JSON and predictions into
  `out/transfer/` (`out`: `config.transfer.output`, or None for `workdir`).

  `record`: the workdir's (`run_record.check_model`); the extractors behind the dataset's
  features must be the ones it names.
  """
  start = time.time()
  sub = schema.transfer_config(config, name, entry)
  data = datasets.load(sub)
  run_record.check_extractors(
    record,
    workdir,
    data_identity.feature_identities(data, sub.features),
    f'the features of config.transfer.datasets.{name}',
  )
  rows = np.flatnonzero(np.isfinite(data.scores))
  rows = rows[rows >= entry.first_row]
  if rows.size < 2:
    raise InputError(f'dataset {name!r} has {rows.size} labelled rows from first_row on.')
  numbers = fold_predictions.fold_numbers(workdir)
  if not numbers:
    raise InputError(f'no trained folds in {workdir} (expected fold_K/checkpoints): train first.')
  true = data.scores[rows]
  fold_preds = []
  parts = run_parts.build_parts(sub, data.extractors, data.feature_dims(sub.features), mesh)
  for fold in numbers:
    params, meta, _ = parts.restore(results.fold_dir(workdir, fold), sub.eval.checkpoint)
    fold_preds.append(
      fold_predictions.predict_rows(sub, data, parts, data.scores, rows, params, meta)
    )
  pred = np.mean(fold_preds, axis=0)
  out_dir = os.path.join(out or workdir, 'transfer')
  fold_predictions.save(os.path.join(out_dir, f'{name}.npz'), rows, data.ids[rows], true, pred)
  result = {
    'name': name,
    'about': entry.about,
    'dataset': data.name,
    'synthetic': data.synthetic,
    'data_description': data.description,
    'num_images': int(rows.size),
    'spearman': metrics.spearman(pred, true),
    'pearson': metrics.pearson(pred, true),
    'fold_spearman': [metrics.spearman(p, true) for p in fold_preds],
    'folds': numbers,
    'paper': entry.paper,
    'ceiling': data.ceiling,
    'wall_seconds': time.time() - start,
  }
  results.write_json(os.path.join(out_dir, f'{name}.json'), result)
  logging.info(
    'transfer %s: ensemble of %d folds, Spearman %.4f on %d images',
    name,
    len(numbers),
    result['spearman'],
    rows.size,
  )
  return result


def table(rows: list[dict]) -> tuple[list[str], list[list]]:
  """(header, rows) of the cross-dataset table."""
  header = ['dataset', 'about', 'images', 'memjax Spearman', 'per-fold mean', 'paper']
  body = [
    [
      r['name'],
      r['about'],
      r['num_images'],
      tables.fmt(r['spearman']),
      tables.fmt(float(np.nanmean(np.array(r['fold_spearman'], dtype=float)))),
      tables.fmt(r['paper'], 2),
    ]
    for r in rows
  ]
  return header, body


def transfer(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=transfer`: every dataset of `config.transfer.datasets` scored by WORKDIR's folds.

  Returns:
    The summary (also `WORKDIR/transfer.json`).

  Raises:
    InputError: no datasets configured, bad entries, or untrained workdir.
  """
  start = time.time()
  if not config.transfer.datasets:
    raise InputError(
      'config.transfer.datasets is empty: list the datasets to score (see configs/transfer.py).'
    )
  run_record.check_kind(workdir, 'transfer')
  record = run_record.check_model(config, workdir)
  mesh = parallel.make_mesh()
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
  out = config.transfer.output or workdir  # another folder leaves a read-only workdir untouched
  rows = [
    evaluate_dataset(config, workdir, name, entry, mesh, record, out)
    for name, entry in config.transfer.datasets.items()
  ]
  header, body = table(rows)
  tables.write_csv(os.path.join(out, 'transfer.csv'), header, body)
  tables.write_text(os.path.join(out, 'transfer.md'), tables.markdown(header, body) + '\n')
  summary = {
    'model_workdir': os.path.abspath(workdir),
    'features': list(config.features),
    'num_classes': config.num_classes,
    'datasets': rows,
    'wall_seconds': time.time() - start,
  }
  results.write_json(os.path.join(out, TRANSFER_FILE), summary)
  return summary
