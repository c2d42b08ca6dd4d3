"""The in-memory form every dataset reader returns."""

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from memjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class LabelledSplit:
  """A given train/val/test split with its own label version (LaMem's official protocol).

  Attributes:
    name: e.g. `split_1`.
    train, val, test: row indices into the dataset.
    scores: [N] this split's labels, NaN for rows it does not list.
  """

  name: str
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray
  scores: np.ndarray


@dataclasses.dataclass(frozen=True)
class MemorabilityData:
  """Aligned ids, frozen features and memorability scores of one dataset.

  Attributes:
    name: dataset name as written to results (`synthetic`, `lamem`, ...).
    ids: [N] image ids (str), unique.
    features: feature name -> [N, D] float array (possibly memory-mapped), rows aligned with
      `ids`.
    scores: [N] float64 memorability scores in [0, 1] used by cross-validation; NaN for rows
      without a label (they are left out of the folds).
    description: one line for logs and results.
    synthetic: True when the data is a generated stand-in, not real images.
    ceiling: the data's consistency ceiling (Spearman), if known.
    splits: given splits with their own labels, for the `official` protocol (may be empty).
    label_version: which label version `scores` holds, when the data has several.
    extractors: when set, features are computed on the fly: `features` holds only `image`
      (an `ImageRows`) and these frozen extractors run inside the jitted steps.
    sources: feature name -> its entry in the feature store's `metadata.json` (which extractor,
      weights and preprocessing made it), when the features come from a store.
  """

  name: str
  ids: np.ndarray
  features: Mapping[str, np.ndarray]
  scores: np.ndarray
  description: str
  synthetic: bool = False
  ceiling: float | None = None
  splits: tuple[LabelledSplit, ...] = ()
  label_version: int | None = None
  extractors: Mapping | None = None
  sources: Mapping | None = None

  def __len__(self) -> int:
    return int(self.ids.size)

  def feature_dims(self, names: Sequence[str]) -> dict[str, int]:
    """Dimension of each requested feature.

    Raises:
      InputError: a requested feature is not in this dataset.
    """
    if self.extractors is not None:
      return {n: self.extractors[n].feature_dim for n in names}
    missing = [n for n in names if n not in self.features]
    if missing:
      raise InputError(
        f'config.features asks for {missing}, but dataset {self.name!r} has only '
        f'{sorted(self.features)}.'
      )
    return {n: int(self.features[n].shape[1]) for n in names}
