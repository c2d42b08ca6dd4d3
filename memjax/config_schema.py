"""Every config field, what it accepts, and `validate`: bad config stops before any work starts.

`FIELDS` is the table: one entry per field of configs/default.py (dotted path -> Rule with its
type, range or choices and one-line meaning; memjax/config_rules.py has the rule types). Fields
whose keys are open (`model.branch_units`, `extractors`, `transfer.datasets`,
`report.extra_rows`) have one `Entries` rule that checks every entry. The rules that tie fields
together or look at files for the chosen mode live in memjax/config_checks.py.

tests/test_config_schema.py fails when configs/default.py has a field this table lacks.
"""

import copy
import functools
import re
import types

import ml_collections
from absl import logging

from memjax.config_rules import (
  Bool,
  Entries,
  Float,
  Int,
  Interval,
  Rule,
  Seq,
  Str,
  Struct,
  declared,
  declared_names,
)
from memjax.errors import InputError

MODES = ('train', 'evaluate', 'extract', 'predict', 'baseline', 'sweep', 'search', 'transfer')
MODES += ('report',)

# Names other modules own, read from their source when validating (config_rules.declared_names)
# so that validation imports nothing heavy and follows names added there.
MIN_CLASSES, MAX_CLASSES = 2, 8  # memjax.labels; the test checks these copies
TABLE1_ROWS = ('cnn_svr', 'cnn_mlp_k2', 'cnn_mlp_k4', 'ic_svr', 'ic_mlp_k4', 'cnn_ic_mlp_k4')


def _owned(module: str, name: str):
  return functools.partial(declared_names, module, name)


DATA_NAMES = _owned('memjax.datasets', 'PROTOCOLS')


def data_protocols() -> dict:
  """memjax.datasets.PROTOCOLS: data name -> the protocols it supports."""
  return declared('memjax.datasets', 'PROTOCOLS', keys_only=False)


HEADS = _owned('memjax.models', 'HEADS')
ACTIVATIONS = _owned('memjax.models', 'ACTIVATIONS')
OPTIMIZERS = _owned('memjax.optimizers', 'NAMES')
SCHEDULES = _owned('memjax.optimizers', 'SCHEDULES')
SCORE_VALUES = _owned('memjax.labels', 'SCORE_VALUES')
METHODS = _owned('memjax.experiments.baselines', 'METHODS')
APPROXIMATIONS = _owned('memjax.experiments.baselines', 'APPROXIMATIONS')
STORE_DTYPES = _owned('memjax.features.store.spec', 'DTYPES')
ON_ERROR = ('skip', 'stop')  # memjax.predict and memjax.extract; the test checks it


def extractor_kinds() -> tuple:
  """memjax.features.registry.KINDS, read when validating (other work adds kinds)."""
  from memjax.features import registry

  return tuple(registry.KINDS)


_NAME = r'[A-Za-z_][A-Za-z0-9_]*'
_FEATURE = Str(
  'a feature name', pattern=r'[A-Za-z0-9_][A-Za-z0-9_.-]*', shape='a name of letters, digits, _ . -'
)
_K = Int('K, the number of score classes', MIN_CLASSES, MAX_CLASSES)
_PATH = 'a non-empty path'


def _path(meaning: str) -> Str:
  return Str(meaning, optional=True, shape=_PATH)


EXTRACTOR_FIELDS = {
  'kind': Str('extractor kind (memjax/features/registry.py)', pattern=_NAME, shape='a kind name'),
  'variant': Str('size of a family, e.g. clip b16', optional=True),
  'weights': _path('local weight file'),
  'projection': _path('vse projection .npz'),
  'output': Str('which output is the feature', optional=True),
  'pool_depths': Seq(
    'stages/blocks (1-based) also mean-pooled', item=Int('a depth', 1), distinct=True
  ),
  'flip': Bool('average with the horizontal flip'),
  'dtype': Str('extractor compute dtype', choices=('float32', 'bfloat16')),
}

TRANSFER_FIELDS = {
  'data': Struct('overrides of config.data for this dataset'),
  'seed': Int('seed overriding config.seed', 0, 2**32 - 1, optional=True),
  'first_row': Int('rows before it are left out', 0),
  'paper': Float("the paper's Spearman", -1.0, 1.0, optional=True),
  'about': Str('one line for the table'),
}

