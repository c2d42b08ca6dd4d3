"""Every config field and what it accepts: one rule per field of configs/default.py.

`FIELDS` maps a dotted path to its Rule (type, range or choices, and a one-line meaning; the rule
types are in memjax/schema/rules.py). Fields whose keys are open (`model.branch_units`,
`extractors`, `transfer.datasets`, `report.extra_rows`) have one `Entries` rule that checks every
entry. memjax/schema/field_check.py checks a config against the table.

tests/test_schema.py fails when configs/default.py has a field this table lacks.
"""

from memjax.schema import names
from memjax.schema.rules import (
  Bool,
  Entries,
  Float,
  Int,
  Interval,
  Rule,
  Seq,
  Str,
  Struct,
)

DATA_NAMES = tuple(names.PROTOCOLS)
# Every protocol some data supports; cross.py checks the one chosen against the data's.
ALL_PROTOCOLS = tuple(dict.fromkeys(p for supported in names.PROTOCOLS.values() for p in supported))
TABLE1_ROWS = ('cnn_svr', 'cnn_mlp_k2', 'cnn_mlp_k4', 'ic_svr', 'ic_mlp_k4', 'cnn_ic_mlp_k4')

_NAME = r'[A-Za-z_][A-Za-z0-9_]*'
_FEATURE = Str(
  'a feature name', pattern=r'[A-Za-z0-9_][A-Za-z0-9_.-]*', shape='a name of letters, digits, _ . -'
)
_K = Int('K, the number of score classes', names.MIN_CLASSES, names.MAX_CLASSES)
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
  'score_values': Str('s_k rule', choices=names.SCORE_VALUES),
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
  'data.protocol': Str('evaluation protocol', choices=ALL_PROTOCOLS),
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
  'model.head': Str('model head', choices=names.HEADS),
  'model.branch_units': Entries(
    "Dense widths of each feature's branch",
    value=Seq("Dense widths of the feature's branch", item=Int('units', 1)),
  ),
  'model.hidden_units': Seq('Dense widths after the concatenation', item=Int('units', 1)),
  'model.dropout': Float('dropout rate', 0.0, 1.0, open_high=True),
  'model.activation': Str('activation', choices=names.ACTIVATIONS),
  'model.ensemble_size': Int('members trained together per fold', 1),
  'optimizer.name': Str('optimiser', choices=names.OPTIMIZERS),
  'optimizer.learning_rate': Float('peak learning rate', 0.0, open_low=True),
  'optimizer.schedule': Str('learning-rate schedule', choices=names.SCHEDULES),
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
  'extract.dtype': Str('stored feature dtype', choices=names.STORE_DTYPES),
  'extract.on_error': Str('unreadable image while extracting', choices=names.ON_ERROR),
  'predict.input': _path('folder of images or CSV of paths to score'),
  'predict.output': _path('CSV to write'),
  'predict.path_column': Str('CSV column of image paths'),
  'predict.on_error': Str('unreadable image while predicting', choices=names.ON_ERROR),
  'eval.output': _path('evaluate: the summary JSON to write instead of WORKDIR/summary.json'),
  'eval.checkpoint': Str(
    'checkpoint scored per fold', pattern=r'best|latest|[0-9]+', shape="'best', 'latest' or a step"
  ),
  'baseline.method': Str('baseline regressor', choices=names.METHODS),
  'baseline.num_trials': Int('Optuna trials per fold', 1),
  'baseline.startup_trials': Int('random trials before TPE', 0),
  'baseline.tune_rows': Int('train rows per tuning trial (0: all)', 0),
  'baseline.fit_rows': Int('rows of the final fit (0: all)', 0),
  'baseline.approximation': Str('svr kernel approximation', choices=names.APPROXIMATIONS),
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
    'activation choices',
    item=Str('an activation', choices=names.ACTIVATIONS),
    min_len=1,
    distinct=True,
  ),
  'search.optimizers': Seq(
    'optimiser choices',
    item=Str('an optimiser', choices=names.OPTIMIZERS),
    min_len=1,
    distinct=True,
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
