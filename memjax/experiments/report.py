"""`--mode=report`: workdirs in, tables and figures out (Markdown, CSV, PNG and one HTML page).

Two configurations of one report:

* **Your runs** (`config.report.runs`: workdirs, folders of them, or globs; see
  memjax/experiments/run_rows.py): `runs.md` and `runs.csv`, one row per run (data, features,
  head, folds, mean ± SD test Spearman, Pearson, MSE, predicted / true range);
  `figures/fold_spearman.png`; per run `figures/scatter_runI.png` (predicted against true score
  per fold) and, where its data has image files, the `config.report.grid_size` most and least
  memorable images by prediction as thumbnails in `images/`.
* **The paper's Table 1** (`config.report.runs` empty; `config.report` says which workdir holds
  which result: the six rows of `config.report.table1`, extra rows, the K sweep, the search and
  the cross-dataset evaluation; missing ones are listed as not run): `table1.md`, `table1.csv`
  (each row beside the paper's number), `figures/fold_spearman.png`, `figures/scatter_ROW.png`
  (`config.report.scatter_rows`), `figures/sweep.png`, `figures/search.png`, the transfer table,
  and the paper's Fig. 3 (`figures/memorable_grid_ROW.png`) when the row's data has images.

MLP predictions are computed from the checkpoints once and kept as `fold_K/predictions.npz` where
that workdir can be written (a read-only one is only read). Both write `report.md` and
`report.html` (the same page; the HTML opens offline, with the figures and thumbnails as files
beside it) and `report.json`.
"""

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from memjax import datasets, metrics, results, run_record
from memjax.errors import InputError
from memjax.experiments import figures, fold_predictions, report_page, run_rows, tables
from memjax.experiments import search as search_lib
from memjax.experiments import sweep as sweep_lib
from memjax.experiments import transfer as transfer_lib
from memjax.features import image_decode
from memjax.runtime import atomic_files

# (config.report.table1 key, label, the paper's mean Spearman on LaMem).
TABLE1 = (
  ('cnn_svr', 'CNN SVR', 0.64),
  ('cnn_mlp_k2', 'CNN MLP K=2', 0.64),
  ('cnn_mlp_k4', 'CNN MLP K=4', 0.65),
  ('ic_svr', 'IC SVR', 0.65),
  ('ic_mlp_k4', 'IC MLP K=4', 0.67),
  ('cnn_ic_mlp_k4', 'CNN+IC MLP K=4', 0.72),
)
_FEATURE_LABEL = {'cnn': 'CNN', 'semantic': 'IC'}


def describe(summary: dict) -> str:
  """What a run was: `SVR (nystroem ...)`, `MLP K=4`, `MLP regression`."""
  if 'method' in summary:
    approximation = summary.get('approximation')
    name = {'svr': 'SVR', 'knn': 'KNN', 'tree': 'tree'}.get(summary['method'], summary['method'])
    return name + (f' ({approximation})' if approximation else '')
  if summary.get('head') == 'regression':
    return 'MLP regression'
  return f'MLP K={summary["num_classes"]}'


def read_row(key: str, label: str, paper: float | None, workdir: str | None) -> dict:
  """One result row from `WORKDIR/summary.json` (or a not-run row)."""
  row = {'key': key, 'label': label, 'paper': paper, 'workdir': workdir, 'run': False}
  path = os.path.join(workdir, results.SUMMARY_FILE) if workdir else None
  if not path or not os.path.exists(path):
    logging.warning('report: %s has no results (%s)', label, path or 'no workdir configured')
    return row
  s = results.read_json(path)
  row.update(
    run=True,
    what=describe(s),
    features='+'.join(_FEATURE_LABEL.get(f, f) for f in s['features']),
    dataset=s['dataset']
    + (' (synthetic)' if s['synthetic'] and s['dataset'] != 'synthetic' else ''),
    protocol=s['protocol'],
    spearman_mean=s['spearman_mean'],
    spearman_std=s['spearman_std'],
    fold_spearman=[f['spearman'] for f in s['folds']],
    ceiling=s.get('ceiling'),
    is_baseline='method' in s,
  )
  return row


def table1(config: ml_collections.ConfigDict) -> list[dict]:
  """The six Table 1 rows, then `config.report.extra_rows`."""
  rows = [read_row(k, label, paper, config.report.table1[k]) for k, label, paper in TABLE1]
  rows += [read_row(k, k, None, w) for k, w in config.report.extra_rows.items()]
  return rows


def table1_text(rows: list[dict]) -> tuple[list[str], list[list]]:
  header = ['row', 'paper (LaMem)', 'memjax mean Spearman', 'SD', 'folds', 'run', 'data']
  body = []
  for r in rows:
    if not r['run']:
      body.append([r['label'], tables.fmt(r['paper'], 2), 'not run', '', '', '', ''])
      continue
    body.append(
      [
        r['label'],
        tables.fmt(r['paper'], 2),
        tables.fmt(r['spearman_mean']),
        tables.fmt(r['spearman_std']),
        len(r['fold_spearman']),
        f'{r["features"]} {r["what"]}',
        f'{r["dataset"]}, {r["protocol"]}',
      ]
    )
  return header, body


