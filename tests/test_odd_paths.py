"""Any path the OS accepts: a workdir, an image folder, a feature store and image files whose
names hold glob characters (`[ ] * ? { }`), spaces, quotes, `#%:` and non-ASCII work in extract,
train, evaluate and predict, with every checkpoint readable (none set aside)."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from memjax import checkpoint_files, evaluate, extract, predict, train

ODD = 'exp[lr=3e-3] *?{a,b} \'q\' "dq" ünï€ #%:'
NAMES = ['a[1].png', 'b*?.png', "c {x} 'q'.png", 'dé ü.png', 'plain.png']


def _folder(root, n: int) -> list[tuple[str, float]]:
  """`n` small images named after NAMES, brightness = score; and scores.csv."""
  os.makedirs(root)
  rng = np.random.default_rng(0)
  rows = []
  for i in range(n):
    name = f'{i:02d} {NAMES[i % len(NAMES)]}'
    level = rng.uniform(30, 220)
    pixels = np.clip(level + rng.normal(0, 20, size=(20, 24, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(os.path.join(root, name))
    rows.append((name, level / 255))
  with open(os.path.join(root, 'scores.csv'), 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['image', 'score'])
    writer.writerows([(name, f'{s:.4f}') for name, s in rows])
  return rows


def test_glob_characters_spaces_quotes_and_unicode_work_in_every_mode(test_config, tmp_path):
  root = tmp_path / ODD
  rows = _folder(str(root / 'images [1]'), 40)
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(root / 'images [1]')
  config.data.features_dir = str(root / 'store *?')
  config.features = ('color_grid',)
  config.model.branch_units.color_grid = (16,)
  config.extract.batch_size, config.extract.dtype = 8, 'float32'
  config.num_epochs, config.batch_size = 2, 8
  workdir = str(root / ODD)
  extract.extract(config, str(root))
  trained = train.train_and_evaluate(config, workdir)
  assert len(trained['folds']) == 2
  for fold in (0, 1):
    fold_dir = os.path.join(workdir, f'fold_{fold}')
    assert not os.path.exists(os.path.join(fold_dir, checkpoint_files.DAMAGED_DIR))
    assert sorted(os.listdir(os.path.join(fold_dir, 'checkpoints')))  # written and kept
  again = evaluate.evaluate(config, workdir)
  for a, b in zip(trained['folds'], again['folds'], strict=True):
    assert a['spearman'] == pytest.approx(b['spearman'], abs=1e-6)

  listing = root / 'to score [x].csv'
  with open(listing, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow([config.predict.path_column])
    writer.writerows([(os.path.join('images [1]', name),) for name, _ in rows])
  config.predict.input = str(listing)
  config.predict.output = str(root / 'out [1].csv')
  out = predict.predict(config, workdir)
  assert out['num_images'] == len(rows) and out['num_unreadable'] == 0
  with open(out['output'], newline='', encoding='utf-8') as f:
    written = list(csv.DictReader(f))
  assert [os.path.basename(r['path']) for r in written] == [name for name, _ in rows]
  assert all(r['score'] and not r['error'] for r in written)
