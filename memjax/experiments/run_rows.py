"""The runs a report compares (`config.report.runs`), and one table row per run.

An entry of `config.report.runs` is a workdir, a folder whose sub-folders are workdirs, or a
glob (`/tmp/memjax/photos_*`) matching either. A workdir is a folder with a `summary.json`
(a finished `train`, `evaluate` or `baseline` run) or, for a run still training, at least one
`fold_K/eval.json`: its row then holds the folds finished so far and says so. Nothing else is
read: no sweep or search workdir is needed.
"""

import glob
import os
from collections.abc import Sequence

import numpy as np

from memjax import results
from memjax.errors import InputError

_HEADS = {'svr': 'SVR', 'knn': 'KNN', 'tree': 'tree', 'ridge_cv': 'ridge'}


def _fold_evals(workdir: str) -> list[str]:
  """Paths of `fold_K/eval.json` in `workdir`, by fold number."""
  found = []
  for path in glob.glob(os.path.join(glob.escape(workdir), 'fold_*', results.EVAL_FILE)):
    number = os.path.basename(os.path.dirname(path)).removeprefix('fold_')
    if number.isdigit():
      found.append((int(number), path))
  return [p for _, p in sorted(found)]


def is_run(path: str) -> bool:
  """Whether `path` is a workdir with results (summary.json, or a finished fold)."""
  return os.path.isfile(os.path.join(path, results.SUMMARY_FILE)) or bool(_fold_evals(path))


def find(entries: Sequence[str]) -> list[str]:
  """The workdirs named by `config.report.runs`, in the order given, each once.

  Raises:
    InputError: an entry names no run.
  """
  found, seen = [], set()
  for entry in entries:
    matches = sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]
    runs = []
    for path in matches:
      if is_run(path):
        runs.append(path)
      elif os.path.isdir(path):
        children = (os.path.join(path, n) for n in sorted(os.listdir(path)))
        runs += [c for c in children if os.path.isdir(c) and is_run(c)]
    if not runs:
      raise InputError(
        f'config.report.runs: {entry!r} names no run: expected a workdir with summary.json (or '
        'fold_K/eval.json), a folder of such workdirs, or a glob matching them.'
      )
    for run in runs:
      key = os.path.realpath(run)
      if key not in seen:
        seen.add(key)
        found.append(run)
  return found


def _summary(workdir: str) -> tuple[dict, bool]:
  """(summary.json, True), or a summary of the finished folds' eval.json and False."""
  path = os.path.join(workdir, results.SUMMARY_FILE)
  if os.path.isfile(path):
    return results.read_json(path), True
  folds = [results.read_json(p) for p in _fold_evals(workdir)]
  rho = np.array([f['spearman'] for f in folds], np.float64)
  summary = {
    'folds': folds,
    'spearman_mean': float(rho.mean()),
    'spearman_std': float(rho.std(ddof=1)) if rho.size > 1 else None,  # as results.summarize
  }
  for key in ('pearson', 'mse', 'range_ratio'):
    if all(f.get(key) is not None for f in folds):
      summary[f'{key}_mean'] = float(np.mean([f[key] for f in folds]))
  return summary, False


def head_of(summary: dict, config: dict) -> str:
  """`MLP K=4`, `MLP regression`, `SVR (nystroem ...)`: what predicted the scores."""
  if 'method' in summary:
    name = _HEADS.get(summary['method'], summary['method'])
    return name + (f' ({summary["approximation"]})' if summary.get('approximation') else '')
  head = summary.get('head') or config.get('model', {}).get('head')
  if head == 'regression':
    return 'MLP regression'
  k = summary.get('num_classes') or config.get('num_classes')
  return f'MLP K={k}' if k else 'MLP'


def _labels(workdirs: Sequence[str]) -> list[str]:
  """Short unique names: the folder names, or more of the path where they repeat."""
  parts = [os.path.normpath(os.path.abspath(w)).split(os.sep) for w in workdirs]
  depth = 1
  while True:
    labels = ['/'.join(p[-depth:]) for p in parts]
    if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
      return labels
    depth += 1


