"""Config validation: a bad config stops before any work starts, with one line naming the field.

`validate(config, mode)` checks every field against its rule (fields.py, with the rule types in
rules.py and the names other modules own in names.py), the rules between fields (cross.py), the
rules of the mode (modes.py, which also lists the modes) and the files the mode reads (files.py).
It does no work and imports nothing heavy (only the extractor registry, for modes that build
extractors). `check_devices(config, mesh)` is the rule that needs the devices, for the modes that
train to call at their start.
"""

import ml_collections

from memjax.errors import InputError
from memjax.schema.cross import check_cross
from memjax.schema.fields import check_fields
from memjax.schema.files import check_readable_config_file
from memjax.schema.modes import MODES, check_devices, check_mode


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
    raise InputError(f'--mode={mode!r}: expected one of {MODES}.')
  check_fields(config)
  check_cross(config)
  check_mode(config, mode, check_paths)


__all__ = ['MODES', 'check_devices', 'check_readable_config_file', 'validate']
