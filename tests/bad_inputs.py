"""Bad inputs in the real on-disk formats, and full-disk faults, for test_bad_input.py.

Each writer builds its input under `tmp_path` and returns the `Run` that feeds it to a mode:
`--config.KEY=VALUE` overrides of configs/test.py and a workdir holding a previous run's
`summary.json` (which the failing run must leave alone).
"""

import dataclasses
import errno
import json
import os
import types
from collections.abc import Callable

import numpy as np
from PIL import Image
from test_extract_predict import _write_folder
from test_lamem import _write_lamem

from memjax import results
from memjax.runtime import atomic_files

NO_SPACE = os.strerror(errno.ENOSPC)
PREVIOUS_SUMMARY = '{"previous": "run"}\n'


@dataclasses.dataclass
class Run:
  """A mode of main.py with `--config.KEY=VALUE` overrides of configs/test.py."""

  mode: str
  overrides: dict
  workdir: str


def make_config(overrides: dict):
  """configs/test.py with `overrides` ({'data.dir': ..., ...}) applied."""
  from configs import test as test_cfg

  config = test_cfg.get_config()
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


def workdir(tmp_path) -> str:
  """A workdir holding a previous run's summary.json."""
  (tmp_path / 'run').mkdir(exist_ok=True)
  (tmp_path / 'run' / 'summary.json').write_text(PREVIOUS_SUMMARY)
  return str(tmp_path / 'run')


def lamem(tmp_path, **overrides) -> Run:
  """A fake LaMem (60 images, 15 split files, a feature store) to train on."""
  root = tmp_path / 'lamem'
  _write_lamem(str(root))
  data = {'data.name': 'lamem', 'data.dir': str(root), 'data.features_dir': str(root / 'features')}
  return Run('train', {**data, **overrides}, workdir(tmp_path))


def edit_split(tmp_path, name: str, edit: Callable) -> None:
  """Rewrites split file `name`: `edit` maps its lines (with line ends) to new ones."""
  path = tmp_path / 'lamem' / 'splits' / name
  path.write_text(''.join(edit(path.read_text().splitlines(keepends=True))))


def split(tmp_path, name: str, edit: Callable, **overrides) -> Run:
  run = lamem(tmp_path, **overrides)
  edit_split(tmp_path, name, edit)
  return run


def replace_score(number: int, score: str) -> Callable:
  """An edit for `split`: line `number` (from 1) gets the score `score`."""

  def edit(lines):
    lines[number - 1] = f'{lines[number - 1].split()[0]} {score}\n'
    return lines

  return edit


def three_scores(tmp_path, **overrides) -> Run:
  """Every split file relabelled with the scores 0.3, 0.6 and 0.9 only."""
  run = lamem(tmp_path, **overrides)
  relabel = lambda ls: [f'{x.split()[0]} {0.3 + 0.3 * (i % 3):.6f}\n' for i, x in enumerate(ls)]
  for name in os.listdir(tmp_path / 'lamem' / 'splits'):
    edit_split(tmp_path, name, relabel)
  return run


def undecodable_split(tmp_path) -> Run:
  run = lamem(tmp_path)
  (tmp_path / 'lamem' / 'splits' / 'val_2.txt').write_bytes(b'\xff\xfe\x00 0.5\n')
  return run


def short_cnn_rows(tmp_path) -> Run:
  """The store's cnn.npy holds 59 rows for its 60 ids."""
  run = lamem(tmp_path)
  np.save(tmp_path / 'lamem' / 'features' / 'cnn.npy', np.zeros((59, 64), np.float16))
  return run


def _truncated_jpeg(path) -> None:
  Image.effect_noise((128, 96), 50).convert('RGB').save(path, quality=95)
  path.write_bytes(path.read_bytes()[:1000])  # a partly downloaded photo


