"""Dataset readers. `load(config)` returns a MemorabilityData for `config.data.name`."""

import ml_collections

from memjax.datasets import synthetic
from memjax.datasets.base import MemorabilityData
from memjax.errors import InputError

NAMES = ('synthetic',)
PROTOCOLS = {'synthetic': ('cv5',)}


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Loads the dataset the config names.

  Raises:
    InputError: unknown dataset name or a protocol the dataset does not support.
  """
  name, protocol = config.data.name, config.data.protocol
  if name not in NAMES:
    raise InputError(f'config.data.name must be one of {NAMES}, got {name!r}.')
  if protocol not in PROTOCOLS[name]:
    raise InputError(
      f'config.data.protocol for {name!r} must be one of {PROTOCOLS[name]}, got {protocol!r}.'
    )
  return synthetic.generate(config.data.synthetic, config.seed)


__all__ = ['MemorabilityData', 'load']
