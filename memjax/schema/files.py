"""The files and folders a config names, checked for the mode that reads them.

The data of the training modes, the images of extract, the inputs of predict, each dataset of
transfer, the weight files of the extractors a mode builds, and the `--config` file itself. Each
check raises the one-line InputError of `rules.fail`, naming the field and what is wrong.
"""

import os

import ml_collections

from memjax.errors import InputError
from memjax.schema.names import extractor_kinds
from memjax.schema.rules import fail


def _is_dir(path) -> bool:
  return bool(path) and os.path.isdir(path)


def _need_file(field: str, path: str, what: str) -> None:
  if not os.path.exists(path):
    fail(field, path, f'{what}; it does not exist')
  if os.path.isdir(path):
    fail(field, path, f'{what}; it is a folder')
  if not os.access(path, os.R_OK):
    fail(field, path, f'{what}; it cannot be read (permissions)')


def check_data_paths(config, extracting: bool) -> None:
  """The dataset's folder, CSV and feature store as a mode reads them (images when
  `extracting`), and the weight files of the extractors that compute features from images.

  Args:
    config: the config, or what a transfer entry reads (`data`, `features`, `extractors`).
    extracting: the mode writes the feature store (extract) rather than reading it.
  """
  data = config.data
  if data.name == 'lamem':
    inner = 'images' if extracting else 'splits'
    if not _is_dir(os.path.join(data.dir or '', inner)):
      fail('data.dir', data.dir, f'the LaMem folder holding {inner}/ and its files')
  elif data.name == 'image_folder':
    if not _is_dir(data.dir):
      fail('data.dir', data.dir, 'the folder of images (an existing folder)')
    if data.csv:
      _need_file('data.csv', data.csv, 'the scores CSV')
  if data.name != 'synthetic' and not extracting and not data.on_the_fly:
    if not data.features_dir:
      fail('data.features_dir', None, 'the feature store folder (make it with --mode=extract)')
    if not os.path.isdir(data.features_dir):
      fail(
        'data.features_dir',
        data.features_dir,
        'an existing feature store folder (make it with --mode=extract)',
      )
  if extracting or data.on_the_fly:
    check_extractor_files(config)


def check_extractor_files(config) -> None:
  """The kinds and set weight files of the extractors of config.features."""
  kinds = extractor_kinds()
  for name in config.features:
    spec = config.extractors.get(name)
    if spec is None:
      continue  # the mode's rule on config.features names it
    if spec.kind not in kinds:
      fail(f'extractors.{name}.kind', spec.kind, f'one of {kinds}')
    for field in ('weights', 'projection'):
      if spec[field]:
        _need_file(f'extractors.{name}.{field}', spec[field], 'a local weight file')


def check_predict_input(config: ml_collections.ConfigDict) -> None:
  """The images predict scores (a folder or a CSV of paths) and its extractors' weight files."""
  source = config.predict.input
  if not source:
    fail('predict.input', source, 'a folder of images or a CSV of image paths')
  if not os.path.exists(source):
    fail('predict.input', source, 'a folder of images or a CSV; it does not exist')
  if not os.path.isdir(source):
    _need_file('predict.input', source, 'a folder of images or a CSV of image paths')
  check_extractor_files(config)


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