FIELDS: dict[str, Rule] = {
  'seed': Int('root seed', 0, 2**32 - 1),
  'features': Seq('feature names fed to the model', item=_FEATURE, min_len=1),
  'num_classes': _K,
  'score_values': Str('s_k rule', choices=SCORE_VALUES),
  'num_epochs': Int('training epochs per fold', 1),
  'batch_size': Int('global training batch size', 1),
  'steps_per_call': Int('training steps per jitted call', 1),
  'eval_batch_size': Int('global evaluation batch size', 1),
  'standardize': Bool("standardise features with the training fold's mean and SD"),
  'label_smoothing': Float(
    'share of a class target moved to its neighbours', 0.0, 1.0, open_high=True
  ),
  'ema_decay': Float('decay of the evaluated parameter EMA (0: off)', 0.0, 1.0, open_high=True),
  'log_every_secs': Float('seconds between progress lines', 0.0, open_low=True),
  'compile_cache': Bool('persistent XLA compile cache in WORKDIR/jax_cache'),
  'resume_changed': Bool('resume a workdir whose recorded config differs'),
  'cpu_library_fusions': Str('XLA CPU library fusions', choices=('auto', 'on', 'off')),
  'data.name': Str('dataset', choices=DATA_NAMES),
  'data.dir': _path('dataset folder'),
  'data.csv': _path('scores CSV of an image folder'),
  'data.image_column': Str('CSV column of image paths'),
  'data.score_column': Str('CSV column of scores'),
  'data.features_dir': _path('feature store folder'),
  'data.on_the_fly': Bool('compute features from images inside the steps'),
  'data.device_resident': Str('training rows kept on the devices', choices=('auto', 'on', 'off')),
  'data.protocol': Str('evaluation protocol', choices=('cv5', 'official')),
  'data.label_version': Int('LaMem label version of cv5', 1, 5),
  'data.num_folds': Int('folds of cv5', 2),
  'data.run_folds': Seq('folds to run', item=Int('a fold', 0), distinct=True),
  'data.val_fraction': Float(
    'validation share of a training fold', 0.0, 1.0, open_low=True, open_high=True
  ),
  'data.fold_seeds': Seq('fold seeds of repeated cv5', item=Int('a seed', 0), distinct=True),
  'data.synthetic.num_examples': Int('synthetic rows', 2),
  'data.synthetic.latent_dim': Int('synthetic latent block size', 1),
  'data.synthetic.feature_noise': Float('synthetic feature noise SD', 0.0),
  'data.synthetic.score_noise': Float('synthetic score noise SD', 0.0),
  'data.synthetic.cnn_density': Float('share of non-zero cnn entries', 0.0, 1.0, open_low=True),
  'data.synthetic.cnn_dim': Int('synthetic cnn width', 1),
  'data.synthetic.semantic_dim': Int('synthetic semantic width', 1),
  'data.synthetic.score_decimals': Int('decimals synthetic scores are rounded to', 0, 15),
  'model.head': Str('model head', choices=HEADS),
  'model.branch_units': Entries(
    "Dense widths of each feature's branch",
    value=Seq("Dense widths of the feature's branch", item=Int('units', 1)),
  ),
  'model.hidden_units': Seq('Dense widths after the concatenation', item=Int('units', 1)),
  'model.dropout': Float('dropout rate', 0.0, 1.0, open_high=True),
  'model.activation': Str('activation', choices=ACTIVATIONS),
  'model.ensemble_size': Int('members trained together per fold', 1),
  'optimizer.name': Str('optimiser', choices=OPTIMIZERS),
  'optimizer.learning_rate': Float('peak learning rate', 0.0, open_low=True),
  'optimizer.schedule': Str('learning-rate schedule', choices=SCHEDULES),
  'optimizer.warmup_epochs': Float('warm-up epochs', 0.0),
  'optimizer.weight_decay': Float('weight decay', 0.0),
  'optimizer.momentum': Float('sgd momentum', 0.0, 1.0, open_high=True),
  'optimizer.rmsprop_decay': Float('rmsprop decay', 0.0, 1.0, open_high=True),
  'optimizer.eps': Float('rmsprop epsilon', 0.0, open_low=True),
  'extractors': Entries('feature name -> extractor', fields=EXTRACTOR_FIELDS),
  'finetune.mode': Str('what of the extractors trains', choices=('none', 'last', 'all', 'lora')),
  'finetune.last_blocks': Int('blocks trained (last) or adapted (lora; 0: all)', 0),
  'finetune.lora_rank': Int('LoRA rank', 1),
  'finetune.lora_alpha': Float('LoRA alpha (None: the rank)', 0.0, open_low=True, optional=True),
  'finetune.learning_rate': Float('peak learning rate of the backbone', 0.0, open_low=True),
  'finetune.weight_decay': Float('weight decay of the backbone', 0.0),
  'finetune.unfreeze_epoch': Float('epochs the head trains alone', 0.0),
  'finetune.warmup_epochs': Float('backbone warm-up epochs after unfreezing', 0.0),
  'finetune.remat': Bool('recompute backbone blocks in the backward pass'),
  'augment.crop_scale': Interval(
    'area share range of the random resized crop',
    item=Float('an area share', 0.0, 1.0, open_low=True),
  ),
  'augment.crop_ratio': Interval(
    'aspect-ratio range of the random crop', item=Float('a ratio', 0.0, open_low=True)
  ),
  'augment.flip': Bool('random horizontal flip of training images'),
  'extract.batch_size': Int('images per extraction batch', 1),
  'extract.dtype': Str('stored feature dtype', choices=STORE_DTYPES),
  'extract.on_error': Str('unreadable image while extracting', choices=ON_ERROR),
  'predict.input': _path('folder of images or CSV of paths to score'),
  'predict.output': _path('CSV to write'),
  'predict.path_column': Str('CSV column of image paths'),
  'predict.on_error': Str('unreadable image while predicting', choices=ON_ERROR),
  'eval.output': _path('evaluate: the summary JSON to write instead of WORKDIR/summary.json'),
  'eval.checkpoint': Str(
    'checkpoint scored per fold', pattern=r'best|latest|[0-9]+', shape="'best', 'latest' or a step"
  ),
  'baseline.method': Str('baseline regressor', choices=METHODS),
  'baseline.num_trials': Int('Optuna trials per fold', 1),
  'baseline.startup_trials': Int('random trials before TPE', 0),
  'baseline.tune_rows': Int('train rows per tuning trial (0: all)', 0),
  'baseline.fit_rows': Int('rows of the final fit (0: all)', 0),
  'baseline.approximation': Str('svr kernel approximation', choices=APPROXIMATIONS),
  'baseline.nystroem_components': Int('Nystroem kernel features', 1),
  'baseline.tune_folds': Int('inner folds scoring each tuning trial (0: the validation rows)', 0),
  'sweep.num_classes': Seq('K values of the sweep', item=_K, min_len=1, distinct=True),
  'search.storage': Str(
    'Optuna storage URL',
    optional=True,
    pattern=r'[A-Za-z0-9+]+://.*',
    shape='a URL like sqlite:///…',
  ),
  'search.study_name': Str('Optuna study name'),
  'search.num_trials': Int('finished trials wanted', 1),
  'search.startup_trials': Int('random trials before TPE', 0),
  'search.pruner_startup_trials': Int('trials finished before pruning', 0),
  'search.sampler_seed': Int('TPE seed', 0, 2**32 - 1, optional=True),
  'search.units': Interval('units range', item=Int('units', 1)),
  'search.dropout': Interval('dropout range', item=Float('a rate', 0.0, 1.0, open_high=True)),
  'search.activations': Seq(
    'activation choices', item=Str('an activation', choices=ACTIVATIONS), min_len=1, distinct=True
  ),
  'search.optimizers': Seq(
    'optimiser choices', item=Str('an optimiser', choices=OPTIMIZERS), min_len=1, distinct=True
  ),
  'search.learning_rate': Interval(
    'learning-rate range', item=Float('a learning rate', 0.0, open_low=True)
  ),
  'search.heartbeat_secs': Int('heartbeat period of a running trial', 1),
  'search.grace_secs': Int('seconds without heartbeat before a trial is retried', 1),
  'search.max_retry': Int('re-queues of a dead trial', 0),
  'transfer.datasets': Entries('name -> dataset to score', fields=TRANSFER_FIELDS),
  'transfer.output': _path('transfer: the results folder instead of WORKDIR'),
  **{f'report.table1.{row}': _path(f'workdir of Table 1 row {row}') for row in TABLE1_ROWS},
  'report.extra_rows': Entries(
    'Table 1 label -> workdir', value=Str('a workdir', shape=_PATH), key_pattern=r'[^\n]*\S[^\n]*'
  ),
  'report.sweep': _path('workdir of --mode=sweep'),
  'report.search': _path('workdir of --mode=search'),
  'report.transfer': _path('workdir of --mode=transfer'),
  'report.scatter_rows': Seq('rows with a scatter plot', item=Str('a row key'), distinct=True),
  'report.grid_size': Int('images per side of Fig. 3', 0),
  'report.runs': Seq(
    'runs to compare',
    item=Str('a workdir, a folder of workdirs or a glob', shape=_PATH),
    distinct=True,
  ),
  'distributed.enabled': Bool('start jax.distributed'),
  'distributed.coordinator_address': Str(
    'coordinator of a multi-process run', optional=True, pattern=r'\S+:[0-9]+', shape="'host:port'"
  ),
  'distributed.num_processes': Int('processes of the run', 1, optional=True),
  'distributed.process_id': Int("this process's index", 0, optional=True),
}


