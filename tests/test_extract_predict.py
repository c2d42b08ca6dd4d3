"""Images -> features (extract, resumable, bad files) -> train -> predict, with real photos."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from memjax import extract, predict, train
from memjax.errors import InputError
from memjax.features import image_decode, images, registry, store


def _photos(n, seed=0):
  """`n` RGB images with structure (gradients + blobs) and a brightness-driven score."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    h, w = rng.integers(40, 90, size=2)
    base = rng.uniform(0, 255, size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    img = base + 60 * np.sin(xx[..., None] / rng.uniform(3, 9) + rng.uniform(0, 6, size=3))
    img += 40 * (yy[..., None] / h)
    out.append(np.clip(img, 0, 255).astype(np.uint8))
  return out


def _write_folder(root, n=48, bad=()):
  """An image folder in several formats and modes, plus scores.csv (brighter = more memorable)."""
  os.makedirs(root / 'sub', exist_ok=True)
  rows = []
  for i, array in enumerate(_photos(n)):
    image = Image.fromarray(array)
    kind = i % 6
    if kind == 0:
      name = f'{i:03d}.jpg'
      image.save(root / name, quality=95)
    elif kind == 1:
      name = f'sub/{i:03d}.png'
      rgba = image.convert('RGBA')
      rgba.putalpha(200)
      rgba.save(root / name)
    elif kind == 2:
      name = f'{i:03d}_gray.png'
      image.convert('L').save(root / name)
    elif kind == 3:
      name = f'{i:03d}_cmyk.jpg'
      image.convert('CMYK').save(root / name)
    elif kind == 4:
      name = f'{i:03d}.gif'
      image.convert('P').save(root / name)
    else:
      name = f'{i:03d}.bmp'
      image.save(root / name)
    rows.append((name, float(np.clip(array.mean() / 255, 0, 1))))
  for name in bad:
    (root / name).write_bytes(b'' if name.startswith('empty') else b'\xff\xd8 not a jpeg')
    rows.append((name, 0.5))
  with open(root / 'scores.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['image', 'score'])
    writer.writerows([(r, f'{s:.4f}') for r, s in rows])
  return rows


def _config(test_config, tmp_path):
  config = test_config
  config.data.name = 'image_folder'
  config.data.dir = str(tmp_path / 'images')
  config.data.features_dir = str(tmp_path / 'store')
  config.features = ('color_grid',)
  config.extract.batch_size = 8
  config.extract.dtype = 'float32'
  return config


def test_load_image_converts_every_mode_to_rgb_crops(tmp_path):
  _write_folder(tmp_path, n=6)
  for name in ('000.jpg', 'sub/001.png', '002_gray.png', '003_cmyk.jpg', '004.gif', '005.bmp'):
    crop = images.load_image(str(tmp_path / name), resize_to=64, image_size=56)
    assert crop.shape == (56, 56, 3) and crop.dtype == np.uint8
  gray = images.load_image(str(tmp_path / '002_gray.png'), 64, 56)
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  transparent = Image.new('RGBA', (10, 10), (0, 0, 0, 0))
  assert image_decode.to_rgb(transparent).getpixel((5, 5)) == (255, 255, 255)


def test_extract_skips_bad_images_and_resumes_after_a_crash(test_config, tmp_path, monkeypatch):
  rows = _write_folder(tmp_path / 'images', bad=('broken.jpg', 'empty.png'))
  config = _config(test_config, tmp_path)
  append, calls = store.StoreWriter.append, []

  def append_then_die(self, batch):
    append(self, batch)
    calls.append(len(next(iter(batch.values()))))
    if len(calls) == 3:
      raise KeyboardInterrupt

  monkeypatch.setattr(store.StoreWriter, 'append', append_then_die)
  with pytest.raises(KeyboardInterrupt):
    extract.extract(config, str(tmp_path))
  assert not store.is_complete(config.data.features_dir)
  calls.clear()
  monkeypatch.setattr(
    store.StoreWriter,
    'append',
    lambda self, b: (append(self, b), calls.append(len(b['color_grid']))),
  )
  summary = extract.extract(config, str(tmp_path))
  assert sum(calls) == len(rows) - 24  # only the rows after the 3 finished batches
  ids, features, meta = store.read_store(config.data.features_dir)
  assert sorted(summary['skipped']) == sorted(
    str(tmp_path / 'images' / n) for n in ('broken.jpg', 'empty.png')
  )
  assert len(ids) == len(rows) - 2 and 'broken.jpg' not in ids
  assert [s['id'] for s in meta['skipped']] == ['broken.jpg', 'empty.png']
  grid = registry.color_grid()
  for i in (0, 7, 40):
    crop = images.load_image(os.path.join(config.data.dir, ids[i]), 256, 224)
    np.testing.assert_allclose(
      features['color_grid'][i], grid.forward({}, crop[None])[0], atol=1e-4
    )
  again = extract.extract(config, str(tmp_path))
  assert again['already_complete']


def test_extract_can_stop_on_the_first_bad_image(test_config, tmp_path):
  _write_folder(tmp_path / 'images', n=12, bad=('broken.jpg',))
  config = _config(test_config, tmp_path)
  config.extract.on_error = 'stop'
  with pytest.raises(InputError, match='unreadable image.*broken.jpg'):
    extract.extract(config, str(tmp_path))
  assert not store.is_complete(config.data.features_dir)


def test_image_chain_trains_and_predicts(test_config, tmp_path):
  rows = _write_folder(tmp_path / 'images', n=96)
  config = _config(test_config, tmp_path)
  config.model.branch_units.color_grid = (16,)
  # 12 epochs learn it (fold Spearman 0.84 / 0.66, predictions 0.88); each epoch also scores
  # and checkpoints both folds, so more only cost time.
  config.num_epochs, config.batch_size, config.model.dropout = 12, 8, 0.0
  config.optimizer.learning_rate = 1e-2
  extract.extract(config, str(tmp_path))
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(config, workdir)
  assert summary['dataset'] == 'image_folder' and summary['synthetic'] is False
  assert summary['spearman_mean'] > 0.5  # brightness is visible in the colour grid
  config.predict.input = str(tmp_path / 'images')
  out = predict.predict(config, workdir)
  assert out['num_images'] == len(rows) and out['num_folds'] == 2
  with open(out['output']) as f:
    written = list(csv.DictReader(f))
  assert list(written[0]) == ['path', 'score', 'prob_0', 'prob_1', 'prob_2', 'prob_3', 'error']
  scores = {os.path.relpath(r['path'], config.data.dir): float(r['score']) for r in written}
  probs = np.array([[float(r[f'prob_{k}']) for k in range(4)] for r in written])
  np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
  truth = dict(rows)
  from scipy import stats

  rho = stats.spearmanr([scores[k] for k in truth], [truth[k] for k in truth]).statistic
  assert rho > 0.5


def test_on_the_fly_features_match_the_stored_ones(test_config, tmp_path):
  """Training with extractors inside the jitted step == training on extracted features."""
  _write_folder(tmp_path / 'images', n=40)
  config = _config(test_config, tmp_path)
  config.extract.dtype = 'float32'
  config.data.run_folds = (0,)
  config.num_epochs = 2
  extract.extract(config, str(tmp_path))
  stored = train.train_and_evaluate(config, str(tmp_path / 'stored'))
  config.data.on_the_fly = True
  config.data.features_dir = None
  live = train.train_and_evaluate(config, str(tmp_path / 'live'))
  assert live['folds'][0]['num_examples'] == stored['folds'][0]['num_examples'] == 20
  assert live['folds'][0]['spearman'] == pytest.approx(stored['folds'][0]['spearman'], abs=1e-4)
  assert live['folds'][0]['loss'] == pytest.approx(stored['folds'][0]['loss'], abs=1e-4)


def test_extract_needs_no_scores(test_config, tmp_path):
  """A folder of images with no scores.csv: every image file under it is extracted, ids relative
  to the folder, as the CSV would name them."""
  root = tmp_path / 'images'
  _write_folder(root, n=6)
  os.remove(root / 'scores.csv')
  (root / 'notes.txt').write_text('not an image')
  config = _config(test_config, tmp_path)
  extract.extract(config, str(tmp_path))
  ids, features, _ = store.read_store(config.data.features_dir)
  want = ['000.jpg', '002_gray.png', '003_cmyk.jpg', '004.gif', '005.bmp', 'sub/001.png']
  assert sorted(ids.tolist()) == want
  for i, name in enumerate(ids.tolist()):
    crop = images.load_image(str(root / name), 256, 224)
    np.testing.assert_allclose(
      features['color_grid'][i], registry.color_grid().forward({}, crop[None])[0], rtol=1e-4
    )
