"""--mode=report (and --mode=transfer): tables, CSV and PNGs from small real workdirs."""

import csv
import os

import ml_collections
import mounts
import numpy as np
import pytest
from figure_checks import assert_figure
from PIL import Image

from memjax import metrics, results, train
from memjax.errors import InputError
from memjax.experiments import (
  baselines,
  fold_predictions,
  memorable_images,
  paper_table,
  report,
  search,
  sweep,
  transfer,
)


def _small(config):
  config.data.synthetic.num_examples = 300
  config.num_epochs = 1
  return config


def _entry(num_examples, seed, first_row, paper, about):
  return ml_collections.ConfigDict(
    {
      'data': {'synthetic': {'num_examples': num_examples}},
      'seed': seed,
      'first_row': first_row,
      'paper': paper,
      'about': about,
    }
  )


@pytest.fixture(scope='module')
def workdirs(tmp_path_factory):
  from configs import test as test_cfg

  root = tmp_path_factory.mktemp('report')
  dirs = {k: str(root / k) for k in ('mlp', 'svr', 'sweep', 'search', 'out')}
  config = _small(test_cfg.get_config())
  train.train_and_evaluate(config, dirs['mlp'])

  config.baseline.num_trials, config.baseline.tune_rows = 2, 100
  config.baseline.nystroem_components = 30
  baselines.run(config, dirs['svr'])

  config.transfer.datasets['heldout'] = _entry(400, None, 300, 0.59, 'unseen rows')
  config.transfer.datasets['other'] = _entry(200, 1, 0, None, 'other generator')
  transfer.transfer(config, dirs['mlp'])

  fake = {k: {'folds': [{'spearman': 0.5 + k / 100}, {'spearman': 0.4}]} for k in (2, 4)}
  for s in fake.values():
    s.update(spearman_mean=float(np.mean([f['spearman'] for f in s['folds']])), spearman_std=0.1)
  results.write_json(
    os.path.join(dirs['sweep'], sweep.SWEEP_FILE),
    {'dataset': 'synthetic', 'features': ['cnn'], 'best_K': 4, 'rows': sweep.sweep_rows(fake)},
  )

  config.search.heartbeat_secs = 60
  study = search.open_study(config, dirs['search'])
  for value, units in ((0.5, 32), (0.6, 64)):
    params = {
      'units_cnn_0': units,
      'units_semantic_0': units,
      'units_fusion_0': units,
      'dropout': 0.1,
      'activation': 'relu',
      'optimizer': 'adam',
      'learning_rate': 1e-3,
    }
    study.enqueue_trial(params)
    study.optimize(lambda t, v=value: (search.suggest(t, config), v)[1], n_trials=1)
  search.export(config, study, dirs['search'], 'sqlite:///x', 0.0)
  return dirs


def test_transfer_scores_each_dataset(workdirs):
  t = results.read_json(os.path.join(workdirs['mlp'], transfer.TRANSFER_FILE))
  by_name = {d['name']: d for d in t['datasets']}
  assert by_name['heldout']['num_images'] == 100 and by_name['heldout']['paper'] == 0.59
  assert by_name['heldout']['spearman'] > 0.2  # same generator, unseen rows
  assert by_name['other']['num_images'] == 200 and len(by_name['other']['fold_spearman']) == 2
  preds = fold_predictions.load(os.path.join(workdirs['mlp'], 'transfer', 'heldout.npz'))
  np.testing.assert_array_equal(preds['rows'], np.arange(300, 400))
  assert metrics.spearman(preds['pred'], preds['true']) == pytest.approx(
    by_name['heldout']['spearman']
  )


