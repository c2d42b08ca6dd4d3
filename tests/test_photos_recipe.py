"""configs/photos.py's recipe end to end on a small folder of generated photos: repeated folds,
an in-fold ensemble, EMA, the last checkpoint, the regression head; then predict and transfer
with the fold ensemble agree image by image."""

import csv
import os

import numpy as np
import pytest
import scored_folders

from configs import photos, transfer_photos
from memjax import predict, train
from memjax.experiments import fold_predictions, transfer


def _small(config, images: str):
  config.data.dir = images
  config.data.on_the_fly = True  # no store here, so no standardisation (it needs stored features)
  config.standardize = False
  config.features = ('color_grid',)
  config.data.num_folds, config.data.fold_seeds = 2, (0, 1)
  config.model.ensemble_size = 2
  config.model.hidden_units = (16,)
  # 5 epochs at 2e-2 learn it as well as 10 at 1e-2 did (Spearman 0.97, Pearson 0.97 per fold,
  # prediction spread 0.07-0.08) at half the steps and checkpoint saves.
  config.num_epochs, config.batch_size, config.eval_batch_size = 5, 8, 16
  config.optimizer.learning_rate = 2e-2
  config.ema_decay = 0.8  # ~30 steps per fold here: decay 0.99 would barely leave the init
  config.log_every_secs = 100.0
  return config


@pytest.fixture(scope='module')
def recipe_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('photos')
  scored_folders.write_brightness_folder(root / 'images', 96, seed=1)
  config = _small(photos.get_config(), str(root / 'images'))
  workdir = str(root / 'run')
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_the_recipe_trains_every_fold_of_every_fold_seed(recipe_run):
  config, _, summary = recipe_run
  assert [f['name'] for f in summary['folds']] == [
    'seed0_fold_0',
    'seed0_fold_1',
    'seed1_fold_0',
    'seed1_fold_1',
  ]
  assert all(f['epoch'] == config.num_epochs for f in summary['folds'])  # the last checkpoint
  assert summary['head'] == 'regression'
  assert summary['spearman_mean'] > 0.5  # brightness is learnt from the colour grid
  for f in summary['folds']:  # scores spread with the true ones (calibration fields)
    assert f['pearson'] > 0.5 and f['pred_max'] - f['pred_min'] > 0.05


def test_predict_and_transfer_use_the_whole_fold_ensemble(recipe_run, tmp_path):
  config, workdir, _ = recipe_run
  config.predict.input = config.data.dir
  config.predict.output = str(tmp_path / 'predictions.csv')
  assert predict.predict(config, workdir)['num_folds'] == 4
  with open(config.predict.output) as f:
    predicted = {os.path.basename(r['path']): float(r['score']) for r in csv.DictReader(f)}

  tconfig = _small(transfer_photos.get_config(), config.data.dir)
  tconfig.transfer.datasets.photos.data.dir = config.data.dir
  tconfig.transfer.datasets.photos.data.on_the_fly = True
  result = transfer.transfer(tconfig, workdir)
  assert result['datasets'][0]['folds'] == [0, 1, 2, 3]
  saved = fold_predictions.load(os.path.join(workdir, 'transfer', 'photos.npz'))
  got = np.array([predicted[os.path.basename(i)] for i in saved['ids']])
  np.testing.assert_allclose(saved['pred'], got, atol=2e-6)
