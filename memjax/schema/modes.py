"""The modes memjax runs, and the rules on the config that depend on the mode.

Each rule raises the one-line InputError of `rules.fail`, naming the field, its value and what
was expected. Files are looked at only for the mode that reads them (memjax/schema/files.py).
`check_devices` is the one rule that needs the devices: the training modes call it at their start.
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
TRAINING_MODES = ('train', 'sweep', 'search')  # they run train.train_and_evaluate


def check_mode(config: ml_collections.ConfigDict, mode: str, check_paths: bool) -> None:
  """The rules `mode` adds, then (with `check_paths`) the files it reads."""
  _features(config, mode)
  if mode == 'extract':
    if config.data.name == 'synthetic':
      fail('data.name', config.data.name, "'lamem' or 'image_folder' (images to extract)")
    if not config.data.features_dir:
      fail('data.features_dir', None, 'the folder to write the feature store to')
  if mode in TRAINING_MODES:
    _images_for_training(config)
  if mode == 'baseline' and config.baseline.tune_folds == 1:
    fail('baseline.tune_folds', 1, '0 (tune on the validation rows) or >= 2 inner folds')
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


def _images_for_training(config) -> None:
  """Fine-tuning and augmentation act on images: features must come from them, not a store."""
  if config.data.on_the_fly:
    return
  if config.finetune.mode != 'none':
    fail(
      'finetune.mode',
      config.finetune.mode,
      "'none' with config.data.on_the_fly=False (fine-tuning acts on images, features from a "
      'store are fixed): set config.data.on_the_fly=True',
    )
  a = config.augment  # what memjax.augment.Augment.active tells
  if tuple(a.crop_scale) != (1, 1) or tuple(a.crop_ratio) != (1, 1) or a.flip:
    fail(
      'augment',
      a,
      'crop_scale and crop_ratio (1, 1) and flip False with config.data.on_the_fly=False '
      '(augmentation acts on images, not on stored features): set config.data.on_the_fly=True',
    )


def check_devices(config: ml_collections.ConfigDict, mesh) -> None:
  """Both batch sizes split evenly over the devices and processes of `mesh`.

  Raises:
    InputError: naming the batch size, the device count and the process count.
  """
  from memjax import parallel  # JAX: imported once a mode runs, never while validating

  parallel.check_divisible(config.batch_size, mesh, 'config.batch_size')
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
