"""--mode=sweep: two K values end to end, their table and plot, and resuming."""

import os

import pytest
from figure_checks import assert_figure

from memjax import results, schema
from memjax.errors import InputError
from memjax.experiments import sweep


def test_sweep_two_k_values_then_resume(test_config, tmp_path):
  config = test_config
  config.data.synthetic.num_examples = 300
  config.num_epochs = 1
  config.data.run_folds = (0,)
  config.sweep.num_classes = (2, 3)
  workdir = str(tmp_path)
  summary = sweep.run(config, workdir)
  assert [r['K'] for r in summary['rows']] == [2, 3]
  for k in (2, 3):
    run = results.read_json(os.path.join(workdir, f'k{k}', 'summary.json'))
    assert run['num_classes'] == k and len(run['thresholds'][0]) == k - 1
    row = summary['rows'][k - 2]
    assert row['spearman_mean'] == pytest.approx(run['spearman_mean'])
  means = {r['K']: r['spearman_mean'] for r in summary['rows']}
  assert means[2] != means[3]  # else the pick below would not be tested
  assert summary['best_K'] == max(means, key=means.get)
  with open(os.path.join(workdir, 'sweep.csv')) as f:
    assert f.readline().strip() == 'K,mean Spearman,SD,folds'
    body = [line.strip().split(',') for line in f]
  assert [int(r[0]) for r in body] == [2, 3]
  assert [float(r[1]) for r in body] == pytest.approx([means[2], means[3]], abs=1e-3)
  assert_figure(os.path.join(workdir, 'sweep.png'))
  assert results.read_json(os.path.join(workdir, 'sweep.json'))['best_K'] == summary['best_K']

  eval_path = os.path.join(workdir, 'k2', 'fold_0', 'eval.json')
  mtime = os.path.getmtime(eval_path)
  again = sweep.run(config, workdir)  # finished K's are skipped, not retrained
  assert os.path.getmtime(eval_path) == mtime
  assert again['rows'] == summary['rows']


@pytest.mark.parametrize('ks', [(), (1, 2), (3, 3), (2, 9)])
def test_bad_k_values_are_input_errors(test_config, ks):
  """The schema stops them before the sweep runs (`memjax sweep`)."""
  test_config.sweep.num_classes = ks
  with pytest.raises(InputError, match='config.sweep.num_classes'):
    schema.validate(test_config, 'sweep')
