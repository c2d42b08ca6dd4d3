"""The config a workdir recorded, as a config file: `--config=memjax/recorded_config.py:WORKDIR`.

`main.py` uses it when `--config` is not given, so that `evaluate`, `predict`, `transfer` and
`report` (and a resumed `train`) need only `--workdir`; `--config.FIELD=VALUE` overrides still
apply on top, and the modes check them against the record (`memjax/run_record.py`).

The recorded config (`run.json`, or `config.json` for a workdir recorded before) is laid over
`configs/default.py`, so every field keeps its type (optional fields stay typed placeholders that
the command line can set) and fields added to memjax since the run keep their defaults.
"""

import copy
import json
import os

import ml_collections

from memjax import results, run_record
from memjax.errors import InputError


def recorded(workdir: str) -> dict:
  """The workdir's recorded config as a dict.

  Raises:
    InputError: the workdir records no config.
  """
  record = run_record.read(workdir)
  if record is not None and record.get('config') is not None:
    return record['config']
  path = os.path.join(workdir, results.CONFIG_FILE)
  if not os.path.exists(path):
    raise InputError(
      f'{workdir} records no run (no {run_record.RUN_FILE} or {results.CONFIG_FILE}): give '
      '--config, or the --workdir of a run.'
    )
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f'{path} cannot be read ({e}); give --config.') from e


def _tuples(value):
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def _lay_over(target: ml_collections.ConfigDict, values: dict, template=None) -> None:
  """Sets `values` into `target`; an entry `target` lacks takes its fields' types from `template`
  (the shape of a new extractor entry) but only the fields recorded, or is taken as it is."""
  for key, value in values.items():
    nested = key in target and isinstance(target[key], ml_collections.ConfigDict)
    if nested and isinstance(value, dict):
      _lay_over(target[key], value)
      continue
    if key not in target and isinstance(value, dict):
      entry = copy.deepcopy(template) if template is not None else ml_collections.ConfigDict()
      for absent in [k for k in entry if k not in value]:  # the run had no such field
        del entry[absent]
      _lay_over(entry, value)
      target[key] = entry
      continue
    target[key] = _tuples(value)


def config_of(workdir: str) -> ml_collections.ConfigDict:
  """The workdir's recorded config over `configs/default.py` (see the module docstring)."""
  from configs import default

  config = default.get_config()
  values = recorded(workdir)
  try:
    extractors = values.pop('extractors', {})
    _lay_over(config, values)
    template = next(iter(config.extractors.values()))
    _lay_over(config.extractors, extractors, template)
  except (TypeError, ValueError, KeyError, AttributeError) as e:
    raise InputError(f'the config recorded in {workdir} does not fit memjax ({e}).') from e
  return config


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """ml_collections' config-file entry point (`--config=THIS_FILE:WORKDIR`)."""
  return config_of(workdir)
