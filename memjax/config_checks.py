"""The config rules between fields, and the files each mode needs, for config_schema.validate.

Each check raises the one-line InputError of `config_schema.fail`, naming the field, its value
and what was expected. Files are looked at only for the mode that reads them: the data of the
training modes, the images of extract, the inputs of predict, each dataset of transfer, and the
weight files of extractors a mode builds.
"""

import os

import ml_collections

from memjax import config_schema as schema
from memjax.errors import InputError

# Modes that load config.data, and those that use the MLP (and so model.branch_units).
DATA_MODES = ('train', 'evaluate', 'baseline', 'sweep', 'search')
MLP_MODES = ('train', 'evaluate', 'sweep', 'search', 'predict', 'transfer')
SYNTHETIC_FEATURES = ('cnn', 'semantic')


def check_all(config: ml_collections.ConfigDict, mode: str, workdir, check_paths: bool) -> None:
  """Every rule between fields, then (with `check_paths`) the files `mode` reads."""
  del workdir  # what a workdir must hold (trained folds, a lock) is the modes' own check
  _features(config, mode)
  _data(config, 'config.data', config.data, mode)
  _training(config)
  _search(config)
  _report(config)
  _distributed(config)
  for name, entry in config.transfer.datasets.items():
    try:
      sub = schema.with_data_overrides(config, entry.data)
      _data(sub, 'config.data', sub.data, 'transfer')
      if sub.data.name == 'synthetic':
        _synthetic_features(sub.features)
      if check_paths and mode == 'transfer':
        _data_paths(sub, 'data', 'transfer')
    except InputError as e:  # names the entry, then the field of its data
      raise InputError(f'config.transfer.datasets.{name}.data: with it applied, {e}') from e
  if mode == 'transfer' and not config.transfer.datasets:
    schema.fail('transfer.datasets', {}, 'at least one dataset (configs/transfer.py has some)')
  if check_paths:
    _paths(config, mode)


def _features(config, mode: str) -> None:
  features = tuple(config.features)
  if len(set(features)) != len(features):
    schema.fail('features', features, 'distinct feature names')
  if mode in ('extract', 'predict') or (mode in DATA_MODES and config.data.on_the_fly):
    unknown = [f for f in features if f not in config.extractors]
    if unknown:
      schema.fail(
        'features', features, f'names with a config.extractors entry {tuple(config.extractors)}'
      )
  elif mode in DATA_MODES and config.data.name == 'synthetic':
    # Stored features (lamem, image_folder) are named by the store's reader.
    _synthetic_features(features)

  if mode in MLP_MODES:
    units = tuple(config.model.branch_units)
    missing = [f for f in features if f not in units]
    if missing:
      raise InputError(
        f'config.features={features!r}: {missing} have no config.model.branch_units entry; '
        f'expected one per feature (it has {units}).'
      )


def _synthetic_features(features) -> None:
  unknown = [f for f in features if f not in SYNTHETIC_FEATURES]
  if unknown:
    schema.fail('features', tuple(features), f'features of the synthetic data {SYNTHETIC_FEATURES}')


def _data(config, where: str, data, mode: str) -> None:
  """Rules between the data fields; `where` names them (config.data or a transfer entry)."""
  field = where.removeprefix('config.')
  protocols = schema.data_protocols()[data.name]
  if data.protocol not in protocols:
    schema.fail(f'{field}.protocol', data.protocol, f'one of {protocols} for {data.name!r} data')
  if data.protocol == 'cv5':
    bad = [f for f in data.run_folds if f >= data.num_folds]
    if bad:
      schema.fail(f'{field}.run_folds', tuple(data.run_folds), f'folds in 0..{data.num_folds - 1}')
  elif data.fold_seeds:
    schema.fail(f'{field}.fold_seeds', tuple(data.fold_seeds), "() with protocol 'official'")
  if data.csv and data.name != 'image_folder':
    schema.fail(f'{field}.csv', data.csv, "None unless data.name is 'image_folder'")
  if mode == 'extract' and where == 'config.data':
    if data.name == 'synthetic':
      schema.fail(f'{field}.name', data.name, "'lamem' or 'image_folder' (images to extract)")
    if not data.features_dir:
      schema.fail(f'{field}.features_dir', None, 'the folder to write the feature store to')


