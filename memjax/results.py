"""Result files: atomic JSON writes, per-fold `eval.json` and the run's `summary.json`."""

import json
import math
import os

import jax
import ml_collections
import numpy as np

from memjax import metrics
from memjax.datasets import MemorabilityData
from memjax.errors import out_of_space
from memjax.runtime import atomic_files

EVAL_FILE, SUMMARY_FILE, CONFIG_FILE = 'eval.json', 'summary.json', 'config.json'


def _clean(value):
  """JSON-safe copy: NumPy scalars/arrays to Python, NaN/inf to None."""
  if isinstance(value, dict):
    return {str(k): _clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, np.ndarray)):
    return (
      [_clean(v) for v in np.asarray(value).tolist()]
      if isinstance(value, np.ndarray)
      else [_clean(v) for v in value]
    )
  if isinstance(value, (np.floating, float)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def write_json(path: str, obj) -> None:
  """Writes `obj` to `path` atomically (synced temp file + rename), process 0 only.

  On any failure the old file is left as it was and the temp file is removed.

  Raises:
    InputError: the disk is full (naming `path`).
  """
  if jax.process_index() != 0:
    return
  directory = os.path.dirname(os.path.abspath(path))
  kept = 'The previous file is unchanged.' if os.path.exists(path) else ''
  with out_of_space(path, f'{kept} Free space and re-run.'.lstrip()):
    os.makedirs(directory, exist_ok=True)
    with atomic_files.replacing(path) as f:
      json.dump(_clean(obj), f, indent=2, sort_keys=True)
      f.write('\n')


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def fold_dir(workdir: str, fold: int) -> str:
  return os.path.join(workdir, f'fold_{fold}')


def over_folds(
  config: ml_collections.ConfigDict, data: MemorabilityData, fold_results: list
) -> dict:
  """What every run's summary holds, MLP or baseline: the data, the features, the folds, mean and
  SD (ddof=1; None for one fold) of the test Spearman over folds (a fold's None counts as NaN),
  the calibration over folds (`metrics.fold_summary`) and the data's ceiling."""
  rho = np.array([r['spearman'] for r in fold_results], np.float64)
  return {
    'dataset': data.name,
    'synthetic': data.synthetic,
    'data_description': data.description,
    'protocol': config.data.protocol,
    'label_version': data.label_version if config.data.protocol == 'cv5' else None,
    'features': list(config.features),
    'folds': fold_results,
    'spearman_mean': float(rho.mean()),
    'spearman_std': float(rho.std(ddof=1)) if rho.size > 1 else None,
    **metrics.fold_summary(fold_results),  # Pearson, MSE, predicted vs true range over folds
    'ceiling': data.ceiling,
  }


def summarize(
  config: ml_collections.ConfigDict,
  data: MemorabilityData,
  fold_results: list,
  *,
  mode: str,
  wall_seconds: float,
) -> dict:
  """The MLP run's summary: `over_folds`, the head and checkpoint choice, the devices and
  processes, and the classes (K, s_k rule, thresholds) only for the classification head."""
  summary = {
    **over_folds(config, data, fold_results),
    'head': config.model.head,
    'checkpoint': config.eval.checkpoint,
    'num_devices': jax.device_count(),
    'num_processes': jax.process_count(),
    'mode': mode,
    'wall_seconds': wall_seconds,
  }
  if config.model.head == 'classification':  # a regression head has no classes
    summary.update(
      num_classes=config.num_classes,
      score_values=config.score_values,
      thresholds=[r['thresholds'] for r in fold_results],
    )
  return summary


def mean_line(summary: dict) -> str:
  """`mean test Spearman over N folds: M +- SD (ceiling C)`, without what the run lacks."""
  n = len(summary['folds'])
  line = f'mean test Spearman over {n} fold{"s" if n != 1 else ""}: {summary["spearman_mean"]:.4f}'
  if summary['spearman_std'] is not None:
    line += f' +- {summary["spearman_std"]:.4f}'
  if summary.get('ceiling') is not None:
    line += f' (ceiling {summary["ceiling"]:.4f})'
  return line
