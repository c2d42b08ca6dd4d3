"""Dataset readers. `load(config)` returns a MemorabilityData for `config.data.name`."""

import ml_collections

from memjax.datasets import synthetic
from memjax.datasets.base import LabelledSplit, MemorabilityData
from memjax.errors import InputError

PROTOCOLS = {'synthetic': ('cv5',), 'lamem': ('cv5', 'official')}


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Loads the dataset the config names.

  Raises:
    InputError: unknown dataset name or a protocol the dataset does not support.
  """
  name, protocol = config.data.name, config.data.protocol
  if name not in PROTOCOLS:
    raise InputError(f'config.data.name must be one of {tuple(PROTOCOLS)}, got {name!r}.')
  if protocol not in PROTOCOLS[name]:
    raise InputError(
      f'config.data.protocol for {name!r} must be one of {PROTOCOLS[name]}, got {protocol!r}.'
    )
  if name == 'lamem':
    from memjax.datasets import lamem  # needs the feature store only when used

    return lamem.load(config)
  if config.data.features_dir:
    from memjax.datasets import synthetic_store

    return synthetic_store.load(config)
  return synthetic.generate(config.data.synthetic, config.seed)


__all__ = ['LabelledSplit', 'MemorabilityData', 'load']
