"""What each fold needs from a dataset: its split, its labels, thresholds and row arrays.

Two protocols (`config.data.protocol`):
* `cv5`: k-fold cross-validation over the rows that `data.scores` labels, folds assigned by
  `memjax.folds` (a validation slice of each training fold picks checkpoints);
* `official`: the dataset's given splits, each with its own label version (LaMem).
"""

import dataclasses

import jax
import ml_collections
import numpy as np

from memjax import folds, labels
from memjax.datasets import MemorabilityData
from memjax.errors import InputError

PROTOCOLS = ('cv5', 'official')


@dataclasses.dataclass(frozen=True)
class FoldPlan:
  """Which rows a fold trains, validates and tests on, and the labels it uses.

  Attributes:
    name: `fold_0`, ... for cross-validation; the split's name (`split_1`, ...) otherwise.
    split: train/val/test row indices.
    scores: [N] labels of this fold (NaN for rows it does not use).
  """

  name: str
  split: folds.Split
  scores: np.ndarray


@dataclasses.dataclass(frozen=True)
class FoldData:
  """One fold of one dataset, ready for the pipelines.

  Attributes:
    fold: fold number.
    name: the plan's name.
    split: train/val/test row indices.
    thresholds: [K-1] class thresholds from this fold's training scores.
    values: [K] the s_k of the score aggregation.
    arrays: per-row arrays the pipelines read: the configured features (or `image` when
      features are computed on the fly), `label`, `score`.
    frozen: on the fly, the frozen extractors' parameters by feature name; else None.
  """

  fold: int
  name: str
  split: folds.Split
  thresholds: np.ndarray
  values: np.ndarray
  arrays: dict
  frozen: dict | None = None

  def consts(self, key: jax.Array) -> dict:
    """The constants the jitted steps take (see `steps`)."""
    consts = {
      'key': key,
      'thresholds': np.asarray(self.thresholds, np.float32),
      'values': np.asarray(self.values, np.float32),
    }
    if self.frozen is not None:
      consts['frozen'] = self.frozen
    return consts


def plan_folds(config: ml_collections.ConfigDict, data: MemorabilityData) -> list[FoldPlan]:
  """The folds of `config.data.protocol` on `data`.

  Raises:
    InputError: unknown protocol, or `official` on data without given splits.
  """
  protocol = config.data.protocol
  if protocol == 'official':
    if not data.splits:
      raise InputError(f'dataset {data.name!r} has no official splits; use protocol cv5.')
    return [
      FoldPlan(s.name, folds.Split(train=s.train, val=s.val, test=s.test), s.scores)
      for s in data.splits
    ]
  if protocol != 'cv5':
    raise InputError(f'config.data.protocol must be one of {PROTOCOLS}, got {protocol!r}.')
  labelled = np.flatnonzero(np.isfinite(data.scores))
  ids = data.ids[labelled]
  fold_of = folds.assign_folds(ids, config.data.num_folds, config.seed)
  plans = []
  for fold in range(config.data.num_folds):
    s = folds.split_fold(ids, fold_of, fold, config.data.val_fraction, config.seed)
    split = folds.Split(train=labelled[s.train], val=labelled[s.val], test=labelled[s.test])
    plans.append(FoldPlan(f'fold_{fold}', split, data.scores))
  return plans


def prepare(
  config: ml_collections.ConfigDict,
  data: MemorabilityData,
  plan: FoldPlan,
  fold: int,
  thresholds=None,
  values=None,
) -> FoldData:
  """Builds a fold; thresholds and values are computed from the training scores unless given
  (evaluation passes the ones stored in the checkpoint)."""
  train_scores = plan.scores[plan.split.train]
  if thresholds is None:
    thresholds = labels.quantile_thresholds(train_scores, config.num_classes)
    values = labels.class_score_values(train_scores, thresholds, config.score_values)
  labelled = np.isfinite(plan.scores)
  if data.extractors is not None:
    arrays = {'image': data.features['image']}
    frozen = {n: data.extractors[n].params for n in config.features}
  else:
    arrays = {n: data.features[n] for n in config.features}
    frozen = None
  arrays['label'] = np.where(labelled, labels.assign_classes(plan.scores, thresholds), -1)
  arrays['score'] = plan.scores.astype(np.float32)
  return FoldData(
    fold=fold,
    name=plan.name,
    split=plan.split,
    thresholds=np.asarray(thresholds),
    values=np.asarray(values),
    arrays=arrays,
    frozen=frozen,
  )


def fold_key(seed: int, fold: int) -> jax.Array:
  """Root key of a fold: parameter init uses it, dropout uses a key folded from it."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), fold)
