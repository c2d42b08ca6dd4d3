"""Config validation: a bad config stops before any work starts, with one line naming the field.

`validate(config, mode)` checks every field against its rule (the table in fields.py, applied by
field_check.py; the rule types in rules.py, the names other modules own in names.py), the rules
between fields (cross.py), every transfer dataset's data (transfer_entries.py), the rules of the
mode and the files it reads (modes.py, which holds `MODES`, the one list of modes, and files.py).
It does no work and imports nothing heavy (only the extractor registry, for modes that build
extractors).

Two more entry points serve the modes: `check_devices(config, mesh)`, the rule that needs the
devices, called once at the start of training, and `transfer_config(config, name, entry)`, the
config a transfer dataset is scored with.
"""

import ml_collections

from memjax.errors import InputError
from memjax.schema.cross import check_cross
from memjax.schema.field_check import check_fields
from memjax.schema.files import check_readable_config_file
from memjax.schema.modes import MODES, check_devices, check_mode
from memjax.schema.transfer_entries import check_entries, transfer_config


def validate(config: ml_collections.ConfigDict, mode: str, check_paths: bool = True) -> None:
  """Checks every field of `config`, the rules between fields and those of `mode`, and (with
  `check_paths`) that the files and folders `mode` reads exist. What a workdir must hold (trained
  folds, a lock) is the modes' own check.

  Args:
    config: the run's config.
    mode: one of MODES.
    check_paths: also look at the files the config names.

  Raises:
    InputError: the first problem found, naming the field, its value and what was expected.
  """
  if not isinstance(config, ml_collections.ConfigDict):
    raise InputError(
      f'the config file gave {type(config).__name__}, not a ConfigDict: get_config() must '
      'return one (start from configs/default.py).'
    )
  if mode not in MODES:
    raise InputError(f'--mode={mode!r}: expected one of {tuple(MODES)}.')
  check_fields(config)
  check_cross(config)
  check_entries(config)
  check_mode(config, mode, check_paths)


__all__ = [
  'MODES',
  'check_devices',
  'check_readable_config_file',
  'transfer_config',
  'validate',
]
