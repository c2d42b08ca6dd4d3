"""--mode=sweep: two K values end to end, their table and plot, and resuming."""

import os

import pytest

from memjax import results
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
  assert summary['best_K'] in (2, 3)
  with open(os.path.join(workdir, 'sweep.csv')) as f:
    assert f.readline().strip() == 'K,mean Spearman,SD,folds' and len(f.readlines()) == 2
  assert os.path.getsize(os.path.join(workdir, 'sweep.png')) > 0
  assert results.read_json(os.path.join(workdir, 'sweep.json'))['best_K'] == summary['best_K']

  eval_path = os.path.join(workdir, 'k2', 'fold_0', 'eval.json')
  mtime = os.path.getmtime(eval_path)
  again = sweep.run(config, workdir)  # finished K's are skipped, not retrained
  assert os.path.getmtime(eval_path) == mtime
  assert again['rows'] == summary['rows']


@pytest.mark.parametrize('ks', [(), (1, 2), (3, 3), (2, 9)])
def test_bad_k_values_are_input_errors(test_config, tmp_path, ks):
  test_config.sweep.num_classes = ks
  with pytest.raises(InputError, match='config.sweep.num_classes'):
    sweep.run(test_config, str(tmp_path))
