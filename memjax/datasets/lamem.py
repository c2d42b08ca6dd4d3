"""LaMem (Khosla et al., ICCV 2015): the official split files and the two protocols.

Archive layout (`config.data.dir`): `images/NNNNNNNN.jpg` and `splits/{train,val,test}_{k}.txt`
for k = 1..5, one `NNNNNNNN.jpg 0.675000` per line (45,000 / 3,741 / 10,000 lines per split).
The five splits are independent random splits, and each carries its own label version: the same
image has different scores in different splits. So:

* `official`: split k trains on `train_k`, picks checkpoints on `val_k` and tests on `test_k`,
  each scored with split k's own labels (the protocol of MemNet 0.64, AMNet 0.677 and the human
  consistency 0.68).
* `cv5`: the paper's k-fold cross-validation over all images with one label version,
  `config.data.label_version` (the union of `train_v`, `val_v`, `test_v`, which covers every
  image once); folds are assigned by `memjax.folds`.

Features come from a feature store (`config.data.features_dir`, see `memjax.features.store`),
keyed by image id; rows are never copied, so a memory-mapped store stays on disk.
"""

import os

import ml_collections
import numpy as np

from memjax.datasets import score_files
from memjax.datasets.base import LabelledSplit, MemorabilityData
from memjax.errors import InputError
from memjax.features import registry, store

KINDS = ('train', 'val', 'test')
NUM_SPLITS = 5


def parse_split_file(path: str) -> list[tuple[str, float, int]]:
  """Reads one LaMem split file.

  Args:
    path: a `splits/<kind>_<k>.txt` file.

  Returns:
    (image file name, score, line number) per line, in file order; blank lines are skipped.

  Raises:
    InputError: unreadable or empty file, a line that is not `<image> <score>`, a bad score, or
      an image listed twice (naming both lines).
  """
  try:
    with open(path, encoding='utf-8-sig') as f:  # a byte-order mark is dropped
      lines = f.read().split('\n')
  except FileNotFoundError as e:
    raise InputError(f'LaMem split file {path} is missing.') from e
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(
      f'cannot read LaMem split file {path} ({e}); expected UTF-8 text with lines like '
      "'00051110.jpg 0.675000'."
    ) from e
  entries, seen = [], {}
  for number, line in enumerate(lines, start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) == 1:
      raise InputError(
        f'{path} line {number}, column 2 (score): missing; expected a score in [0, 1] after '
        f"the image file, like '00051110.jpg 0.675000', got {line!r}."
      )
    if len(fields) != 2:
      raise InputError(
        f"{path} line {number}: expected '<image file> <score>' like "
        f"'00051110.jpg 0.675000', got {line!r}."
      )
    image_id = score_files.relative_image_path(fields[0], path, number)
    score = score_files.parse_score(fields[1], path, number)
    score_files.check_duplicate(seen, image_id, path, number)
    entries.append((image_id, score, number))
  if not entries:
    raise InputError(f"{path} is empty; expected lines like '00051110.jpg 0.675000'.")
  return entries


def read_split_file(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`parse_split_file` as arrays: (ids [n] str, scores [n] float64, line numbers [n])."""
  ids, scores, lines = zip(*parse_split_file(path), strict=True)
  return np.array(ids), np.array(scores, np.float64), np.array(lines)


def _rows(split_ids, lines, row_of: dict, path: str, features_dir: str) -> np.ndarray:
  rows = np.fromiter((row_of.get(i, -1) for i in split_ids), np.int64, split_ids.size)
  missing = np.flatnonzero(rows < 0)
  if missing.size:
    raise InputError(
      f'{path} line {lines[missing[0]]}: image {str(split_ids[missing[0]])!r} is not in the '
      f'feature store {features_dir} ({missing.size} of {split_ids.size} ids '
      'missing); extract features for every LaMem image first.'
    )
  return rows


def image_paths(config: ml_collections.ConfigDict) -> tuple[np.ndarray, list[str]]:
  """(ids, paths) of every LaMem image: those of split 1 (train + val + test), in id order.

  Raises:
    InputError: missing folder or split files, malformed lines.
  """
  root = config.data.dir
  if not root or not os.path.isdir(os.path.join(root, 'images')):
    raise InputError(f'config.data.dir={root!r}: expected the LaMem folder holding images/.')
  ids = np.concatenate(
    [read_split_file(os.path.join(root, 'splits', f'{kind}_1.txt'))[0] for kind in KINDS]
  )
  ids = np.sort(ids)
  return ids, [os.path.join(root, 'images', i) for i in ids]


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Reads LaMem's split files and the feature store under the protocol the config names.

  Raises:
    InputError: missing folder or file, malformed split line, or ids absent from the store.
  """
  root, features_dir = config.data.dir, config.data.features_dir
  if not root or not os.path.isdir(os.path.join(root, 'splits')):
    raise InputError(f'config.data.dir={root!r}: expected the LaMem folder holding splits/.')
  extractors, sources = None, None
  if config.data.on_the_fly:
    ids, paths = image_paths(config)
    features, extractors = registry.on_the_fly(config, paths)
    features_dir = os.path.join(root, 'images')
  elif not features_dir:
    raise InputError('config.data.features_dir is not set: LaMem needs a feature store.')
  else:
    ids, features, meta = store.read_store(features_dir, names=list(config.features))
    sources = meta['features']
  row_of = {image_id: row for row, image_id in enumerate(ids.tolist())}
  splits, versions = [], {}
  for k in range(1, NUM_SPLITS + 1):
    parts, scores = {}, np.full(ids.size, np.nan)
    for kind in KINDS:
      path = os.path.join(root, 'splits', f'{kind}_{k}.txt')
      split_ids, split_scores, lines = read_split_file(path)
      parts[kind] = _rows(split_ids, lines, row_of, path, features_dir)
      if np.any(np.isfinite(scores[parts[kind]])):
        raise InputError(f'{path}: images also listed in another part of split {k}.')
      scores[parts[kind]] = split_scores
    versions[k] = scores
    splits.append(LabelledSplit(name=f'split_{k}', scores=scores, **parts))
  version = config.data.label_version
  if version not in versions:
    raise InputError(f'config.data.label_version must be in 1..{NUM_SPLITS}, got {version}.')
  counts = '; '.join(f'{s.name}: {s.train.size}/{s.val.size}/{s.test.size}' for s in splits)
  description = (
    f'LaMem from {root} with features from {features_dir} ({ids.size} images); '
    f'train/val/test per split: {counts}'
  )
  return MemorabilityData(
    name='lamem',
    ids=ids,
    features=features,
    scores=versions[version],
    description=description,
    splits=tuple(splits),
    label_version=version,
    extractors=extractors,
    sources=sources,
  )