def fold_predictions_of(row: dict) -> list[dict]:
  """Per-fold test predictions of a row (computed from MLP checkpoints when missing)."""
  workdir = row['workdir']
  if row['is_baseline']:
    by_fold = {}
    names = [n.removeprefix('fold_') for n in os.listdir(workdir) if n.startswith('fold_')]
    for fold in sorted(int(n) for n in names if n.isdigit()):
      path = os.path.join(results.fold_dir(workdir, fold), fold_predictions.PREDICTIONS_FILE)
      if os.path.exists(path):
        by_fold[fold] = fold_predictions.load(path)
  else:  # computed from the checkpoints; cached in the workdir only where it can be written
    by_fold = fold_predictions.mlp_predictions(workdir)
  out = []
  for fold, p in sorted(by_fold.items()):
    p.update(name=f'fold {fold}', spearman=metrics.spearman(p['pred'], p['true']))
    out.append(p)
  return out


def _thumbnail(path: str, size: int) -> np.ndarray:
  img = image_decode.decode_image(path)  # upright, first frame, 8-bit RGB, as extraction sees it
  side = min(img.size)
  left, top = (img.width - side) // 2, (img.height - side) // 2
  return np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size)))


def extremes(config: ml_collections.ConfigDict, preds: list[dict], count: int):
  """The `count` most and least memorable images by prediction: two lists (highest first,
  lowest first) of dicts of `id`, `path`, `true`, `pred`, `image` (a 128x128 thumbnail); None
  (and a log line) when the data has no image files."""
  if config.data.name not in ('lamem', 'image_folder') or not config.data.dir:
    logging.info('report: no image extremes: %s data has no images', config.data.name)
    return None
  try:
    ids, paths = datasets.image_paths(config)
  except InputError as e:
    logging.info('report: no image extremes: %s', e)
    return None
  path_of = dict(zip(np.asarray(ids).astype(str).tolist(), paths, strict=True))
  seen, entries = set(), []
  for p in preds:  # a row tested by several folds (official splits) counts once
    for i, t, s in zip(p['ids'].tolist(), p['true'], p['pred'], strict=True):
      if i not in seen and i in path_of and os.path.exists(path_of[i]):
        seen.add(i)
        entries.append({'id': i, 'path': path_of[i], 'true': float(t), 'pred': float(s)})
  if len(entries) < 2:
    logging.info('report: no image extremes: no image files found for the predictions')
    return None
  entries.sort(key=lambda e: e['pred'], reverse=True)
  k = min(count, len(entries) // 2)
  for e in entries[:k] + entries[-k:]:
    e['image'] = _thumbnail(e['path'], 128)
  return entries[:k], entries[-k:][::-1]


def memorable_grid(path: str, row: dict, preds: list[dict], count: int) -> str | None:
  """The paper's Fig. 3 for a row whose data has images; None (and a log line) otherwise."""
  found = extremes(fold_predictions.config_of(row['workdir']), preds, count)
  if found is None:
    return None
  top, bottom = found
  figures.image_grid(path, top, bottom[::-1], f'{row["label"]}: predicted extremes')
  return path


def _strips(page: report_page.Page, workdir: str, row: dict, preds: list[dict], count: int):
  """Adds the most and least memorable images of `row` to `page` (thumbnails in images/)."""
  config = fold_predictions.config_of(row['workdir'])
  found = extremes(config, preds, count) if count else None
  if found is None:
    return
  for side, entries in zip(('most', 'least'), found, strict=True):
    thumbs = []
    for j, e in enumerate(entries):
      file = f'images/{row["key"]}_{side}_{j}.png'
      if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, 'images'), exist_ok=True)
        with atomic_files.replacing(os.path.join(workdir, file), 'wb') as f:
          Image.fromarray(e['image']).save(f, format='PNG')
      name = os.path.relpath(e['path'], config.data.dir)
      caption = [name, f'predicted {e["pred"]:.3f}', f'true {e["true"]:.3f}']
      thumbs.append(report_page.Thumb(file, caption))
    page.strip(f'{row["label"]}: the {side} memorable by prediction', thumbs)


def _optional_json(workdir: str | None, name: str, what: str) -> dict | None:
  """`workdir/name` of a configured sweep, search or transfer run; None (and a warning) when
  none is configured or it has not run."""
  if not workdir or workdir == 'None':
    return None
  path = os.path.join(workdir, name)
  if not os.path.isfile(path):
    logging.warning('report: no %s: %s does not exist (not run yet?); skipped', what, path)
    return None
  return results.read_json(path)