def test_report_writes_tables_and_figures(workdirs, test_config):
  config = test_config
  config.report.table1.cnn_ic_mlp_k4 = workdirs['mlp']
  config.report.table1.cnn_svr = workdirs['svr']
  config.report.sweep = workdirs['sweep']
  config.report.search = workdirs['search']
  config.report.transfer = workdirs['mlp']
  out = workdirs['out']
  summary = report.report(config, out)

  with open(os.path.join(out, 'table1.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['row'] for r in rows] == [label for _, label, _ in paper_table.TABLE1]
  assert [r['paper (LaMem)'] for r in rows] == ['0.64', '0.64', '0.65', '0.65', '0.67', '0.72']
  mlp = results.read_json(os.path.join(workdirs['mlp'], 'summary.json'))
  assert float(rows[5]['memjax mean Spearman']) == pytest.approx(mlp['spearman_mean'], abs=1e-4)
  assert 'MLP K=4' in rows[5]['run'] and 'SVR (nystroem' in rows[0]['run']
  assert rows[1]['memjax mean Spearman'] == 'not run'
  with open(os.path.join(out, 'table1.md')) as f:
    assert f.read().count('\n') == 8  # header, rule, six rows
  for name in ('fold_spearman', 'scatter_cnn_ic_mlp_k4', 'sweep', 'search'):
    assert_figure(os.path.join(out, 'figures', f'{name}.png'))
  assert not os.path.exists(os.path.join(out, 'figures', 'memorable_grid_cnn_ic_mlp_k4.png'))
  with open(summary['written']['report']) as f:
    page = f.read()
  assert 'SYNTHETIC' in page and 'Cross-dataset' in page and 'heldout' in page

  # The MLP's per-fold predictions came from its checkpoints and match its eval.json.
  for fold in (0, 1):
    fdir = results.fold_dir(workdirs['mlp'], fold)
    p = fold_predictions.load(os.path.join(fdir, 'predictions.npz'))
    ev = results.read_json(os.path.join(fdir, 'eval.json'))
    assert p['rows'].size == ev['num_test']
    assert metrics.spearman(p['pred'], p['true']) == pytest.approx(ev['spearman'], abs=1e-5)


def test_memorable_grid_with_images(tmp_path, test_config):
  images = tmp_path / 'images'
  images.mkdir()
  ids = [f'img{i}.png' for i in range(6)]
  for i, name in enumerate(ids):
    Image.new('RGB', (40 + i, 30), (40 * i, 100, 200 - 30 * i)).save(images / name)
  with open(images / 'scores.csv', 'w') as f:
    f.write('image,score\n' + ''.join(f'{n},{0.5 + i / 20}\n' for i, n in enumerate(ids)))
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(images)
  workdir = tmp_path / 'run'
  results.write_json(str(workdir / 'config.json'), config.to_dict())
  preds = [{'ids': np.array(ids), 'true': np.linspace(0.5, 0.75, 6), 'pred': np.arange(6.0)}]
  row = {'workdir': str(workdir), 'label': 'test row'}
  path = str(tmp_path / 'grid.png')
  assert memorable_images.grid(path, row, preds, 2) == path
  assert_figure(path)
  # The two highest and the two lowest predictions are shown (each image is one flat colour).
  with Image.open(path) as grid:
    pixels = np.asarray(grid.convert('RGB')).reshape(-1, 3).astype(int)
  for i in range(6):
    shown = (np.abs(pixels - (40 * i, 100, 200 - 30 * i)).max(axis=1) <= 3).sum()
    if i in (0, 1, 4, 5):
      assert shown > 200, (i, shown)
    else:
      assert shown == 0, (i, shown)


def _tree(root):
  """{relative path: (size, mtime)} of every file under `root`."""
  out = {}
  for directory, _, names in os.walk(root):
    for name in names:
      path = os.path.join(directory, name)
      out[os.path.relpath(path, root)] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return out


def test_report_reads_a_read_only_workdir_without_writing_to_it(workdirs, test_config, tmp_path):
  """The issue's case: the fold predictions cache (fold_K/predictions.npz) is skipped when the
  trained workdir is on a read-only mount, instead of dying with EROFS."""
  for fold in (0, 1):  # as a workdir that no report has read yet
    path = os.path.join(results.fold_dir(workdirs['mlp'], fold), 'predictions.npz')
    if os.path.exists(path):
      os.unlink(path)
  before = _tree(workdirs['mlp'])
  with mounts.read_only_view(workdirs['mlp'], str(tmp_path / 'ro')) as ro:
    config = test_config
    config.report.table1.cnn_ic_mlp_k4 = ro
    summary = report.report(config, str(tmp_path / 'out'))
    assert _tree(ro) == before
  assert_figure(os.path.join(str(tmp_path / 'out'), 'figures', 'scatter_cnn_ic_mlp_k4.png'))
  assert summary['written']['report']
  mlp = results.read_json(os.path.join(workdirs['mlp'], 'summary.json'))
  with open(os.path.join(str(tmp_path / 'out'), 'table1.csv')) as f:
    row = list(csv.DictReader(f))[5]
  assert float(row['memjax mean Spearman']) == pytest.approx(mlp['spearman_mean'], abs=1e-4)


def test_runs_report_compares_your_runs(workdirs, test_config, tmp_path):
  """`config.report.runs`: a workdir, a folder of workdirs and a glob give one row per run."""
  root = os.path.dirname(workdirs['mlp'])
  unfinished = tmp_path / 'unfinished'
  (unfinished / 'fold_0').mkdir(parents=True)
  fold0 = results.read_json(os.path.join(workdirs['mlp'], 'fold_0', 'eval.json'))
  results.write_json(str(unfinished / 'fold_0' / 'eval.json'), fold0)
  config = test_config
  config.report.runs = (workdirs['mlp'], root, os.path.join(root, 'sv*'), str(unfinished))
  out = str(tmp_path / 'out')
  summary = report.report(config, out)

  # mlp once (named directly, then again through the folder), svr once, the unfinished run.
  assert [r['label'] for r in summary['runs']] == ['mlp', 'svr', 'unfinished']
  mlp = results.read_json(os.path.join(workdirs['mlp'], 'summary.json'))
  svr = results.read_json(os.path.join(workdirs['svr'], 'summary.json'))
  with open(os.path.join(out, 'runs.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [r['run'] for r in rows] == ['mlp', 'svr', 'unfinished']
  assert float(rows[0]['spearman_mean']) == pytest.approx(mlp['spearman_mean'])
  assert float(rows[0]['spearman_sd']) == pytest.approx(mlp['spearman_std'])
  assert float(rows[0]['pearson_mean']) == pytest.approx(mlp['pearson_mean'])
  assert float(rows[1]['spearman_mean']) == pytest.approx(svr['spearman_mean'])
  assert rows[0]['head'] == 'MLP K=4' and rows[1]['head'].startswith('SVR (nystroem')
  assert rows[0]['features'] == 'cnn+semantic' and rows[0]['folds'] == '2'
  assert rows[0]['data'] == 'synthetic (synthetic), cv5'
  assert rows[2]['finished'] == 'False' and rows[2]['folds'] == '1'
  assert float(rows[2]['spearman_mean']) == pytest.approx(fold0['spearman'])
  with open(os.path.join(out, 'runs.md')) as f:
    table = f.read()
  assert table.count('\n') == 5  # header, rule, three runs
  assert f'{mlp["spearman_mean"]:.4f} ± {mlp["spearman_std"]:.4f}' in table
  assert '1 (unfinished)' in table
  for name in ('fold_spearman', 'scatter_run0', 'scatter_run1'):
    assert_figure(os.path.join(out, 'figures', f'{name}.png'))
  assert not os.path.exists(os.path.join(out, 'figures', 'scatter_run2.png'))
  with open(os.path.join(out, 'report.html')) as f:
    page = f.read()
  assert page.count('<tr>') == 1 + 3 and 'figures/scatter_run0.png' in page
  assert 'table1.csv' not in os.listdir(out)


def test_runs_report_names_an_entry_with_no_run(test_config, tmp_path):
  config = test_config
  config.report.runs = (str(tmp_path / 'nothing*'),)
  with pytest.raises(InputError, match=r"config\.report\.runs: '.*nothing\*' names no run"):
    report.report(config, str(tmp_path / 'out'))


def test_missing_sweep_is_skipped_not_fatal(test_config, tmp_path):
  config = test_config
  config.report.sweep = str(tmp_path / 'no_sweep')
  config.report.search = 'None'
  summary = report.report(config, str(tmp_path / 'out'))
  assert 'sweep' not in summary['written'] and os.path.exists(summary['written']['html'])


def test_runs_table_of_a_one_fold_run_shows_no_sd():
  """A one-fold run records no SD (`spearman_std` None): the table shows its mean alone."""
  from memjax.experiments import run_rows

  row = {
    'label': 'one',
    'data': 'synthetic, cv5',
    'features': 'cnn',
    'head': 'MLP K=4',
    'folds': 1,
    'finished': True,
    'spearman_mean': 0.61234,
    'spearman_std': None,
    'pearson_mean': 0.5,
    'mse_mean': 0.02,
    'range_ratio_mean': 0.8,
  }
  _, body = run_rows.table([row, dict(row, label='two', folds=2, spearman_std=0.01)])
  assert body[0][5] == '0.6123' and body[1][5] == '0.6123 ± 0.0100'
