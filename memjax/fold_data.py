"""What one fold needs from a dataset: its split, its class thresholds and the row arrays."""

import dataclasses

import jax
import ml_collections
import numpy as np

from memjax import folds, labels
from memjax.datasets import MemorabilityData


@dataclasses.dataclass(frozen=True)
class FoldData:
  """One fold of one dataset.

  Attributes:
    fold: fold number.
    split: train/val/test row indices.
    thresholds: [K-1] class thresholds from this fold's training scores.
    values: [K] the s_k of the score aggregation.
    arrays: per-row arrays the pipelines read: the configured features, `label`, `score`.
  """

  fold: int
  split: folds.Split
  thresholds: np.ndarray
  values: np.ndarray
  arrays: dict

  def consts(self, key: jax.Array) -> dict:
    """The constants the jitted steps take (see `steps`)."""
    return {
      'key': key,
      'thresholds': np.asarray(self.thresholds, np.float32),
      'values': np.asarray(self.values, np.float32),
    }


def fold_assignment(config: ml_collections.ConfigDict, data: MemorabilityData) -> np.ndarray:
  return folds.assign_folds(data.ids, config.data.num_folds, config.seed)


def prepare(
  config: ml_collections.ConfigDict,
  data: MemorabilityData,
  fold_of: np.ndarray,
  fold: int,
  thresholds=None,
  values=None,
) -> FoldData:
  """Builds a fold; thresholds and values are computed from the training scores unless given
  (evaluation passes the ones stored in the checkpoint)."""
  split = folds.split_fold(data.ids, fold_of, fold, config.data.val_fraction, config.seed)
  train_scores = data.scores[split.train]
  if thresholds is None:
    thresholds = labels.quantile_thresholds(train_scores, config.num_classes)
    values = labels.class_score_values(train_scores, thresholds, config.score_values)
  arrays = {n: data.features[n] for n in config.features}
  arrays['label'] = labels.assign_classes(data.scores, thresholds)
  arrays['score'] = data.scores.astype(np.float32)
  return FoldData(
    fold=fold,
    split=split,
    thresholds=np.asarray(thresholds),
    values=np.asarray(values),
    arrays=arrays,
  )


def fold_key(seed: int, fold: int) -> jax.Array:
  """Root key of a fold: parameter init uses it, dropout uses a key folded from it."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), fold)
