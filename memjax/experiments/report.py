"""`--mode=report`: workdirs in, tables and figures out (Markdown, CSV, PNG and one HTML page).

Two configurations of one report:

* **Your runs** (`config.report.runs`: workdirs, folders of them, or globs; see
  memjax/experiments/run_rows.py), written here: `runs.md` and `runs.csv`, one row per run (data,
  features, head, folds, mean ± SD test Spearman, Pearson, MSE, predicted / true range);
  `figures/fold_spearman.png`; per run `figures/scatter_runI.png` (predicted against true score
  per fold) and, where its data has image files, the `config.report.grid_size` most and least
  memorable images by prediction as thumbnails in `images/` (`memorable_images`).
* **The paper's Table 1** (`config.report.runs` empty; `config.report` says which workdir holds
  which result): `paper_table`.

MLP predictions are computed from the checkpoints once and kept as `fold_K/predictions.npz` where
that workdir can be written (a read-only one is only read). Both write `report.md` and
`report.html` (the same page; the HTML opens offline, with the figures and thumbnails as files
beside it) and `report.json`.
"""

import os
import time

import ml_collections
from absl import logging

from memjax import results, run_record
from memjax.errors import InputError
from memjax.experiments import (
  figures,
  fold_predictions,
  memorable_images,
  paper_table,
  report_page,
  run_rows,
  tables,
)


def report(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=report`: writes the tables, figures and pages described in the module docstring.

  Given the `--workdir` of a run and no `config.report.runs`, it reports that run into
  WORKDIR/report/ (`memjax report --workdir=W`).

  Returns:
    A summary: the rows (`runs`, or `table1`) and the paths written.
  """
  start = time.time()
  if not config.report.runs and run_record.kind_of(workdir) is not None:
    # `--workdir` of a run and nothing else to report: that run, in WORKDIR/report/.
    config = config.copy_and_resolve_references()
    config.report.runs = (workdir,)
    workdir = os.path.join(workdir, 'report')
  make = _runs_report if config.report.runs else paper_table.write
  summary = make(config, workdir)
  summary['wall_seconds'] = time.time() - start
  results.write_json(os.path.join(workdir, 'report.json'), summary)
  written = summary['written']
  logging.info('report written to %s and %s', written['report'], written['html'])
  return summary


def _runs_report(config: ml_collections.ConfigDict, workdir: str) -> dict:
  figdir = os.path.join(workdir, 'figures')
  rows = run_rows.read(run_rows.find(config.report.runs))
  header, body = run_rows.table(rows)
  written = {'runs': os.path.join(workdir, 'runs.md'), 'csv': os.path.join(workdir, 'runs.csv')}
  tables.write_text(written['runs'], tables.markdown(header, body) + '\n')
  tables.write_csv(written['csv'], run_rows.CSV_HEADER, run_rows.csv_rows(rows))
  page = report_page.Page(f'memjax report: {len(rows)} run{"s" * (len(rows) != 1)}')
  page.heading('Runs: test Spearman over folds and calibration')
  page.table(header, body)
  page.text(
    'Spearman: mean ± SD (ddof=1) over folds of the test Spearman; Pearson, MSE and the '
    'predicted / true 5-95 percentile range: means over folds.'
  )
  if any('synthetic' in r['data'] for r in rows):
    page.text('Runs marked (synthetic) ran on the SYNTHETIC stand-in data, not on photos.')
  written['fold_bars'] = os.path.join(figdir, 'fold_spearman.png')
  figures.fold_bars(written['fold_bars'], rows, 'Per-fold test Spearman')
  page.figure('figures/fold_spearman.png', 'per-fold test Spearman of every run')
  for row in rows:
    page.heading(f'{row["label"]}: {row["head"]} on {row["features"]}')
    page.text(f'workdir {row["workdir"]}; data {row["data"]}')
    if not row['finished']:
      page.text(f'Unfinished: {row["folds"]} folds so far; no predictions drawn.')
      continue
    try:
      preds = fold_predictions.scored_folds(row['workdir'], baseline=row['is_baseline'])
    except InputError as e:
      logging.warning('report: %s: no per-example predictions: %s', row['label'], e)
      page.text(f'No per-example predictions: {e}')
      continue
    if not preds:
      continue
    written[f'scatter_{row["key"]}'] = os.path.join(figdir, f'scatter_{row["key"]}.png')
    figures.scatter_folds(
      written[f'scatter_{row["key"]}'], preds, f'{row["label"]}: test predictions'
    )
    page.figure(f'figures/scatter_{row["key"]}.png', f'{row["label"]}: test predictions')
    memorable_images.strips(page, workdir, row, preds, config.report.grid_size)
  written.update(report_page.write(page, workdir))
  return {'runs': [{k: v for k, v in r.items() if k != 'config'} for r in rows], 'written': written}
