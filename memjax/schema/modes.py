"""The modes memjax runs (`MODES`, the one list of them) and the rules each adds to the config.

Each rule raises the one-line InputError of `rules.fail`, naming the field, its value and what
was expected. Files are looked at only for the mode that reads them (memjax/schema/files.py).
`check_devices` is the one rule that needs the devices: the training modes call it at their start.
"""

import dataclasses
from collections.abc import Callable

import ml_collections

from memjax.errors import InputError
from memjax.schema import cross, files, transfer_entries
from memjax.schema.rules import fail


@dataclasses.dataclass(frozen=True)
class Mode:
  """What a mode runs and reads, and its own rules on the config."""

  module: str  # the module and its function(config, workdir) that run the mode; the command
  function: str  # line imports them only once the config is valid
  reads_data: bool = False  # scores or trains on the features of config.data
  uses_mlp: bool = False  # builds the fusion MLP (so needs model.branch_units per feature)
  builds_extractors: bool = False  # computes features from images (extract, predict)
  rules: tuple[Callable[[ml_collections.ConfigDict], None], ...] = ()
  check_files: Callable[[ml_collections.ConfigDict], None] | None = None  # the files it reads


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


def _inner_folds(config) -> None:
  if config.baseline.tune_folds == 1:
    fail('baseline.tune_folds', 1, '0 (tune on the validation rows) or >= 2 inner folds')


def _images_to_extract(config) -> None:
  if config.data.name == 'synthetic':
    fail('data.name', config.data.name, "'lamem' or 'image_folder' (images to extract)")
  if not config.data.features_dir:
    fail('data.features_dir', None, 'the folder to write the feature store to')


def _some_datasets(config) -> None:
  if not config.transfer.datasets:
    fail('transfer.datasets', {}, 'at least one dataset (configs/transfer.py has some)')


def _stored_data(config) -> None:
  files.check_data_paths(config, extracting=False)


def _extracted_data(config) -> None:
  files.check_data_paths(config, extracting=True)


# The modes that run train.train_and_evaluate.
_TRAINS = dict(
  reads_data=True, uses_mlp=True, rules=(_images_for_training,), check_files=_stored_data
)

MODES = {
  'train': Mode('memjax.train', 'train_and_evaluate', **_TRAINS),
  'evaluate': Mode(
    'memjax.evaluate', 'evaluate', reads_data=True, uses_mlp=True, check_files=_stored_data
  ),
  'extract': Mode(
    'memjax.extract',
    'extract',
    builds_extractors=True,
    rules=(_images_to_extract,),
    check_files=_extracted_data,
  ),
  'predict': Mode(
    'memjax.predict',
    'predict',
    uses_mlp=True,
    builds_extractors=True,
    check_files=files.check_predict_input,
  ),
  'baseline': Mode(
    'memjax.experiments.baselines',
    'run',
    reads_data=True,
    rules=(_inner_folds,),
    check_files=_stored_data,
  ),
  'sweep': Mode('memjax.experiments.sweep', 'run', **_TRAINS),
  'search': Mode('memjax.experiments.search', 'run', **_TRAINS),
  'transfer': Mode(
    'memjax.experiments.transfer',
    'transfer',
    uses_mlp=True,
    rules=(_some_datasets,),
    check_files=transfer_entries.check_entry_files,
  ),
  'report': Mode('memjax.experiments.report', 'report'),
}


def check_mode(config: ml_collections.ConfigDict, mode: str, check_paths: bool) -> None:
  """The rules of `mode`, then (with `check_paths`) the files it reads."""
  m = MODES[mode]
  _features(config, m)
  for rule in m.rules:
    rule(config)
  if check_paths and m.check_files is not None:
    m.check_files(config)


def _features(config, m: Mode) -> None:
  features = tuple(config.features)
  if m.builds_extractors or (m.reads_data and config.data.on_the_fly):
    if any(f not in config.extractors for f in features):
      fail('features', features, f'names with a config.extractors entry {tuple(config.extractors)}')
  elif m.reads_data and config.data.name == 'synthetic':
    # Stored features (lamem, image_folder) are named by the store's reader.
    cross.check_synthetic_features(features)
  if m.uses_mlp:
    units = tuple(config.model.branch_units)
    missing = [f for f in features if f not in units]
    if missing:
      raise InputError(
        f'config.features={features!r}: {missing} have no config.model.branch_units entry; '
        f'expected one per feature (it has {units}).'
      )


def check_devices(config: ml_collections.ConfigDict, mesh) -> None:
  """Both batch sizes split evenly over the devices and processes of `mesh`.

  Raises:
    InputError: naming the batch size, the device count and the process count.
  """
  from memjax import parallel  # JAX: imported once a mode runs, never while validating

  parallel.check_divisible(config.batch_size, mesh, 'config.batch_size')
  parallel.check_divisible(config.eval_batch_size, mesh, 'config.eval_batch_size')
