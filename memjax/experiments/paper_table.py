"""The paper's Table 1 report: `config.report` says which workdir holds which result.

The six rows of `config.report.table1` (each beside the paper's number on LaMem) and
`config.report.extra_rows` go to `table1.md` and `table1.csv`; the page adds the per-fold bars
(`figures/fold_spearman.png`), the scatter of each row of `config.report.scatter_rows` and, where
that row's data has images, the paper's Fig. 3 (`figures/memorable_grid_ROW.png`), then the K
sweep (`figures/sweep.png`), the search (`figures/search.png`) and the cross-dataset table of
the workdirs `config.report.sweep`, `search` and `transfer`. Rows and parts that have not run are
listed as not run, or skipped with a warning.
"""

import os

import ml_collections
from absl import logging

from memjax import results
from memjax.experiments import (
  figures,
  fold_predictions,
  memorable_images,
  report_page,
  search,
  sweep,
  tables,
  transfer,
)

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


def write(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Writes the Table 1 report into `workdir`.

  Returns:
    `table1` (the rows) and `written` (what was written, by name).
  """
  figdir = os.path.join(workdir, 'figures')
  rows = _rows(config)
  header, body = _table(rows)
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
    preds = fold_predictions.scored_folds(row['workdir'], baseline=row['is_baseline'])
    written[f'scatter_{key}'] = os.path.join(figdir, f'scatter_{key}.png')
    figures.scatter_folds(written[f'scatter_{key}'], preds, f'{row["label"]}: test predictions')
    page.figure(f'figures/scatter_{key}.png', row['label'])
    grid = memorable_images.grid(
      os.path.join(figdir, f'memorable_grid_{key}.png'), row, preds, config.report.grid_size
    )
    if grid:
      written[f'grid_{key}'] = grid
      page.figure(f'figures/memorable_grid_{key}.png', 'Fig. 3')
  found = _optional_json(config.report.sweep, sweep.SWEEP_FILE, 'K sweep')
  if found:
    _sweep_section(page, found, figdir)
  found = _optional_json(config.report.search, search.SEARCH_FILE, 'search')
  if found:
    _search_section(page, found, figdir)
  found = _optional_json(config.report.transfer, transfer.TRANSFER_FILE, 'cross-dataset table')
  if found:
    header, body = transfer.table(found['datasets'])
    page.heading('Cross-dataset evaluation (Tables 2-3)')
    page.table(header, body)
  written.update(report_page.write(page, workdir))
  return {'table1': rows, 'written': written}


def _describe(summary: dict) -> str:
  """What a run was: `SVR (nystroem ...)`, `MLP K=4`, `MLP regression`."""
  if 'method' in summary:
    approximation = summary.get('approximation')
    name = {'svr': 'SVR', 'knn': 'KNN', 'tree': 'tree'}.get(summary['method'], summary['method'])
    return name + (f' ({approximation})' if approximation else '')
  if summary.get('head') == 'regression':
    return 'MLP regression'
  return f'MLP K={summary["num_classes"]}'


def _rows(config: ml_collections.ConfigDict) -> list[dict]:
  """The six Table 1 rows, then `config.report.extra_rows`."""
  rows = [_read_row(k, label, paper, config.report.table1[k]) for k, label, paper in TABLE1]
  rows += [_read_row(k, k, None, w) for k, w in config.report.extra_rows.items()]
  return rows


def _read_row(key: str, label: str, paper: float | None, workdir: str | None) -> dict:
  """One result row from `WORKDIR/summary.json` (or a not-run row)."""
  row = {'key': key, 'label': label, 'paper': paper, 'workdir': workdir, 'run': False}
  path = os.path.join(workdir, results.SUMMARY_FILE) if workdir else None
  if not path or not os.path.exists(path):
    logging.warning('report: %s has no results (%s)', label, path or 'no workdir configured')
    return row
  s = results.read_json(path)
  row.update(
    run=True,
    what=_describe(s),
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


def _table(rows: list[dict]) -> tuple[list[str], list[list]]:
  """Table 1's header and body: each row beside the paper's number."""
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