BAD_IMAGES = {  # name -> (writer, regex of its error)
  'broken.jpg': (_truncated_jpeg, r'truncated or corrupt JPEG data \(image file is truncated'),
  'empty.jpg': (lambda p: p.write_bytes(b''), r'empty file \(0 bytes\)'),
  'notes.jpg': (lambda p: p.write_text('not an image'), 'unsupported or corrupt image format'),
  'readme.txt': (lambda p: p.write_text('plain text'), 'unsupported or corrupt image format'),
}


def folder(tmp_path, bad=(), n=8, mode='extract', **overrides) -> Run:
  """An image folder with scores.csv (`n` good images, then the `bad` ones) and a store path."""
  root = tmp_path / 'images'
  _write_folder(root, n=n)
  with open(root / 'scores.csv', 'a') as f:
    for name in bad:
      BAD_IMAGES[name][0](root / name)
      f.write(f'{name},0.5\n')
  run = {'data.name': 'image_folder', 'data.dir': str(root), 'features': ('color_grid',)}
  run.update({'data.features_dir': str(tmp_path / 'store'), 'extract.on_error': 'skip'})
  run.update({'extract.batch_size': 8, 'extract.dtype': 'float32'})
  return Run(mode, {**run, **overrides}, workdir(tmp_path))


def scores_csv(tmp_path, text: str) -> Run:
  """An image folder whose scores.csv is `text`."""
  run = folder(tmp_path, mode='train')
  (tmp_path / 'images' / 'scores.csv').write_text(text)
  return run


def predict_inputs(tmp_path, on_error: str, trained_workdir: str) -> Run:
  """4 good photos and 3 bad ones to score; the output CSV holds earlier predictions."""
  inputs = tmp_path / 'new_photos'
  _write_folder(inputs, n=4)
  for name in ('broken.jpg', 'empty.jpg', 'notes.jpg'):
    BAD_IMAGES[name][0](inputs / name)
  (tmp_path / 'out').mkdir()
  output = tmp_path / 'out' / 'predictions.csv'
  output.write_text('path,score\nprevious.jpg,0.5\n')
  overrides = {'features': ('color_grid',), 'predict.input': str(inputs)}
  overrides.update({'predict.on_error': on_error, 'predict.output': str(output)})
  return Run('predict', overrides, trained_workdir)


def full_disk_at_checkpoint(monkeypatch, epoch: int) -> None:
  """The checkpoint of `epoch` runs out of space while Orbax writes its meta item."""
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch

  real = jch.JsonCheckpointHandler._save_fn

  async def save(self, item, directory):
    if isinstance(item, dict) and item.get('epoch') == epoch:
      path = directory / self._filename
      path.write_text('{"fold": ')  # part of the file, then the disk is full
      raise OSError(errno.ENOSPC, NO_SPACE, str(path))
    await real(self, item, directory)

  monkeypatch.setattr(jch.JsonCheckpointHandler, '_save_fn', save)


def full_disk_at_store_write(monkeypatch, write: int) -> None:
  """The `write`-th small file written atomically (ids.txt, then progress.json at creation and
  after each batch) runs out of space."""
  real, calls = atomic_files.write_text, []

  def write_text(path, text):
    calls.append(path)
    if len(calls) == write:
      raise OSError(errno.ENOSPC, NO_SPACE, path)
    real(path, text)

  monkeypatch.setattr(atomic_files, 'write_text', write_text)


def full_disk_at_summary(monkeypatch) -> None:
  """Writing a summary (a result with `spearman_mean`) runs out of space part-way."""

  def dump(obj, f, **kwargs):
    if isinstance(obj, dict) and 'spearman_mean' in obj:
      f.write('{"dataset": "image_')  # part of the temp file, then the disk is full
      raise OSError(errno.ENOSPC, NO_SPACE)
    json.dump(obj, f, **kwargs)

  monkeypatch.setattr(results, 'json', types.SimpleNamespace(dump=dump, load=json.load))