def _show(value) -> str:
  """`value` on one short line, for a message."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  text = repr(value).replace('\n', ' ')
  return text if len(text) <= 120 else text[:117] + '...'


def fail(path: str, value, expected: str, meaning: str = '') -> None:
  """Raises the one-line InputError for field `config.<path>`."""
  about = f' ({meaning})' if meaning else ''
  raise InputError(f'config.{path}={_show(value)}: expected {expected}{about}.')


def check_value(path: str, value, rule: Rule) -> None:
  """Raises InputError when `value` breaks `rule`; checks every entry of an `Entries` rule."""
  if not rule.accepts(value):
    fail(path, value, rule.expected, rule.meaning)
  if not isinstance(rule, Entries):
    return
  for key, entry in value.items():
    where = f'{path}.{key}'
    if not isinstance(key, str) or not re.fullmatch(rule.key_pattern, key):
      fail(path, key, f'entry names matching {rule.key_pattern!r}', rule.meaning)
    if rule.fields is None:
      check_value(where, entry, rule.value)
      continue
    if not isinstance(entry, (ml_collections.ConfigDict, dict)):
      fail(where, entry, f'a ConfigDict with fields {tuple(rule.fields)}', rule.meaning)
    missing = [f for f in rule.fields if f not in entry]
    unknown = [f for f in entry if f not in rule.fields]
    if missing or unknown:
      fail(
        where,
        entry,
        f'exactly the fields {tuple(rule.fields)} (missing {missing}, unknown {unknown})',
        rule.meaning,
      )
    for name, field_rule in rule.fields.items():
      check_value(f'{where}.{name}', entry[name], field_rule)


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
      logging.warning('config.%s has no rule in memjax/config_schema.py; not checked.', path)
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


def validate(
  config: ml_collections.ConfigDict, mode: str, workdir: str | None = None, check_paths=True
) -> None:
  """Checks every field of `config`, the rules between fields, and (with `check_paths`) that the
  files and folders `mode` reads exist. Does no work; imports nothing heavy (only the extractor
  registry, for modes that build extractors).

  Raises:
    InputError: the first problem found, naming the field, its value and what was expected.
  """
  from memjax import config_checks

  if not isinstance(config, ml_collections.ConfigDict):
    raise InputError(
      f'the config file gave {type(config).__name__}, not a ConfigDict: get_config() must '
      'return one (start from configs/default.py).'
    )
  if mode not in MODES:
    raise InputError(f'--mode={mode!r}: expected one of {MODES}.')
  check_fields(config)
  config_checks.check_all(config, mode, workdir, check_paths)


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
