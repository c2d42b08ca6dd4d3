"""What the data behind a run is: the extractor behind each feature, and a fingerprint of the rows.

An extractor's identity is what its feature store entry records (`Extractor.store_descriptor`):
its name (kind, variant, output, pooled depths, flip), weights sha256, input size, preprocessing
(including the resize geometry) and the feature width. `memjax/run_record.py` records both in a
workdir's `run.json`; `train`, `predict` and `transfer` compare them with what they are given, and
a run on a feature store checks that the config's extractors are the store's
(`check_store_extractors`).
"""

import hashlib

import jax
import ml_collections
import numpy as np
from absl import logging

from memjax.datasets import MemorabilityData
from memjax.errors import InputError
from memjax.features import registry

# The parts of a feature store's entry that identify its extractor.
IDENTITY_KEYS = ('extractor', 'weights_sha256', 'input_size', 'preprocessing', 'dim')
_SAMPLE_ROWS = 8  # rows at each end of every feature that enter the data fingerprint


def extractor_identity(extractor) -> dict:
  """What identifies an extractor's features: `IDENTITY_KEYS` of its store entry."""
  return _identity({**extractor.store_descriptor(), 'dim': extractor.feature_dim})


def _identity(entry: dict) -> dict:
  out = {k: entry.get(k) for k in IDENTITY_KEYS}
  if isinstance(out['input_size'], int):
    out['input_size'] = [out['input_size'], out['input_size']]
  if isinstance(out['input_size'], tuple):
    out['input_size'] = list(out['input_size'])
  return out


def feature_identities(data: MemorabilityData, features) -> dict | None:
  """Feature name -> the identity of its extractor (None where the data cannot say, e.g. the
  synthetic generator); None when no feature has one."""
  if data.extractors is not None:
    found = {n: extractor_identity(data.extractors[n]) for n in features}
  else:
    sources = data.sources or {}
    found = {n: _identity(sources[n]) if n in sources else None for n in features}
  return found if any(v is not None for v in found.values()) else None


def check_identities(recorded: dict | None, now: dict | None, recorded_what: str, now_what: str):
  """Raises when the extractor behind a feature differs between two sets of identities.

  Args:
    recorded: feature name -> identity, of what the parameters or a store were made with (None:
      nothing recorded, nothing to check).
    now: feature name -> identity, of what is at hand (`feature_identities`, or built
      extractors).
    recorded_what, now_what: what each describes, for the message (a format string with
      `{name}`, the feature).

  Raises:
    InputError: naming the feature, both sides and each differing key with both values.
  """
  if not recorded or not now:
    return
  for name in sorted(set(recorded) & set(now)):
    old, new = recorded[name], now[name]
    if old is None or new is None:
      continue
    diffs = [f'{k} {old.get(k)!r} vs {new.get(k)!r}' for k in IDENTITY_KEYS if old[k] != new[k]]
    if diffs:
      raise InputError(
        f'feature {name!r}: {now_what.format(name=name)} is not the extractor of '
        f'{recorded_what.format(name=name)}: {"; ".join(diffs)} (there vs here). Use the same '
        'extractor, weights and preprocessing, or train a new model.'
      )


def check_store_extractors(config: ml_collections.ConfigDict, data: MemorabilityData) -> None:
  """With features from a store: the config's extractor of each feature, where it can be built
  (its weight file given, or shipped by a package), must be the one the store was made with;
  `predict` will compute the features with it.

  Raises:
    InputError: naming the feature and what differs.
  """
  if data.extractors is not None or not data.sources:
    return
  stored = {n: feature_identities(data, [n]) for n in config.features}
  for name in config.features:
    if name not in config.extractors or not stored[name]:
      continue
    try:
      extractor = registry.build(config, name)
    except InputError as e:
      logging.info('feature %s: its config extractor is not checked against the store: %s', name, e)
      continue
    check_identities(
      stored[name],
      {name: extractor_identity(extractor)},
      f'the feature store {config.data.features_dir}',
      'config.extractors.{name}',
    )


def data_fingerprint(data: MemorabilityData, features) -> str:
  """sha256 over the ids, scores, given splits, and a sample of every used feature's values (of
  the extractors' weights when features are computed on the fly)."""
  h = hashlib.sha256()
  h.update('\n'.join(map(str, data.ids)).encode())
  h.update(np.nan_to_num(np.asarray(data.scores, np.float64), nan=-1.0).tobytes())
  for split in data.splits:
    for rows in (split.train, split.val, split.test):
      h.update(np.asarray(rows, np.int64).tobytes())
    h.update(np.nan_to_num(np.asarray(split.scores, np.float64), nan=-1.0).tobytes())
  if data.extractors is not None:  # on the fly: the extractors' preprocessing and weights
    for name in features:
      extractor = data.extractors[name]
      h.update(f'{extractor.feature_dim} {extractor.preprocessing}'.encode())
      for leaf in jax.tree.leaves(extractor.params):
        h.update(np.asarray(leaf).reshape(-1)[:_SAMPLE_ROWS].astype(np.float32).tobytes())
  else:
    for name in features:
      table = data.features[name]
      n = table.shape[0]
      rows = sorted(set(range(min(_SAMPLE_ROWS, n))) | set(range(max(n - _SAMPLE_ROWS, 0), n)))
      h.update(np.asarray(table[rows], np.float32).tobytes())
  return h.hexdigest()
