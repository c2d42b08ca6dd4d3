"""The in-memory form every dataset reader returns."""

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from memjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class MemorabilityData:
  """Aligned ids, frozen features and memorability scores of one dataset.

  Attributes:
    name: dataset name as written to results (`synthetic`, `lamem`, ...).
    ids: [N] image ids (str), unique.
    features: feature name -> [N, D] float32 array, rows aligned with `ids`.
    scores: [N] float64 memorability scores in [0, 1].
    synthetic: True when the data is a generated stand-in, not real images.
    ceiling: the data's consistency ceiling (Spearman), if known.
    description: one line for logs and results.
  """

  name: str
  ids: np.ndarray
  features: Mapping[str, np.ndarray]
  scores: np.ndarray
  synthetic: bool
  ceiling: float | None
  description: str

  def __len__(self) -> int:
    return int(self.ids.size)

  def feature_dims(self, names: Sequence[str]) -> dict[str, int]:
    """Dimension of each requested feature.

    Raises:
      InputError: a requested feature is not in this dataset.
    """
    missing = [n for n in names if n not in self.features]
    if missing:
      raise InputError(
        f'config.features asks for {missing}, but dataset {self.name!r} has only '
        f'{sorted(self.features)}.'
      )
    return {n: int(self.features[n].shape[1]) for n in names}
