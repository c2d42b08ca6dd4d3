"""A config against the field table (memjax/schema/fields.py): every field known, none missing,
and each value accepted by its rule.
"""

import functools

import ml_collections
from absl import logging

from memjax.errors import InputError
from memjax.schema.fields import FIELDS
from memjax.schema.rules import check_value


def leaves(config, prefix: str = '') -> dict:
  """Dotted path -> value of every field, stopping at the fields FIELDS checks as a whole."""
  out = {}
  for key, value in config.items():
    path = f'{prefix}{key}'
    if isinstance(value, (ml_collections.ConfigDict, dict)) and path not in FIELDS:
      out.update(leaves(value, f'{path}.'))
    else:
      out[path] = value
  return out


@functools.cache
def _default_paths() -> frozenset | None:
  """The fields of configs/default.py, or None where that file cannot be imported."""
  try:
    from configs import default
  except ImportError:
    return None
  return frozenset(leaves(default.get_config()))


def check_fields(config: ml_collections.ConfigDict, prefix: str = '') -> None:
  """Type, range and name of every field; a field memjax does not know is an error.

  Args:
    config: the config, or its part at `prefix` (e.g. `data.` for config.data).
    prefix: the dotted path of `config` in the whole config, ending in a dot.
  """
  found = leaves(config, prefix)
  known = _default_paths()
  for path, value in found.items():
    rule = FIELDS.get(path)
    if rule is not None:
      check_value(path, value, rule)
    elif known is not None and path in known:
      logging.warning('config.%s has no rule in memjax/schema/fields.py; not checked.', path)
    else:
      raise InputError(
        f'config.{path} is not a memjax config field (a typo?); configs/default.py lists every '
        'field.'
      )
  absent = sorted(
    p for p in FIELDS if p.startswith(prefix) and p not in found and (known is None or p in known)
  )
  if absent:
    raise InputError(
      f'config.{absent[0]} is missing; start the config from configs/default.py '
      '(`from configs import default`).'
    )
