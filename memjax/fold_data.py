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

from memjax import folds, input_pipeline, labels
from memjax.datasets import MemorabilityData
from memjax.errors import InputError
from memjax.fold_consts import FoldConsts, host_consts

PROTOCOLS = ('cv5', 'official')
_CHUNK = 4096  # rows read at once when computing standardisation statistics
_IMAGE_CHUNK = 32  # images per extractor call when the statistics need features on the fly


@dataclasses.dataclass(frozen=True)
class FoldPlan:
  """Which rows a fold trains, validates and tests on, and the labels it uses.

  Attributes:
    name: `fold_0`, ... for cross-validation (`seed{S}_fold_{k}` when it is repeated under
      several fold seeds, `config.data.fold_seeds`); the split's name (`split_1`, ...) otherwise.
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
    consts: the constants the jitted steps take (host float32 arrays; replicate before use):
      thresholds, s_k, and per feature what standardisation subtracts and multiplies by (zeros
      and ones when it is off).
  """

  fold: int
  name: str
  split: folds.Split
  thresholds: np.ndarray
  values: np.ndarray
  arrays: dict
  consts: FoldConsts


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
  seeds = list(config.data.fold_seeds) or [config.seed]
  plans = []
  for seed in seeds:
    fold_of = folds.assign_folds(ids, config.data.num_folds, seed)
    for fold in range(config.data.num_folds):
      s = folds.split_fold(ids, fold_of, fold, config.data.val_fraction, seed)
      split = folds.Split(train=labelled[s.train], val=labelled[s.val], test=labelled[s.test])
      name = f'fold_{fold}' if len(seeds) == 1 else f'seed{seed}_fold_{fold}'
      plans.append(FoldPlan(name, split, data.scores))
  return plans


def run_plans(config: ml_collections.ConfigDict, data: MemorabilityData) -> dict[int, FoldPlan]:
  """The plans of the folds a run takes (`folds.folds_to_run`), by fold number, each checked before
  any work starts: its training rows give `config.num_classes` classes and at least one batch.

  Raises:
    InputError: a fold outside the plans; a fold whose training rows cannot be split into K
      classes (`labels.quantile_thresholds`) or are fewer than `config.batch_size`.
  """
  plans = plan_folds(config, data)
  chosen = {f: plans[f] for f in folds.folds_to_run(config.data.run_folds, len(plans))}
  for fold, plan in chosen.items():
    train = plan.split.train
    labels.quantile_thresholds(plan.scores[train], config.num_classes)
    if input_pipeline.steps_per_epoch(train.size, config.batch_size) == 0:
      raise InputError(
        f'fold {fold} has {train.size} training rows, fewer than '
        f'config.batch_size={config.batch_size}.'
      )
  return chosen


def prepare(
  config: ml_collections.ConfigDict,
  data: MemorabilityData,
  plan: FoldPlan,
  fold: int,
  stored: dict | None = None,
) -> FoldData:
  """Builds a fold. Thresholds, s_k and standardisation come from the training rows unless
  `stored` gives them (evaluation passes the ones its checkpoint recorded: `thresholds`,
  `values`, and `shift` / `scale` when standardisation was on)."""
  dims = data.feature_dims(config.features)
  if stored is not None and stored.get('shift') is not None:
    shift, scale = stored['shift'], stored['scale']
  elif config.standardize:
    shift, scale = standardization(config, data, plan.split.train)
  else:
    shift = {n: np.zeros(d, np.float32) for n, d in dims.items()}
    scale = {n: np.ones(d, np.float32) for n, d in dims.items()}
  train_scores = plan.scores[plan.split.train]
  if stored is None:
    thresholds = labels.quantile_thresholds(train_scores, config.num_classes)
    values = labels.class_score_values(train_scores, thresholds, config.score_values)
  else:
    thresholds, values = stored['thresholds'], stored['values']
  labelled = np.isfinite(plan.scores)
  if data.extractors is not None:
    arrays = {'image': data.features['image']}
  else:
    arrays = {n: data.features[n] for n in config.features}
  arrays['label'] = np.where(labelled, labels.assign_classes(plan.scores, thresholds), -1)
  arrays['score'] = plan.scores.astype(np.float32)
  return FoldData(
    fold=fold,
    name=plan.name,
    split=plan.split,
    thresholds=np.asarray(thresholds),
    values=np.asarray(values),
    arrays=arrays,
    consts=host_consts(thresholds, values, shift, scale),
  )


def standardization(
  config: ml_collections.ConfigDict, data: MemorabilityData, rows: np.ndarray
) -> tuple[dict, dict]:
  """Per feature, (mean, 1 / SD) over `rows` (a fold's training rows), read in chunks.

  Features computed on the fly are computed here by the pretrained extractors (centre crops, no
  augmentation): a fine-tuned backbone starts from them, and the head sees its features in the
  scale they had at the start.

  Dimensions that are constant on the training rows get scale 1 (they stay constant).
  """
  rows = np.sort(np.asarray(rows))
  shift, scale = {}, {}
  for name, chunks in _feature_chunks(config, data, rows):
    total = squares = 0.0
    for x in chunks:
      x = np.asarray(x, np.float64)
      total = total + x.sum(0)
      squares = squares + np.square(x).sum(0)
    mean = total / max(rows.size, 1)
    sd = np.sqrt(np.maximum(squares / max(rows.size, 1) - np.square(mean), 0.0))
    shift[name] = mean
    scale[name] = np.where(sd > 1e-6, 1.0 / np.maximum(sd, 1e-6), 1.0)
  return shift, scale


def _feature_chunks(config, data: MemorabilityData, rows: np.ndarray):
  """(feature name, iterator of [n, D] chunks of its values on `rows`) per feature."""
  if data.extractors is None:
    for name in config.features:
      table = data.features[name]
      yield name, (table[rows[s : s + _CHUNK]] for s in range(0, rows.size, _CHUNK))
    return
  images = data.features['image']
  for name in config.features:
    extractor = data.extractors[name]
    forward = jax.jit(extractor.forward)
    yield (
      name,
      (
        jax.device_get(forward(extractor.params, images[rows[s : s + _IMAGE_CHUNK]]))
        for s in range(0, rows.size, _IMAGE_CHUNK)
      ),
    )


def fold_key(seed: int, fold: int) -> jax.Array:
  """Root key of a fold: parameter init uses it, dropout uses a key folded from it."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), fold)
