"""The regression head through train, evaluate and predict; one workdir holds one run; a
damaged latest checkpoint is set aside and training resumes from the one before."""

import csv
import glob
import os
import shutil

import numpy as np
import numpy_mlp
import pytest
import scored_folders

from memjax import datasets, evaluate, fold_data, parallel, predict, results, run_parts, train
from memjax.errors import InputError
from memjax.experiments import fold_predictions
from memjax.features import images


@pytest.fixture(scope='module')
def regression_run(tmp_path_factory):
  from configs import test as test_cfg

  root = tmp_path_factory.mktemp('regression')
  scored_folders.write_brightness_folder(root / 'images', 60, seed=0, noise=30, score_noise=None)
  config = test_cfg.get_config()
  config.data.name, config.data.dir = 'image_folder', str(root / 'images')
  config.data.on_the_fly = True
  config.features = ('color_grid',)
  config.model.head = 'regression'
  config.model.hidden_units = (16,)
  config.batch_size, config.eval_batch_size = 8, 16
  config.num_epochs, config.optimizer.learning_rate = 4, 1e-2
  workdir = str(root / 'run')
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_regression_head_trains_evaluates_and_predicts_the_fold_ensemble(regression_run):
  config, workdir, summary = regression_run
  assert summary['head'] == 'regression' and len(summary['folds']) == 2
  assert summary['spearman_mean'] > 0.5  # brightness is learnt from the colour grid
  # A regression run reports no classes: no K, s_k rule, thresholds or accuracy.
  assert not {'num_classes', 'score_values', 'thresholds'} & set(summary)
  for fold in summary['folds']:
    assert not {'accuracy', 'thresholds', 'score_values'} & set(fold)
  again = evaluate.evaluate(config, workdir)
  for a, b in zip(summary['folds'], again['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-6)

  # predict: the mean over folds of each fold's prediction, as the eval step computes it.
  config.predict.input = config.data.dir
  config.predict.output = os.path.join(workdir, 'predictions.csv')
  out = predict.predict(config, workdir)
  assert out['num_folds'] == 2 and out['num_unreadable'] == 0
  with open(config.predict.output) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ['path', 'score', 'error']  # no class probabilities
  by_name = {os.path.basename(r['path']): float(r['score']) for r in rows}
  data = datasets.load(config)
  mesh = parallel.make_mesh()
  all_rows = np.arange(len(data.ids))
  parts = run_parts.build_parts(config, data.extractors, data.feature_dims(config.features), mesh)
  per_fold = []
  for fold in (0, 1):
    params, meta, _ = parts.restore(os.path.join(workdir, f'fold_{fold}'), config.eval.checkpoint)
    per_fold.append(
      fold_predictions.predict_rows(config, data, parts, data.scores, all_rows, params, meta)
    )
  expected = np.mean(per_fold, axis=0)
  got = np.array([by_name[i] for i in data.ids])
  np.testing.assert_allclose(got, expected, atol=2e-6)
  # ... and independently of memjax: each fold's chosen checkpoint restored by orbax, the MLP
  # with its sigmoid head in NumPy, on NumPy colour-grid means of the decoded crops.
  crops = np.stack([images.load_image(p, 256, 224) for p in data.features['image'].paths])
  n = len(crops)
  x = (crops / 255.0).reshape(n, 4, 56, 4, 56, 3).mean(axis=(2, 4)).reshape(n, 48)
  independent = []
  for fold in (0, 1):
    fold_dir = os.path.join(workdir, f'fold_{fold}')
    step = results.read_json(os.path.join(fold_dir, 'eval.json'))['checkpoint_step']
    params = numpy_mlp.checkpoint_params(fold_dir, step)
    assert set(params) == {'color_grid_0', 'fusion_0', 'head'} and params['head']['bias'].size == 1
    independent.append(numpy_mlp.forward(params, {'color_grid': x}, config.features))
  np.testing.assert_allclose(got, np.mean(independent, axis=0), rtol=0, atol=2e-6)


def test_a_rerun_with_a_result_changing_field_is_refused_naming_it(regression_run, tmp_path):
  config, workdir, _ = regression_run
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  changed = config.copy_and_resolve_references()
  changed.seed, changed.optimizer.learning_rate = 1, 3e-3
  for mode in (train.train_and_evaluate, evaluate.evaluate):
    with pytest.raises(InputError) as e:
      mode(changed, copy)
    assert str(e.value) == (
      f'{copy} holds another run (recorded in run.json): optimizer.learning_rate: 0.01 -> 0.003; '
      'seed: 0 -> 1. Use a new --workdir, or --config.resume_changed=True to continue it anyway.'
    )
  # Fields that cannot change results may differ.
  same = config.copy_and_resolve_references()
  same.log_every_secs, same.eval.checkpoint, same.data.run_folds = 5.0, 'latest', (1,)
  assert len(evaluate.evaluate(same, copy)['folds']) == 1
  # The override goes on and says so in the summary.
  changed.resume_changed = True
  summary = train.train_and_evaluate(changed, copy)
  assert summary['resumed_with_changes'] == [
    'optimizer.learning_rate: 0.01 -> 0.003',
    'seed: 0 -> 1',
  ]


def test_the_same_data_elsewhere_is_the_same_run_but_changed_scores_are_not(
  regression_run, tmp_path
):
  config, workdir, summary = regression_run
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  images = str(tmp_path / 'images')
  shutil.copytree(config.data.dir, images)
  moved = config.copy_and_resolve_references()
  moved.data.dir = images
  again = evaluate.evaluate(moved, copy)
  assert [f['spearman'] for f in again['folds']] == [f['spearman'] for f in summary['folds']]
  csv_path = os.path.join(images, 'scores.csv')
  with open(csv_path) as f:
    lines = f.read().splitlines()
  lines[1] = lines[1].split(',')[0] + ',0.0100'
  with open(csv_path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  with pytest.raises(InputError, match=r'holds another run .*: the data \(ids, scores, splits'):
    evaluate.evaluate(moved, copy)


def test_a_damaged_latest_checkpoint_is_set_aside_and_training_resumes(regression_run, tmp_path):
  config, workdir, summary = regression_run
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  fold1 = os.path.join(copy, 'fold_1')
  os.remove(os.path.join(fold1, 'eval.json'))
  steps_dirs = sorted(
    (d for d in glob.glob(os.path.join(fold1, 'checkpoints', '*')) if d.split('/')[-1].isdigit()),
    key=lambda d: int(os.path.basename(d)),
  )
  latest = steps_dirs[-1]
  for path in glob.glob(os.path.join(latest, 'params', '**', 'd', '*'), recursive=True):
    with open(path, 'r+b') as f:
      f.truncate(1)
  # The fold retrains from the intact checkpoint before the damaged one, to the same result.
  plans = fold_data.plan_folds(config, datasets.load(config))
  assert plans[1].name == 'fold_1'
  resumed = train.train_and_evaluate(config, copy)
  aside = glob.glob(os.path.join(fold1, 'damaged_checkpoints', '*'))
  assert [os.path.basename(a).split('-')[0] for a in aside] == [os.path.basename(latest)]
  assert resumed['folds'][1]['spearman'] == pytest.approx(summary['folds'][1]['spearman'], abs=1e-6)
