"""The synthetic default through the feature store, like real data.

With `config.data.features_dir` set, the synthetic features are written once to a store there
(float32) and every later run memory-maps them; the scores, the ceiling and the knobs that made
them ride in the store's `metadata.json` (`synthetic` entry). A store made with other knobs or
another seed is refused rather than silently reused or overwritten.
"""

import os

import ml_collections
import numpy as np

from memjax.datasets import synthetic
from memjax.datasets.base import MemorabilityData
from memjax.errors import InputError
from memjax.features import store

_DESCRIPTORS = {
  'cnn': 'synthetic stand-in for VGG16 fc7 (ReLU of a noisy latent projection)',
  'semantic': 'synthetic stand-in for the captioning embedding (unit norm)',
}


def _recipe(cfg: ml_collections.ConfigDict, seed: int) -> dict:
  return {'seed': seed, **cfg.to_dict()}


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Generates into / reads from the store at `config.data.features_dir`.

  Raises:
    InputError: the store there was made from a different recipe (names the differing fields).
  """
  directory, cfg = config.data.features_dir, config.data.synthetic
  recipe = _recipe(cfg, config.seed)
  if not store.is_complete(directory):
    data = synthetic.generate(cfg, config.seed)
    features_meta = {
      name: {'extractor': text, 'weights_sha256': None, 'input_size': None, 'preprocessing': 'none'}
      for name, text in _DESCRIPTORS.items()
    }
    meta = {
      'source': 'memjax synthetic default (memjax/datasets/synthetic.py)',
      'features': features_meta,
      'synthetic': {**recipe, 'ceiling': data.ceiling, 'scores': data.scores.tolist()},
    }
    store.write_store(directory, data.ids.tolist(), data.features, meta, 'float32')
  ids, features, meta = store.read_store(directory, names=list(config.features))
  made = meta.get('synthetic') or {}
  diffs = [
    f'{k}: store {made.get(k)!r} vs config {v!r}' for k, v in recipe.items() if made.get(k) != v
  ]
  if diffs:
    raise InputError(
      f'feature store {directory} holds other data than config.data.synthetic and config.seed '
      f'describe ({"; ".join(diffs)}); point config.data.features_dir elsewhere.'
    )
  description = (
    f'SYNTHETIC stand-in for LaMem ({ids.size} generated rows, seed {config.seed}; no real '
    f'images), memory-mapped from {os.path.abspath(directory)}: ceiling {made["ceiling"]:.3f}'
  )
  return MemorabilityData(
    name='synthetic',
    ids=ids,
    features=features,
    scores=np.asarray(made['scores'], np.float64),
    synthetic=True,
    ceiling=made['ceiling'],
    description=description,
    sources=meta['features'],
  )
