"""A fold's constants, as the jitted steps and the predictor take them: class thresholds, s_k and
feature standardisation.

They are arguments of the compiled programs, not closures, so one compilation serves every fold.
"""

import jax
import numpy as np
from flax import struct


@struct.dataclass
class FoldConsts:
  """A fold's constants.

  Attributes:
    thresholds: [K-1] class thresholds of the fold's training scores.
    values: [K] the s_k of the score aggregation m = sum_k p(k) s_k.
    shift: per feature [D], subtracted from the feature (0 without standardisation).
    scale: per feature [D], multiplied after the shift (1 without standardisation).
  """

  thresholds: jax.Array
  values: jax.Array
  shift: dict
  scale: dict

  def standardize(self, raw: dict) -> dict:
    """Features by name, standardised: (x - shift) * scale."""
    return {n: (x - self.shift[n]) * self.scale[n] for n, x in raw.items()}


def host_consts(thresholds, values, shift: dict, scale: dict) -> FoldConsts:
  """A `FoldConsts` of float32 NumPy arrays (replicate it onto the mesh before use)."""
  f32 = lambda x: np.asarray(x, np.float32)
  return FoldConsts(
    thresholds=f32(thresholds),
    values=f32(values),
    shift={n: f32(v) for n, v in shift.items()},
    scale={n: f32(v) for n, v in scale.items()},
  )
