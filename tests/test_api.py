"""memjax.api, end to end on a folder of photos: extract -> train -> load -> score paths and
arrays, against the Predictor and the images' own brightness."""

import os

import numpy as np
import pytest
from PIL import Image
from scored_folders import write_brightness_folder

from memjax import api, metrics, predict
from memjax.errors import InputError


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  from configs import test as test_cfg

  root = tmp_path_factory.mktemp('api')
  write_brightness_folder(root / 'images', 80, seed=3)
  config = test_cfg.get_config()
  config.data.name, config.data.dir = 'image_folder', str(root / 'images')
  config.data.features_dir = str(root / 'store')
  config.features = ('color_grid',)
  config.extract.batch_size = 8
  workdir = str(root / 'run')
  extracted = api.extract(config, workdir)
  summary = api.train(config, workdir)
  return config, workdir, extracted, summary, root


def test_train_and_extract_return_their_summaries(trained):
  _, workdir, extracted, summary, _ = trained
  assert extracted['num_images'] == 80
  assert [f['fold'] for f in summary['folds']] == [0, 1]
  assert summary['spearman_mean'] > 0.5  # brightness is learnt from the colour grid
  assert os.path.isfile(os.path.join(workdir, 'summary.json'))


def test_load_and_score_paths_and_arrays(trained, tmp_path):
  config, workdir, _, _, root = trained
  model = api.load(workdir)  # the config comes from the workdir
  assert model.num_folds == 2 and model.config.features == ('color_grid',)
  names = sorted(n for n in os.listdir(root / 'images') if n.endswith('.png'))[:12]
  paths = [str(root / 'images' / n) for n in names]
  bad = tmp_path / 'broken.jpg'
  bad.write_bytes(b'\xff\xd8 not a jpeg')
  arrays = [np.asarray(Image.open(p).convert('RGB')) for p in paths[:3]]
  rows = model.score([*paths, str(bad), *arrays, arrays[0][..., 0]])

  assert [r.path for r in rows] == [*paths, str(bad), None, None, None, None]
  reference, _, _ = predict.Predictor(config, workdir).predict_paths(paths)
  np.testing.assert_allclose([r.score for r in rows[:12]], reference, rtol=1e-6)
  assert all(r.error == '' for r in rows[:12])
  assert np.isnan(rows[12].score) and rows[12].error  # the broken file, with its reason
  # An array is decoded as its file would be: the same score.
  np.testing.assert_allclose([r.score for r in rows[13:16]], reference[:3], rtol=1e-6)
  assert np.isfinite(rows[16].score)  # a grayscale array
  brightness = [a.mean() for a in (np.asarray(Image.open(p)) for p in paths)]
  assert metrics.spearman(np.array([r.score for r in rows[:12]]), np.array(brightness)) > 0.5


def test_score_refuses_what_is_not_an_image(trained):
  _, workdir, _, _, _ = trained
  model = api.load(workdir)
  with pytest.raises(InputError, match=r'inputs\[1\]: expected a path or a uint8 image array'):
    model.score(['x.png', np.zeros((4, 4, 3), np.float32)])


def test_load_names_an_untrained_workdir(tmp_path):
  with pytest.raises(InputError, match=r'records no run \(no run.json or config.json\)'):
    api.load(str(tmp_path))


def test_train_checks_the_config_before_any_work(tmp_path):
  from configs import test as test_cfg

  config = test_cfg.get_config()
  config.augment.flip = True  # augmentation acts on images: needs data.on_the_fly
  with pytest.raises(InputError, match='on_the_fly'):
    api.train(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
