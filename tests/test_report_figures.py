"""The report's figure layouts: nothing hides a bar, no two folds share a colour, no panel title
runs into the panel above."""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from memjax.experiments import figures


def _draw(fig):
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return canvas.get_renderer()


def _overlap(a, b) -> bool:
  return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_fold_bars_15_folds_legend_clear_of_bars_and_distinct_colours():
  rng = np.random.default_rng(0)
  rows = [{'label': f'run {i}', 'fold_spearman': list(rng.uniform(0.4, 0.9, 15))} for i in range(3)]
  fig = figures.fold_bars_figure(rows, 'per fold')
  renderer = _draw(fig)
  (ax,) = fig.axes
  legend = ax.get_legend().get_window_extent(renderer)
  assert not _overlap(legend, ax.get_window_extent(renderer))
  for container in ax.containers:
    for bar in container:
      assert not _overlap(legend, bar.get_window_extent(renderer))
  colours = {tuple(np.round(c.patches[0].get_facecolor(), 3)) for c in ax.containers}
  assert len(ax.containers) == 15 and len(colours) == 15
  assert len(ax.get_legend().get_texts()) == 15


def test_fold_colours_never_repeat():
  for n in (1, 5, 10, 11, 15, 20, 21, 40):
    rows = [{'label': 'run', 'fold_spearman': [0.5] * n}]
    (ax,) = figures.fold_bars_figure(rows, 'per fold').axes
    colours = {tuple(np.round(c.patches[0].get_facecolor(), 4)) for c in ax.containers}
    assert len(ax.containers) == n and len(colours) == n


def test_scatter_titles_clear_of_the_panel_above():
  rng = np.random.default_rng(0)
  folds = []
  for k in range(7):
    true = rng.uniform(0.3, 0.9, 50)
    folds.append({'name': f'fold {k}', 'true': true, 'pred': true + 0.05, 'spearman': 0.5})
  fig = figures.scatter_folds_figure(folds, 'a run: test predictions')
  renderer = _draw(fig)
  axes = np.array(fig.axes).reshape(3, 3)
  for r in range(1, 3):
    for c in range(3):
      if not axes[r, c].axison:
        continue
      title = axes[r, c].title.get_window_extent(renderer)
      xlabel = axes[r - 1, c].xaxis.label.get_window_extent(renderer)
      ticks = axes[r - 1, c].xaxis.get_tightbbox(renderer)
      assert not _overlap(title, xlabel) and not _overlap(title, ticks), (r, c)
  suptitle = fig._suptitle.get_window_extent(renderer)
  for ax in axes[0]:
    assert not _overlap(suptitle, ax.title.get_window_extent(renderer))
