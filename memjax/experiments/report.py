"""`--mode=report`: workdirs in, the paper's tables and figures out (Markdown, CSV, PNG).

`config.report` says which workdir holds which result: the six rows of Table 1
(`config.report.table1`, MLP runs of `--mode=train` or baselines of `--mode=baseline`), extra
rows, the K sweep, the search and the cross-dataset evaluation. Missing ones are listed as not
run. Written to WORKDIR:

* `table1.md`, `table1.csv`: each row's mean +- SD test Spearman beside the paper's number;
* `figures/fold_spearman.png`: per-fold test Spearman of every row;
* `figures/scatter_ROW.png`: predicted against true score per fold (`config.report.scatter_rows`;
  MLP predictions are computed from the checkpoints once and kept as `fold_K/predictions.npz`
  where that workdir can be written: a read-only one is only read);
* `figures/sweep.png`, `figures/search.png`, `transfer` table: when those workdirs are given;
* `figures/memorable_grid.png`: the paper's Fig. 3 when the main row's data has images;
* `report.md`: all of it in one page.
"""

import os
import time

import ml_collections
import numpy as np
from absl import logging

from memjax import datasets, metrics, results
from memjax.errors import InputError
from memjax.experiments import figures, fold_predictions, tables
from memjax.experiments import search as search_lib
from memjax.experiments import sweep as sweep_lib
from memjax.experiments import transfer as transfer_lib
from memjax.features import image_decode

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


def memorable_grid(path: str, row: dict, preds: list[dict], count: int) -> str | None:
  """The paper's Fig. 3 for a row whose data has images; None (and a log line) otherwise."""
  config = fold_predictions.config_of(row['workdir'])
  if config.data.name not in ('lamem', 'image_folder') or not config.data.dir:
    logging.info('report: Fig. 3 skipped: %s data has no images', config.data.name)
    return None
  try:
    ids, paths = datasets.image_paths(config)
  except InputError as e:
    logging.info('report: Fig. 3 skipped: %s', e)
    return None
  path_of = dict(zip(np.asarray(ids).astype(str).tolist(), paths, strict=True))
  seen, entries = set(), []
  for p in preds:  # a row tested by several folds (official splits) counts once
    for i, t, s in zip(p['ids'].tolist(), p['true'], p['pred'], strict=True):
      if i not in seen and i in path_of and os.path.exists(path_of[i]):
        seen.add(i)
        entries.append({'id': i, 'true': float(t), 'pred': float(s)})
  if len(entries) < 2:
    logging.info('report: Fig. 3 skipped: no image files found for the predictions')
    return None
  entries.sort(key=lambda e: e['pred'], reverse=True)
  k = min(count, len(entries) // 2)
  for e in entries[:k] + entries[-k:]:
    e['image'] = _thumbnail(path_of[e['id']], 128)
  figures.image_grid(path, entries[:k], entries[-k:][::-1], f'{row["label"]}: predicted extremes')
  return path


def _sweep_section(workdir: str, figdir: str) -> list[str]:
  s = results.read_json(os.path.join(workdir, sweep_lib.SWEEP_FILE))
  figures.sweep_plot(os.path.join(figdir, 'sweep.png'), s['rows'], 'K sweep')
  header = ['K', 'mean Spearman', 'SD', 'folds']
  body = [
    [r['K'], tables.fmt(r['spearman_mean']), tables.fmt(r['spearman_std']), r['num_folds']]
    for r in s['rows']
  ]
  return [
    f'## K sweep ({s["dataset"]}, features {"+".join(s["features"])}; best K={s["best_K"]})',
    '',
    tables.markdown(header, body),
    '',
    '![K sweep](figures/sweep.png)',
  ]


def _search_section(workdir: str, figdir: str) -> list[str]:
  s = results.read_json(os.path.join(workdir, search_lib.SEARCH_FILE))
  figures.search_history(
    os.path.join(figdir, 'search.png'),
    [(t['number'], t['value'], t['state']) for t in s['trials']],
    f'Optuna study {s["study_name"]!r}',
  )
  lines = [f'## Hyper-parameter search ({s["num_trials"]} trials: {s["states"]})', '']
  if 'best_value' in s:
    lines += [
      f'Best trial {s["best_trial"]}: mean Spearman {s["best_value"]:.4f}; config '
      f'`{s["best_config"]}`.',
      '',
      tables.markdown(
        ['parameter', 'value'],
        [[k, f'{v:.4g}' if isinstance(v, float) else v] for k, v in s['best_params'].items()],
      ),
    ]
  return lines + ['', '![search](figures/search.png)']


def report(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=report`: writes the tables and figures described in the module docstring.

  Returns:
    A summary: Table 1 rows and the paths written.
  """
  start = time.time()
  figdir = os.path.join(workdir, 'figures')
  rows = table1(config)
  header, body = table1_text(rows)
  tables.write_csv(os.path.join(workdir, 'table1.csv'), header, body)
  md = tables.markdown(header, body)
  tables.write_text(os.path.join(workdir, 'table1.md'), md + '\n')
  page = ['# memjax report', '', '## Table 1: mean test Spearman over folds', '', md, '']
  done = [r for r in rows if r['run']]
  datasets_seen = sorted({r['dataset'] for r in done})
  if any('synthetic' in d for d in datasets_seen):
    page += ['Data: the SYNTHETIC stand-in for LaMem, not LaMem; paper numbers are LaMem.', '']
  written = {'table1': os.path.join(workdir, 'table1.md')}
  if done:
    written['fold_bars'] = os.path.join(figdir, 'fold_spearman.png')
    figures.fold_bars(written['fold_bars'], done, 'Per-fold test Spearman')
    page += ['![per-fold Spearman](figures/fold_spearman.png)', '']
  for key in config.report.scatter_rows:
    row = next((r for r in done if r['key'] == key), None)
    if row is None:
      logging.warning('report: scatter row %r has no results; skipped', key)
      continue
    preds = fold_predictions_of(row)
    written[f'scatter_{key}'] = os.path.join(figdir, f'scatter_{key}.png')
    figures.scatter_folds(written[f'scatter_{key}'], preds, f'{row["label"]}: test predictions')
    page += [f'![{row["label"]}](figures/scatter_{key}.png)', '']
    grid = memorable_grid(
      os.path.join(figdir, f'memorable_grid_{key}.png'), row, preds, config.report.grid_size
    )
    if grid:
      written[f'grid_{key}'] = grid
      page += [f'![Fig. 3](figures/memorable_grid_{key}.png)', '']
  if config.report.sweep:
    page += _sweep_section(config.report.sweep, figdir) + ['']
  if config.report.search:
    page += _search_section(config.report.search, figdir) + ['']
  if config.report.transfer:
    t = results.read_json(os.path.join(config.report.transfer, transfer_lib.TRANSFER_FILE))
    header, body = transfer_lib.table(t['datasets'])
    page += ['## Cross-dataset evaluation (Tables 2-3)', '', tables.markdown(header, body), '']
  written['report'] = os.path.join(workdir, 'report.md')
  tables.write_text(written['report'], '\n'.join(page))
  summary = {'table1': rows, 'written': written, 'wall_seconds': time.time() - start}
  results.write_json(os.path.join(workdir, 'report.json'), summary)
  logging.info('report written to %s', written['report'])
  return summary
