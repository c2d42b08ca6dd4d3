"""The most and least memorable images of a run by prediction: the paper's Fig. 3 as one figure,
or as thumbnail strips on the report page.

Only data with image files has them (LaMem and scored image folders); the images are read as
extraction reads them (upright, first frame, 8-bit RGB) and shown as centred square thumbnails.
"""

import os

import jax
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from memjax import datasets
from memjax.errors import InputError
from memjax.experiments import figures, fold_predictions, report_page
from memjax.features import image_decode
from memjax.runtime import atomic_files

_THUMB = 128  # thumbnail side, pixels


def _extremes(config: ml_collections.ConfigDict, preds: list[dict], count: int):
  """The `count` most and least memorable images by prediction: two lists (highest first,
  lowest first) of dicts of `id`, `path`, `true`, `pred`, `image` (a 128x128 thumbnail); None
  (and a log line) when the data has no image files."""
  if config.data.name not in ('lamem', 'image_folder') or not config.data.dir:
    logging.info('report: no image extremes: %s data has no images', config.data.name)
    return None
  try:
    ids, paths = datasets.image_paths(config)
  except InputError as e:
    logging.info('report: no image extremes: %s', e)
    return None
  path_of = dict(zip(np.asarray(ids).astype(str).tolist(), paths, strict=True))
  seen, entries = set(), []
  for p in preds:  # a row tested by several folds (official splits) counts once
    for i, t, s in zip(p['ids'].tolist(), p['true'], p['pred'], strict=True):
      if i not in seen and i in path_of and os.path.exists(path_of[i]):
        seen.add(i)
        entries.append({'id': i, 'path': path_of[i], 'true': float(t), 'pred': float(s)})
  if len(entries) < 2:
    logging.info('report: no image extremes: no image files found for the predictions')
    return None
  entries.sort(key=lambda e: e['pred'], reverse=True)
  k = min(count, len(entries) // 2)
  for e in entries[:k] + entries[-k:]:
    e['image'] = _thumbnail(e['path'], _THUMB)
  return entries[:k], entries[-k:][::-1]


def grid(path: str, row: dict, preds: list[dict], count: int) -> str | None:
  """The paper's Fig. 3 for a report row (`workdir`, `label`) whose data has images, saved at
  `path`; None (and a log line) otherwise."""
  found = _extremes(fold_predictions.config_of(row['workdir']), preds, count)
  if found is None:
    return None
  top, bottom = found
  figures.image_grid(path, top, bottom[::-1], f'{row["label"]}: predicted extremes')
  return path


def strips(page: report_page.Page, workdir: str, row: dict, preds: list[dict], count: int):
  """Adds the most and least memorable images of a report row (`workdir`, `key`, `label`) to
  `page`, as thumbnails written to `workdir/images/`."""
  config = fold_predictions.config_of(row['workdir'])
  found = _extremes(config, preds, count) if count else None
  if found is None:
    return
  for side, entries in zip(('most', 'least'), found, strict=True):
    thumbs = []
    for j, e in enumerate(entries):
      file = f'images/{row["key"]}_{side}_{j}.png'
      if jax.process_index() == 0:
        os.makedirs(os.path.join(workdir, 'images'), exist_ok=True)
        with atomic_files.replacing(os.path.join(workdir, file), 'wb') as f:
          Image.fromarray(e['image']).save(f, format='PNG')
      name = os.path.relpath(e['path'], config.data.dir)
      caption = [name, f'predicted {e["pred"]:.3f}', f'true {e["true"]:.3f}']
      thumbs.append(report_page.Thumb(file, caption))
    page.strip(f'{row["label"]}: the {side} memorable by prediction', thumbs)


def _thumbnail(path: str, size: int) -> np.ndarray:
  """The centred square of the image at `path`, resized to `size` x `size` (uint8 RGB)."""
  img = image_decode.decode_image(path)  # upright, first frame, 8-bit RGB, as extraction sees it
  side = min(img.size)
  left, top = (img.width - side) // 2, (img.height - side) // 2
  return np.asarray(img.crop((left, top, left + side, top + side)).resize((size, size)))
