"""Any folder of images with a CSV of scores (the paper's Table 2/3 data sets, user data).

`config.data.dir` is the image folder; `config.data.csv` (default `dir/scores.csv`) has a header
row with `config.data.image_column` (paths relative to the folder, which become the image ids)
and `config.data.score_column` (scores in [0, 1]). Features come from the store at
`config.data.features_dir` (made by `--mode=extract`); the protocol is `cv5`.
"""

import os

import ml_collections
import numpy as np
from absl import logging

from memjax.datasets import score_files
from memjax.datasets.base import MemorabilityData
from memjax.errors import InputError
from memjax.features import registry, store


def read_scores(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray, str]:
  """(ids, scores, csv path) of the CSV, in file order.

  Raises:
    InputError: missing folder or CSV, missing columns, bad paths or scores, duplicates.
  """
  root = config.data.dir
  if not root or not os.path.isdir(root):
    raise InputError(f'config.data.dir={root!r}: expected the folder of images.')
  path = config.data.csv or os.path.join(root, 'scores.csv')
  layout = score_files.CsvLayout(
    config.data.image_column, config.data.score_column, fields='config.data.'
  )
  rows = [row for split in score_files.read_score_csv(path, layout).values() for row in split]
  ids = np.array([r[0] for r in rows])
  return ids, np.array([r[1] for r in rows], np.float64), path


def image_paths(config: ml_collections.ConfigDict) -> tuple[np.ndarray, list[str]]:
  """(ids, file paths) of every image the CSV lists; with no CSV (no `config.data.csv` and no
  `dir/scores.csv`), of every image file under the folder (extraction needs no scores), ids
  relative to it.

  Raises:
    InputError: as `read_scores`, or a folder without a CSV that holds no image files.
  """
  root = config.data.dir
  if not config.data.csv and root and not os.path.exists(os.path.join(root, 'scores.csv')):
    if not os.path.isdir(root):
      raise InputError(f'config.data.dir={root!r}: expected the folder of images.')
    from PIL import Image

    from memjax.datasets import image_walk

    paths = image_walk.list_files(root, Image.registered_extensions())
    if not paths:
      raise InputError(f'config.data.dir={root!r} holds no image files (and no scores.csv).')
    logging.info('%s has no scores.csv: every image under it (%d files)', root, len(paths))
    return np.array([os.path.relpath(p, root) for p in paths]), paths
  ids, _, _ = read_scores(config)
  return ids, [os.path.join(config.data.dir, i) for i in ids]


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Scores from the CSV, features from the store, aligned by id (rows are not copied).

  Raises:
    InputError: as `read_scores`, or ids absent from the store.
  """
  ids, scores, path = read_scores(config)
  extractors, sources = None, None
  if config.data.on_the_fly:
    paths = [os.path.join(config.data.dir, i) for i in ids]
    features, extractors = registry.on_the_fly(config, paths)
    description = f'image folder {config.data.dir} with {path} ({ids.size} images, on the fly)'
  else:
    ids, features, scores, sources = _from_store(config, ids, scores, path)
    description = f'image folder {config.data.dir} with {path} ({len(scores)} rows in the store)'
  return MemorabilityData(
    name='image_folder',
    ids=ids,
    features=features,
    scores=scores,
    description=description,
    extractors=extractors,
    sources=sources,
  )


def _from_store(config, ids: np.ndarray, scores: np.ndarray, path: str):
  """(store ids, features, scores aligned to store rows, NaN where the CSV has none, the store's
  feature entries)."""
  if not config.data.features_dir:
    raise InputError('config.data.features_dir is not set: run --mode=extract first.')
  store_ids, features, meta = store.read_store(
    config.data.features_dir, names=list(config.features)
  )
  row_of = {i: r for r, i in enumerate(store_ids.tolist())}
  missing = [i for i in ids.tolist() if i not in row_of]
  if missing:
    raise InputError(
      f'{len(missing)} images of {path} are not in the feature store {config.data.features_dir} '
      f'(first: {missing[:3]}); run --mode=extract (skipped unreadable images stay missing: '
      'remove them from the CSV).'
    )
  full = np.full(store_ids.size, np.nan)
  full[[row_of[i] for i in ids.tolist()]] = scores
  return store_ids, features, full, meta['features']