def _sweep_section(page: report_page.Page, s: dict, figdir: str) -> None:
  figures.sweep_plot(os.path.join(figdir, 'sweep.png'), s['rows'], 'K sweep')
  header = ['K', 'mean Spearman', 'SD', 'folds']
  body = [
    [r['K'], tables.fmt(r['spearman_mean']), tables.fmt(r['spearman_std']), r['num_folds']]
    for r in s['rows']
  ]
  page.heading(
    f'K sweep ({s["dataset"]}, features {"+".join(s["features"])}; best K={s["best_K"]})'
  )
  page.table(header, body)
  page.figure('figures/sweep.png', 'K sweep')


def _search_section(page: report_page.Page, s: dict, figdir: str) -> None:
  figures.search_history(
    os.path.join(figdir, 'search.png'),
    [(t['number'], t['value'], t['state']) for t in s['trials']],
    f'Optuna study {s["study_name"]!r}',
  )
  page.heading(f'Hyper-parameter search ({s["num_trials"]} trials: {s["states"]})')
  if 'best_value' in s:
    page.text(
      f'Best trial {s["best_trial"]}: mean Spearman {s["best_value"]:.4f}; config '
      f'`{s["best_config"]}`.'
    )
    page.table(
      ['parameter', 'value'],
      [[k, f'{v:.4g}' if isinstance(v, float) else v] for k, v in s['best_params'].items()],
    )
  page.figure('figures/search.png', 'search')


def _write_page(page: report_page.Page, workdir: str, written: dict) -> None:
  written['report'] = os.path.join(workdir, 'report.md')
  written['html'] = os.path.join(workdir, 'report.html')
  tables.write_text(written['report'], page.markdown())
  tables.write_text(written['html'], page.html())


def _table1_report(config: ml_collections.ConfigDict, workdir: str) -> dict:
  figdir = os.path.join(workdir, 'figures')
  rows = table1(config)
  header, body = table1_text(rows)
  tables.write_csv(os.path.join(workdir, 'table1.csv'), header, body)
  tables.write_text(os.path.join(workdir, 'table1.md'), tables.markdown(header, body) + '\n')
  page = report_page.Page('memjax report')
  page.heading('Table 1: mean test Spearman over folds')
  page.table(header, body)
  done = [r for r in rows if r['run']]
  if any('synthetic' in r['dataset'] for r in done):
    page.text('Data: the SYNTHETIC stand-in for LaMem, not LaMem; paper numbers are LaMem.')
  written = {'table1': os.path.join(workdir, 'table1.md')}
  if done:
    written['fold_bars'] = os.path.join(figdir, 'fold_spearman.png')
    figures.fold_bars(written['fold_bars'], done, 'Per-fold test Spearman')
    page.figure('figures/fold_spearman.png', 'per-fold Spearman')
  for key in config.report.scatter_rows:
    row = next((r for r in done if r['key'] == key), None)
    if row is None:
      logging.warning('report: scatter row %r has no results; skipped', key)
      continue
    preds = fold_predictions_of(row)
    written[f'scatter_{key}'] = os.path.join(figdir, f'scatter_{key}.png')
    figures.scatter_folds(written[f'scatter_{key}'], preds, f'{row["label"]}: test predictions')
    page.figure(f'figures/scatter_{key}.png', row['label'])
    grid = memorable_grid(
      os.path.join(figdir, f'memorable_grid_{key}.png'), row, preds, config.report.grid_size
    )
    if grid:
      written[f'grid_{key}'] = grid
      page.figure(f'figures/memorable_grid_{key}.png', 'Fig. 3')
  sweep = _optional_json(config.report.sweep, sweep_lib.SWEEP_FILE, 'K sweep')
  if sweep:
    _sweep_section(page, sweep, figdir)
  search = _optional_json(config.report.search, search_lib.SEARCH_FILE, 'search')
  if search:
    _search_section(page, search, figdir)
  t = _optional_json(config.report.transfer, transfer_lib.TRANSFER_FILE, 'cross-dataset table')
  if t:
    header, body = transfer_lib.table(t['datasets'])
    page.heading('Cross-dataset evaluation (Tables 2-3)')
    page.table(header, body)
  _write_page(page, workdir, written)
  return {'table1': rows, 'written': written}


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
      preds = fold_predictions_of(row)
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
    _strips(page, workdir, row, preds, config.report.grid_size)
  _write_page(page, workdir, written)
  return {'runs': [{k: v for k, v in r.items() if k != 'config'} for r in rows], 'written': written}


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
  make = _runs_report if config.report.runs else _table1_report
  summary = make(config, workdir)
  summary['wall_seconds'] = time.time() - start
  results.write_json(os.path.join(workdir, 'report.json'), summary)
  written = summary['written']
  logging.info('report written to %s and %s', written['report'], written['html'])
  return summary