def read(workdirs: Sequence[str]) -> list[dict]:
  """One row per workdir: what it ran on and how well (see the module docstring).

  Each row: `key` (`run{i}`), `label`, `workdir`, `finished`, `data`, `features`, `head`,
  `folds`, `fold_spearman`, `spearman_mean`, `spearman_std`, `pearson_mean`, `mse_mean`,
  `range_ratio_mean` (None where the run did not record it), `is_baseline`, `config`.
  """
  rows = []
  for i, (workdir, label) in enumerate(zip(workdirs, _labels(workdirs), strict=True)):
    summary, finished = _summary(workdir)
    config_path = os.path.join(workdir, results.CONFIG_FILE)
    config = results.read_json(config_path) if os.path.isfile(config_path) else {}
    data = config.get('data', {})
    dataset = summary.get('dataset') or data.get('name', '?')
    where = data.get('dir') if dataset in ('image_folder', 'lamem') else None
    synthetic = summary.get('synthetic', dataset == 'synthetic')
    described = dataset + (f' {where}' if where else '') + (' (synthetic)' * bool(synthetic))
    protocol = summary.get('protocol') or data.get('protocol')
    features = summary.get('features') or config.get('features') or []
    rows.append(
      {
        'key': f'run{i}',
        'label': label,
        'workdir': workdir,
        'finished': finished,
        'data': described + (f', {protocol}' if protocol else ''),
        'features': '+'.join(features),
        'head': head_of(summary, config),
        'folds': len(summary['folds']),
        'fold_spearman': [f['spearman'] for f in summary['folds']],
        'spearman_mean': summary['spearman_mean'],
        'spearman_std': summary['spearman_std'],
        'pearson_mean': summary.get('pearson_mean'),
        'mse_mean': summary.get('mse_mean'),
        'range_ratio_mean': summary.get('range_ratio_mean'),
        'is_baseline': 'method' in summary,
        'config': config,
      }
    )
  return rows


def _num(value, digits: int = 4) -> str:
  return '' if value is None else f'{value:.{digits}f}'


def _mean_sd(mean: float, sd: float | None) -> str:
  """`0.5512 ± 0.0437`, or the mean alone for one fold (no SD)."""
  return f'{mean:.4f}' + ('' if sd is None else f' ± {sd:.4f}')


def table(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
  """The Markdown table: one line per run, mean ± SD Spearman and the calibration."""
  header = ['run', 'data', 'features', 'head', 'folds', 'Spearman (mean ± SD)', 'Pearson']
  header += ['MSE', 'predicted / true range']
  body = []
  for r in rows:
    folds = str(r['folds']) + ('' if r['finished'] else ' (unfinished)')
    body.append(
      [
        r['label'],
        r['data'],
        r['features'],
        r['head'],
        folds,
        _mean_sd(r['spearman_mean'], r['spearman_std']),
        _num(r['pearson_mean']),
        _num(r['mse_mean']),
        _num(r['range_ratio_mean'], 2),
      ]
    )
  return header, body


CSV_HEADER = [
  'run',
  'workdir',
  'finished',
  'data',
  'features',
  'head',
  'folds',
  'spearman_mean',
  'spearman_sd',
  'pearson_mean',
  'mse_mean',
  'range_ratio_mean',
]


def csv_rows(rows: Sequence[dict]) -> list[list]:
  """The CSV: the same runs with full-precision numbers."""
  return [
    [
      r['label'],
      r['workdir'],
      r['finished'],
      r['data'],
      r['features'],
      r['head'],
      r['folds'],
      r['spearman_mean'],
      r['spearman_std'],
      '' if r['pearson_mean'] is None else r['pearson_mean'],
      '' if r['mse_mean'] is None else r['mse_mean'],
      '' if r['range_ratio_mean'] is None else r['range_ratio_mean'],
    ]
    for r in rows
  ]
