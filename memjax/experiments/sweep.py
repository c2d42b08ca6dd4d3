"""`--mode=sweep`: the paper's choice of K, one command for K = 2..8.

For each K of `config.sweep.num_classes` the whole k-fold `train.train_and_evaluate` runs with
`num_classes = K` in `WORKDIR/k{K}/`. Interrupted sweeps resume: `train_and_evaluate` skips
finished folds and resumes an unfinished one from its latest checkpoint, so re-running the same
command only trains what is missing. The sweep writes `WORKDIR/sweep.json`, `sweep.csv`,
`sweep.md` and the plot `sweep.png` (mean test Spearman +- SD over folds against K).
"""

import copy
import os
import time

import ml_collections
import numpy as np
from absl import logging

from memjax import results, run_record, train
from memjax.experiments import figures, tables

SWEEP_FILE = 'sweep.json'


def k_workdir(workdir: str, num_classes: int) -> str:
  return os.path.join(workdir, f'k{num_classes}')


def sweep_rows(summaries: dict[int, dict]) -> list[dict]:
  """One table row per K: mean and SD of the test Spearman and the per-fold values."""
  rows = []
  for k, s in sorted(summaries.items()):
    rho = [f['spearman'] for f in s['folds']]
    rows.append(
      {
        'K': k,
        'spearman_mean': s['spearman_mean'],
        'spearman_std': s['spearman_std'],
        'num_folds': len(rho),
        'fold_spearman': rho,
      }
    )
  return rows


def write_outputs(workdir: str, rows: list[dict], title: str) -> dict:
  """Writes sweep.csv, sweep.md and sweep.png; returns their paths."""
  header = ['K', 'mean Spearman', 'SD', 'folds']
  table = [
    [r['K'], tables.fmt(r['spearman_mean']), tables.fmt(r['spearman_std']), r['num_folds']]
    for r in rows
  ]
  paths = {
    'csv': os.path.join(workdir, 'sweep.csv'),
    'markdown': os.path.join(workdir, 'sweep.md'),
    'plot': os.path.join(workdir, 'sweep.png'),
  }
  tables.write_csv(paths['csv'], header, table)
  tables.write_text(paths['markdown'], tables.markdown(header, table) + '\n')
  figures.sweep_plot(paths['plot'], rows, title)
  return paths


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates every K of `config.sweep.num_classes`, resuming finished work.

  Returns:
    The sweep summary (also `WORKDIR/sweep.json`): per K the run's mean/SD Spearman, and the
    paths of the table and plot.
  """
  start = time.time()
  ks = list(config.sweep.num_classes)
  run_record.claim(config, workdir, 'sweep')
  summaries = {}
  for k in ks:
    sub = copy.deepcopy(config)
    sub.num_classes = k
    logging.info('sweep: K=%d in %s', k, k_workdir(workdir, k))
    summaries[k] = train.train_and_evaluate(sub, k_workdir(workdir, k))
  rows = sweep_rows(summaries)
  first = summaries[ks[0]]
  best = max(rows, key=lambda r: np.nan_to_num(r['spearman_mean'], nan=-np.inf))
  title = f'K sweep on {first["dataset"]} ({", ".join(first["features"])})'
  summary = {
    'dataset': first['dataset'],
    'synthetic': first['synthetic'],
    'data_description': first['data_description'],
    'protocol': first['protocol'],
    'features': first['features'],
    'rows': rows,
    'best_K': best['K'],
    'workdirs': {str(k): k_workdir(workdir, k) for k in ks},
    'outputs': write_outputs(workdir, rows, title),
    'wall_seconds': time.time() - start,
  }
  results.write_json(os.path.join(workdir, SWEEP_FILE), summary)
  logging.info(
    'sweep: %s; best K=%d',
    ', '.join(f'K={r["K"]}: {r["spearman_mean"]:.4f}' for r in rows),
    best['K'],
  )
  return summary