def _training(config) -> None:
  opt = config.optimizer
  if opt.schedule == 'warmup_cosine' and opt.warmup_epochs > config.num_epochs:
    schema.fail(
      'optimizer.warmup_epochs', opt.warmup_epochs, f'at most num_epochs={config.num_epochs}'
    )


def _search(config) -> None:
  s = config.search
  if s.grace_secs <= s.heartbeat_secs:
    schema.fail(
      'search.grace_secs', s.grace_secs, f'more than search.heartbeat_secs={s.heartbeat_secs}'
    )


def _report(config) -> None:
  rows = schema.TABLE1_ROWS + tuple(config.report.extra_rows)
  unknown = [r for r in config.report.scatter_rows if r not in rows]
  if unknown:
    schema.fail('report.scatter_rows', tuple(config.report.scatter_rows), f'row keys among {rows}')


def _distributed(config) -> None:
  d = config.distributed
  if d.num_processes is not None and d.process_id is not None and d.process_id >= d.num_processes:
    schema.fail('distributed.process_id', d.process_id, f'below num_processes={d.num_processes}')


def _is_dir(path) -> bool:
  return bool(path) and os.path.isdir(path)


def _need_file(field: str, path: str, what: str) -> None:
  if not os.path.exists(path):
    schema.fail(field, path, f'{what}; it does not exist')
  if os.path.isdir(path):
    schema.fail(field, path, f'{what}; it is a folder')
  if not os.access(path, os.R_OK):
    schema.fail(field, path, f'{what}; it cannot be read (permissions)')


def _data_paths(config, field: str, mode: str) -> None:
  """The dataset's folder, CSV and feature store, as the mode reads them."""
  data = config.data
  extract = mode == 'extract'
  if data.name == 'lamem':
    inner = 'images' if extract else 'splits'
    if not _is_dir(os.path.join(data.dir or '', inner)):
      schema.fail(f'{field}.dir', data.dir, f'the LaMem folder holding {inner}/ and its files')
  elif data.name == 'image_folder':
    if not _is_dir(data.dir):
      schema.fail(f'{field}.dir', data.dir, 'the folder of images (an existing folder)')
    if data.csv:
      _need_file(f'{field}.csv', data.csv, 'the scores CSV')
  if data.name != 'synthetic' and not extract and not data.on_the_fly:
    if not data.features_dir:
      schema.fail(
        f'{field}.features_dir', None, 'the feature store folder (make it with --mode=extract)'
      )
    if not os.path.isdir(data.features_dir):
      schema.fail(
        f'{field}.features_dir',
        data.features_dir,
        'an existing feature store folder (make it with --mode=extract)',
      )
  if extract or data.on_the_fly:
    _extractor_files(config)


def _extractor_files(config) -> None:
  """The kinds and set weight files of the extractors of config.features."""
  kinds = schema.extractor_kinds()
  for name in config.features:
    spec = config.extractors.get(name)
    if spec is None:
      continue  # _features names it
    if spec.kind not in kinds:
      schema.fail(f'extractors.{name}.kind', spec.kind, f'one of {kinds}')
    for field in ('weights', 'projection'):
      if spec[field]:
        _need_file(f'extractors.{name}.{field}', spec[field], 'a local weight file')


def _paths(config, mode: str) -> None:
  if mode in DATA_MODES or mode == 'extract':
    _data_paths(config, 'data', mode)
  if mode == 'predict':
    source = config.predict.input
    if not source:
      schema.fail('predict.input', source, 'a folder of images or a CSV of image paths')
    if not os.path.exists(source):
      schema.fail('predict.input', source, 'a folder of images or a CSV; it does not exist')
    if not os.path.isdir(source):
      _need_file('predict.input', source, 'a folder of images or a CSV of image paths')
    _extractor_files(config)


def check_readable_config_file(argument: str) -> None:
  """The file of `--config=PATH[:ARGS]` exists and is readable.

  Raises:
    InputError: naming the path and what is wrong.
  """
  path = argument.split(':', 1)[0]
  if not path:
    raise InputError('--config is empty: expected a config file such as configs/k4.py.')
  problem = None
  if not os.path.exists(path):
    problem = 'it does not exist'
  elif os.path.isdir(path):
    problem = 'it is a folder'
  elif not os.access(path, os.R_OK):
    problem = 'it cannot be read (permissions)'
  if problem:
    raise InputError(f'--config={path!r}: expected a config file such as configs/k4.py; {problem}.')
