"""The modes memjax runs, and the rules on the config that depend on the mode.

Each rule raises the one-line InputError of `rules.fail`, naming the field, its value and what
was expected. Files are looked at only for the mode that reads them (memjax/schema/files.py).
"""

import ml_collections

from memjax.errors import InputError
from memjax.schema import cross, files, transfer_entries
from memjax.schema.rules import fail

MODES = ('train', 'evaluate', 'extract', 'predict', 'baseline', 'sweep', 'search', 'transfer')
MODES += ('report',)

# Modes that load config.data, and those that use the MLP (and so model.branch_units).
DATA_MODES = ('train', 'evaluate', 'baseline', 'sweep', 'search')
MLP_MODES = ('train', 'evaluate', 'sweep', 'search', 'predict', 'transfer')


def check_mode(config: ml_collections.ConfigDict, mode: str, check_paths: bool) -> None:
  """The rules `mode` adds, then (with `check_paths`) the files it reads."""
  _features(config, mode)
  if mode == 'extract':
    if config.data.name == 'synthetic':
      fail('data.name', config.data.name, "'lamem' or 'image_folder' (images to extract)")
    if not config.data.features_dir:
      fail('data.features_dir', None, 'the folder to write the feature store to')
  transfer_entries.check_entries(config, check_paths and mode == 'transfer')
  if mode == 'transfer' and not config.transfer.datasets:
    fail('transfer.datasets', {}, 'at least one dataset (configs/transfer.py has some)')
  if not check_paths:
    return
  if mode in DATA_MODES or mode == 'extract':
    files.check_data_paths(config, extracting=mode == 'extract')
  if mode == 'predict':
    files.check_predict_input(config)


def _features(config, mode: str) -> None:
  features = tuple(config.features)
  if mode in ('extract', 'predict') or (mode in DATA_MODES and config.data.on_the_fly):
    if any(f not in config.extractors for f in features):
      fail('features', features, f'names with a config.extractors entry {tuple(config.extractors)}')
  elif mode in DATA_MODES and config.data.name == 'synthetic':
    # Stored features (lamem, image_folder) are named by the store's reader.
    cross.check_synthetic_features(features)
  if mode in MLP_MODES:
    units = tuple(config.model.branch_units)
    missing = [f for f in features if f not in units]
    if missing:
      raise InputError(
        f'config.features={features!r}: {missing} have no config.model.branch_units entry; '
        f'expected one per feature (it has {units}).'
      )
