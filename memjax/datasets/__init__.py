"""Dataset readers. `load(config)` returns a MemorabilityData for `config.data.name`."""

import ml_collections
from absl import logging

from memjax.datasets import synthetic
from memjax.datasets.base import LabelledSplit, MemorabilityData
from memjax.errors import InputError

PROTOCOLS = {'synthetic': ('cv5',), 'lamem': ('cv5', 'official'), 'image_folder': ('cv5',)}


def load(config: ml_collections.ConfigDict) -> MemorabilityData:
  """Loads the dataset the config names and logs its description (a warning when synthetic).

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
  data = _read(config)
  (logging.warning if data.synthetic else logging.info)('%s', data.description)
  return data


def _read(config: ml_collections.ConfigDict) -> MemorabilityData:
  """The dataset `config.data.name` names, read by its module."""
  name = config.data.name
  if name == 'lamem':
    from memjax.datasets import lamem  # needs the feature store only when used

    return lamem.load(config)
  if name == 'image_folder':
    from memjax.datasets import image_folder

    return image_folder.load(config)
  if config.data.features_dir:
    from memjax.datasets import synthetic_store

    return synthetic_store.load(config)
  return synthetic.generate(config.data.synthetic, config.seed)


def image_paths(config: ml_collections.ConfigDict) -> tuple:
  """(ids, image file paths) of the dataset's images, for extraction.

  Raises:
    InputError: the dataset has no images (synthetic) or its files are bad.
  """
  if config.data.name == 'lamem':
    from memjax.datasets import lamem

    return lamem.image_paths(config)
  if config.data.name == 'image_folder':
    from memjax.datasets import image_folder

    return image_folder.image_paths(config)
  raise InputError(
    f'config.data.name={config.data.name!r} has no images to extract features from; use '
    "'lamem' or 'image_folder'."
  )


__all__ = ['LabelledSplit', 'MemorabilityData', 'load']
