"""The report's figures, as PNG files drawn with matplotlib's Agg renderer (no display needed).

Figures are built as `matplotlib.figure.Figure` objects (no pyplot global state) and saved
atomically, process 0 only.
"""

import math
import os
import tempfile
from collections.abc import Sequence

import jax
import matplotlib
import numpy as np
from matplotlib import figure

matplotlib.use('Agg')  # the report runs on headless machines

_DPI = 120


def save(fig: figure.Figure, path: str) -> None:
  """Saves `fig` as PNG at `path` atomically."""
  if jax.process_index() != 0:
    return
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp_', suffix='.png')
  try:
    with os.fdopen(fd, 'wb') as f:
      fig.savefig(f, format='png', dpi=_DPI, bbox_inches='tight')
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def sweep_plot(path: str, rows: Sequence[dict], title: str) -> None:
  """Mean test Spearman +- SD over folds against K, with each fold's value as a dot."""
  fig = figure.Figure(figsize=(5.5, 3.8))
  ax = fig.add_subplot()
  ks = [r['K'] for r in rows]
  ax.errorbar(
    ks,
    [r['spearman_mean'] for r in rows],
    yerr=[r['spearman_std'] or 0.0 for r in rows],
    marker='o',
    capsize=4,
    label='mean ± SD over folds',
  )
  for r in rows:
    rho = [np.nan if v is None else v for v in r['fold_spearman']]
    ax.scatter([r['K']] * len(rho), rho, s=10, color='grey', alpha=0.6, zorder=3)
  ax.set_xticks(ks)
  _finish(fig, ax, path, 'K (number of classes)', 'test Spearman', title)


def scatter_folds_figure(folds: Sequence[dict], title: str) -> figure.Figure:
  """Predicted against true score, one panel per fold (`folds`: dicts of `true`, `pred`,
  `name`, `spearman`); constrained layout keeps each panel's title clear of the x label above."""
  n = len(folds)
  cols = min(n, 3)
  nrows = math.ceil(n / cols)
  fig = figure.Figure(figsize=(3.4 * cols, 3.2 * nrows), layout='constrained')
  axes = fig.subplots(nrows, cols, squeeze=False)
  for ax, f in zip(axes.flat, folds, strict=False):
    ax.scatter(f['true'], f['pred'], s=3, alpha=0.3, linewidths=0)
    lo = float(min(np.min(f['true']), np.min(f['pred'])))
    hi = float(max(np.max(f['true']), np.max(f['pred'])))
    ax.plot([lo, hi], [lo, hi], color='grey', lw=0.8, ls='--')
    ax.set_title(f'{f["name"]}: Spearman {f["spearman"]:.3f}', fontsize=9)
    ax.set_xlabel('true score', fontsize=8)
    ax.set_ylabel('predicted score', fontsize=8)
  for ax in axes.flat[n:]:
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  return fig


def scatter_folds(path: str, folds: Sequence[dict], title: str) -> None:
  """Saves `scatter_folds_figure` as a PNG at `path`."""
  save(scatter_folds_figure(folds, title), path)


def _fold_colours(num_folds: int) -> list:
  """One colour per fold, none repeated: tab10 / tab20 up to 20 folds, then a sampled map."""
  if num_folds <= 10:
    return [matplotlib.colormaps['tab10'](k) for k in range(num_folds)]
  if num_folds <= 20:
    return [matplotlib.colormaps['tab20'](k) for k in range(num_folds)]
  return [matplotlib.colormaps['turbo'](v) for v in np.linspace(0.05, 0.95, num_folds)]


def fold_bars_figure(rows: Sequence[dict], title: str) -> figure.Figure:
  """Grouped bars: per-fold test Spearman of each result row (`rows`: dicts of `label`,
  `fold_spearman`). Each fold has its own colour; the legend sits right of the axes, where it
  hides no bar."""
  num_folds = max(len(r['fold_spearman']) for r in rows)
  legend_cols = 1 if num_folds <= 12 else 2
  width_in = max(5.5, (0.25 + 0.06 * num_folds) * len(rows) + 2) + 0.9 * legend_cols
  fig = figure.Figure(figsize=(width_in, 3.8), layout='constrained')
  ax = fig.add_subplot()
  width = 0.8 / max(num_folds, 1)
  x = np.arange(len(rows))
  for k, colour in enumerate(_fold_colours(num_folds)):
    values = [
      np.nan
      if k >= len(r['fold_spearman']) or r['fold_spearman'][k] is None
      else r['fold_spearman'][k]
      for r in rows
    ]
    ax.bar(x - 0.4 + width * (k + 0.5), values, width, label=f'fold {k}', color=colour)
  ax.set_xticks(x)
  ax.set_xticklabels([r['label'] for r in rows], rotation=20, ha='right', fontsize=8)
  ax.set_ylabel('test Spearman')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3, axis='y')
  ax.legend(fontsize=7, ncol=legend_cols, loc='upper left', bbox_to_anchor=(1.01, 1.0))
  return fig


def fold_bars(path: str, rows: Sequence[dict], title: str) -> None:
  """Saves `fold_bars_figure` as a PNG at `path`."""
  save(fold_bars_figure(rows, title), path)


def image_grid(path: str, top: Sequence[dict], bottom: Sequence[dict], title: str) -> None:
  """The paper's Fig. 3: the most (top row) and least (bottom row) memorable images, each with
  its true (left) and predicted (right) score. Entries: dicts of `image` (HxWx3 uint8), `true`,
  `pred`."""
  cols = max(len(top), len(bottom), 1)
  fig = figure.Figure(figsize=(1.8 * cols, 4.2))
  axes = fig.subplots(2, cols, squeeze=False)
  for r, (entries, label) in enumerate(((top, 'most memorable'), (bottom, 'least memorable'))):
    for c in range(cols):
      ax = axes[r, c]
      ax.axis('off')
      if c >= len(entries):
        continue
      e = entries[c]
      ax.imshow(e['image'])
      ax.set_title(f'{e["true"]:.2f}   {e["pred"]:.2f}', fontsize=8)
    axes[r, 0].text(
      -0.1,
      0.5,
      label,
      transform=axes[r, 0].transAxes,
      rotation=90,
      va='center',
      ha='right',
      fontsize=9,
    )
  fig.suptitle(f'{title}\n(true score left, predicted right)', fontsize=9)
  save(fig, path)


def search_history(path: str, values: Sequence[tuple[int, float, str]], title: str) -> None:
  """Objective of each finished trial (number, value, state) and the running best."""
  fig = figure.Figure(figsize=(5.5, 3.8))
  ax = fig.add_subplot()
  for state, marker in (('COMPLETE', 'o'), ('PRUNED', 'x')):
    pts = [(n, v) for n, v, s in values if s == state and v is not None]
    if pts:
      ax.scatter(*zip(*pts, strict=True), marker=marker, label=state.lower(), s=18)
  done = sorted((n, v) for n, v, s in values if s == 'COMPLETE' and v is not None)
  if done:
    ax.step(
      [n for n, _ in done], np.maximum.accumulate([v for _, v in done]), where='post', label='best'
    )
  _finish(fig, ax, path, 'trial', 'mean fold Spearman (pruned: at pruning)', title)


def _finish(fig: figure.Figure, ax, path: str, xlabel: str, ylabel: str, title: str) -> None:
  """Labels, title, grid and legend of a one-axes figure; saves it at `path`."""
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  save(fig, path)
