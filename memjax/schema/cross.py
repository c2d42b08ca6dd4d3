"""The rules between config fields that hold in every mode.

Each raises the one-line InputError of `rules.fail`, naming the field, its value and what was
expected. The rules that depend on the mode are in memjax/schema/modes.py.
"""

import ml_collections

from memjax.schema.fields import TABLE1_ROWS
from memjax.schema.names import PROTOCOLS
from memjax.schema.rules import fail

SYNTHETIC_FEATURES = ('cnn', 'semantic')


def check_cross(config: ml_collections.ConfigDict) -> None:
  """Every rule between fields of `config` that does not depend on the mode."""
  features = tuple(config.features)
  if len(set(features)) != len(features):
    fail('features', features, 'distinct feature names')
  check_data(config.data)
  opt = config.optimizer
  if opt.schedule == 'warmup_cosine' and opt.warmup_epochs > config.num_epochs:
    fail('optimizer.warmup_epochs', opt.warmup_epochs, f'at most num_epochs={config.num_epochs}')
  s = config.search
  if s.grace_secs <= s.heartbeat_secs:
    fail('search.grace_secs', s.grace_secs, f'more than search.heartbeat_secs={s.heartbeat_secs}')
  rows = TABLE1_ROWS + tuple(config.report.extra_rows)
  if any(r not in rows for r in config.report.scatter_rows):
    fail('report.scatter_rows', tuple(config.report.scatter_rows), f'row keys among {rows}')
  d = config.distributed
  if d.num_processes is not None and d.process_id is not None and d.process_id >= d.num_processes:
    fail('distributed.process_id', d.process_id, f'below num_processes={d.num_processes}')


def check_data(data: ml_collections.ConfigDict) -> None:
  """The protocol and folds of `data` (config.data, or a transfer entry's with it applied)."""
  protocols = PROTOCOLS[data.name]
  if data.protocol not in protocols:
    fail('data.protocol', data.protocol, f'one of {protocols} for {data.name!r} data')
  if data.protocol == 'cv5':
    if any(f >= data.num_folds for f in data.run_folds):
      fail('data.run_folds', tuple(data.run_folds), f'folds in 0..{data.num_folds - 1}')
  elif data.fold_seeds:
    fail('data.fold_seeds', tuple(data.fold_seeds), "() with protocol 'official'")
  if data.csv and data.name != 'image_folder':
    fail('data.csv', data.csv, "None unless data.name is 'image_folder'")


def check_synthetic_features(features) -> None:
  """The features the synthetic data has."""
  if any(f not in SYNTHETIC_FEATURES for f in features):
    fail('features', tuple(features), f'features of the synthetic data {SYNTHETIC_FEATURES}')
