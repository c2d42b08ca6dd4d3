"""The datasets of `config.transfer.datasets`: each entry's overrides of config.data applied, and
the result checked like config.data itself (its fields, their rules, and for transfer its files).
"""

import copy
import types

import ml_collections

from memjax.errors import InputError
from memjax.schema import cross, files
from memjax.schema.fields import check_fields
from memjax.schema.rules import fail


def with_data_overrides(config: ml_collections.ConfigDict, overrides):
  """What a transfer entry reads: `data` (a copy of config.data with the entry's `overrides`
  applied, its fields checked), and config's `features` and `extractors`.

  Raises:
    InputError: an override of a field config.data lacks, or a bad value.
  """
  data = copy.deepcopy(config.data)
  data.unlock()

  def apply(target, items, at):
    for key, value in items.items():
      if key not in target:
        fail(f'{at}.{key}', value, f'a field of config.data; it has no {key!r}')
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        apply(target[key], value, f'{at}.{key}')
      else:
        with target.ignore_type():
          target[key] = value

  apply(data, overrides, 'data')
  check_fields(data, 'data.')
  return types.SimpleNamespace(data=data, features=config.features, extractors=config.extractors)


def check_entries(config: ml_collections.ConfigDict, check_paths: bool) -> None:
  """Every entry's data, with its overrides applied; with `check_paths`, its files too.

  Raises:
    InputError: naming the entry, then the field of its data.
  """
  for name, entry in config.transfer.datasets.items():
    try:
      sub = with_data_overrides(config, entry.data)
      cross.check_data(sub.data)
      if sub.data.name == 'synthetic':
        cross.check_synthetic_features(sub.features)
      if check_paths:
        files.check_data_paths(sub, extracting=False)
    except InputError as e:
      raise InputError(f'config.transfer.datasets.{name}.data: with it applied, {e}') from e
