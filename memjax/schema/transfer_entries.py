"""The datasets of `config.transfer.datasets`: `transfer_config` applies an entry to the config
(the one place its overrides of config.data are written, for the transfer mode and for
validation), and every entry's data is checked like config.data itself: its fields, the rules
between them and, for the transfer mode, its files.
"""

import copy

import ml_collections

from memjax.errors import InputError
from memjax.schema import cross, files
from memjax.schema.field_check import check_fields
from memjax.schema.fields import FIELDS
from memjax.schema.rules import check_value, fail


def transfer_config(
  config: ml_collections.ConfigDict, name: str, entry: ml_collections.ConfigDict
) -> ml_collections.ConfigDict:
  """A copy of `config` with the transfer dataset `name` applied: its overrides of config.data,
  its seed (when not None), and every fold (`data.run_folds` empty).

  Raises:
    InputError: an override of a field config.data lacks, or of a value of another type.
  """
  try:
    return _applied(config, entry)
  except InputError as e:
    raise InputError(f'{_where(name)}: with it applied, {e}') from e


def check_entries(config: ml_collections.ConfigDict) -> None:
  """Every entry's data, with its overrides applied, against the fields' rules and the rules
  between them (and its features, for synthetic data).

  Raises:
    InputError: naming the entry, then the field of its data.
  """
  for name, entry in config.transfer.datasets.items():
    try:
      sub = _applied(config, entry)
      check_fields(sub.data, 'data.')
      cross.check_data(sub.data)
      if sub.data.name == 'synthetic':
        cross.check_synthetic_features(sub.features)
    except InputError as e:
      raise InputError(f'{_where(name)}: with it applied, {e}') from e


def check_entry_files(config: ml_collections.ConfigDict) -> None:
  """The folder, CSV and feature store of every entry's data (what --mode=transfer reads)."""
  for name, entry in config.transfer.datasets.items():
    try:
      files.check_data_paths(_applied(config, entry), extracting=False)
    except InputError as e:
      raise InputError(f'{_where(name)}: with it applied, {e}') from e


def _where(name: str) -> str:
  return f'config.transfer.datasets.{name}.data'


def _applied(config, entry):
  sub = copy.deepcopy(config)
  _override(sub.data, entry.data, 'data')
  if entry.seed is not None:
    sub.seed = entry.seed
  sub.data.run_folds = ()
  return sub


def _override(target: ml_collections.ConfigDict, overrides, at: str) -> None:
  """Writes `overrides` (nested dicts for nested fields) into `target`, the config's `at`."""
  for key, value in overrides.items():
    path = f'{at}.{key}'
    if key not in target:
      fail(path, value, f'a field of config.{at}; it has no {key!r}')
    if isinstance(target[key], ml_collections.ConfigDict) and isinstance(
      value, (dict, ml_collections.ConfigDict)
    ):
      _override(target[key], value, path)
      continue
    try:
      target[key] = value  # ConfigDict's typed write: an int for a float field becomes a float
    except TypeError:
      if path in FIELDS:
        check_value(path, value, FIELDS[path])
      fail(path, value, f'a value of the type config.{path} holds ({type(target[key]).__name__})')
