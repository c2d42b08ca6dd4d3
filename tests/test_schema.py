"""Config validation: every field of configs/default.py has a rule, and every rule stops a
wrong-type and an out-of-range value with an InputError naming the field; rules between fields
and the files a mode needs; every shipped config validates; and through `python main.py`, user
mistakes are one `memjax: error:` line, exit 2, no traceback.
"""

import glob
import importlib
import math
import os
import re
import subprocess
import sys

import ml_collections
import pytest

from configs import default
from configs import transfer as transfer_config
from memjax import command_line, schema
from memjax.errors import DivergedError, InputError, StoppedError
from memjax.schema import field_check, fields, names, rules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_config() -> ml_collections.ConfigDict:
  """configs/transfer.py (default + transfer entries) with one report extra row: every kind of
  entry of the open-keyed fields is present, and it validates for --mode=train."""
  config = transfer_config.get_config()
  config.report.extra_rows = ml_collections.ConfigDict({'IC KNN': '/tmp/memjax/ic_knn'})
  return config


def _rules() -> dict:
  """Dotted path -> rule for every field of base_config(), entries of open-keyed fields too."""
  config, out = base_config(), {}
  for path, rule in fields.FIELDS.items():
    out[path] = rule
    if isinstance(rule, rules.Entries):
      node = config
      for part in path.split('.'):
        node = node[part]
      for key in node:
        if rule.fields is None:
          out[f'{path}.{key}'] = rule.value
        else:
          out.update({f'{path}.{key}.{f}': r for f, r in rule.fields.items()})
  return out


def bad_values(rule) -> tuple:
  """(wrong type, out of range or unknown name) for `rule`."""
  if isinstance(rule, rules.Bool):
    return 'yes', 1
  if isinstance(rule, rules.Number):
    wrong = 2.5 if rule.integral else 'x'
    if rule.high is not None:
      return wrong, rule.high if rule.open_high else rule.high + 1
    return wrong, rule.low if rule.open_low else rule.low - 1
  if isinstance(rule, rules.Str):
    if rule.choices is not None or rule.pattern is not None:
      return 3, 'no such name!'
    return 3, ''
  if isinstance(rule, rules.Seq):
    if rule.min_len:
      return 'abc', ()
    first = bad_values(rule.item)[1]
    return 'abc', (first,)
  if isinstance(rule, rules.Interval):
    low, high = (1, 2) if rule.item.integral else (0.1, 0.2)
    return 5, (high, low)
  if isinstance(rule, rules.Entries):
    return 5, ml_collections.ConfigDict({'bad key!': 1})
  if isinstance(rule, rules.Struct):
    return 5, {'no_such_field': 1}
  raise AssertionError(f'no bad values for {rule}')


def set_field(config, path: str, value) -> None:
  *parents, leaf = path.split('.')
  node = config
  for part in parents:
    node = node[part]
  with node.ignore_type():
    node[leaf] = value


def leaf_paths(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from leaf_paths(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


def test_every_default_field_has_a_rule():
  """configs/default.py's fields (entries of open-keyed fields included) all have a rule."""
  rules, unruled = _rules(), []
  for path in leaf_paths(default.get_config()):
    parts = path.split('.')
    prefixes = ['.'.join(parts[:i]) for i in range(len(parts), 0, -1)]
    if not any(p in rules for p in prefixes):
      unruled.append(path)
  assert not unruled, f'add rules to memjax/schema/fields.py for config.{unruled}'
  stale = [p for p in fields.FIELDS if p not in field_check.leaves(default.get_config())]
  assert not stale, f'memjax/schema/fields.py has rules for fields default.py lacks: {stale}'


def test_default_and_base_config_validate():
  schema.validate(default.get_config(), 'train')
  schema.validate(base_config(), 'train')


@pytest.mark.parametrize('path', sorted(_rules()))
def test_every_field_rejects_a_wrong_type_and_an_out_of_range_value(path):
  rule = _rules()[path]
  for value in bad_values(rule):
    config = base_config()
    set_field(config, path, value)
    with pytest.raises(InputError) as error:
      schema.validate(config, 'train', check_paths=False)
    message = str(error.value)
    assert f'config.{path}' in message and 'expected' in message, (value, message)
    assert '\n' not in message


def test_names_are_those_of_the_modules_that_own_them():
  """The schema's copies of names other modules own equal the owners'."""
  from memjax import datasets, labels, models, optimizers, predict
  from memjax.features import registry
  from memjax.features.store import spec

  assert names.PROTOCOLS == datasets.PROTOCOLS
  assert names.HEADS == models.HEADS and tuple(models.ACTIVATIONS) == names.ACTIVATIONS
  assert (names.OPTIMIZERS, names.SCHEDULES) == (optimizers.NAMES, optimizers.SCHEDULES)
  assert names.SCORE_VALUES == labels.SCORE_VALUES
  assert (names.MIN_CLASSES, names.MAX_CLASSES) == (labels.MIN_CLASSES, labels.MAX_CLASSES)
  assert names.STORE_DTYPES == spec.DTYPES
  assert names.ON_ERROR == predict.ON_ERROR
  assert names.extractor_kinds() == registry.KINDS


def test_validation_imports_nothing_heavy():
  """Validating for a mode that builds no extractor imports no JAX, NumPy or TensorFlow (the
  command line validates before they load)."""
  code = (
    'import sys; from configs import default; from memjax import schema; '
    "schema.validate(default.get_config(), 'train', check_paths=False); "
    "print(sorted(m for m in ('jax', 'numpy', 'tensorflow', 'flax') if m in sys.modules))"
  )
  proc = subprocess.run(
    [sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert proc.returncode == 0 and proc.stdout.split() == ['[]'], proc.stderr[-2000:]


def _config_modes():
  for path in sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py'))):
    name = os.path.basename(path)[:-3]
    if name == '__init__':
      continue
    mode = 'train'
    for prefix, m in (('baseline', 'baseline'), ('report', 'report'), ('search', 'search')):
      mode = m if name.startswith(prefix) else mode
    mode = 'baseline' if name.endswith('_svr') else mode
    mode = 'sweep' if name.startswith('sweep') else mode
    mode = 'transfer' if name.startswith('transfer') else mode
    yield name, mode


@pytest.mark.parametrize(('name', 'mode'), list(_config_modes()))
def test_shipped_configs_validate(name, mode):
  """Every configs/*.py validates for its mode (files aside: they name the user's data)."""
  config = importlib.import_module(f'configs.{name}').get_config()
  schema.validate(config, mode, check_paths=False)
  schema.validate(config, 'train', check_paths=False)


def _expect(config, mode, pattern, **kw):
  with pytest.raises(InputError, match=pattern):
    schema.validate(config, mode, **kw)


def test_rules_between_fields():
  c = default.get_config()
  c.data.protocol = 'official'
  _expect(c, 'train', r"config\.data\.protocol='official': expected one of \('cv5',\) for 'synth")
  c = default.get_config()
  c.data.run_folds = (0, 5)
  _expect(c, 'train', r'config\.data\.run_folds=\(0, 5\): expected folds in 0\.\.4')
  c = default.get_config()
  c.features = ('cnn', 'colour')
  _expect(c, 'train', r"config\.features=.*: expected features of the synthetic data \('cnn'")
  c.features = ('cnn', 'cnn')
  _expect(c, 'train', r'config\.features=.*: expected distinct feature names')
  c = default.get_config()
  del c.model.branch_units['semantic']
  _expect(c, 'train', r"\['semantic'\] have no config\.model\.branch_units entry")
  c = default.get_config()
  c.search.grace_secs = 10
  _expect(c, 'search', r'config\.search\.grace_secs=10: expected more than search\.heartbeat')
  c = default.get_config()
  c.report.scatter_rows = ('cnn_ic_mlp_k4', 'nope')
  _expect(c, 'report', r"config\.report\.scatter_rows=.*: expected row keys among \('cnn_svr'")
  c = default.get_config()
  c.distributed.num_processes, c.distributed.process_id = 2, 2
  _expect(c, 'train', r'config\.distributed\.process_id=2: expected below num_processes=2')
  c = default.get_config()
  c.optimizer.schedule, c.optimizer.warmup_epochs = 'warmup_cosine', 11.0
  _expect(c, 'train', r'config\.optimizer\.warmup_epochs=11\.0: expected at most num_epochs=10')
  c = base_config()
  c.transfer.datasets.heldout.data.synthetic.num_examples = 0
  _expect(c, 'train', r'config\.data\.synthetic\.num_examples=0: expected an integer >= 2')
  c = base_config()
  c.transfer.datasets.heldout.data.name = 'flickr'
  _expect(c, 'transfer', r"config\.data\.name='flickr': expected one of \('synthetic'")
  _expect(default.get_config(), 'transfer', r'config\.transfer\.datasets=\{\}: expected at least')
  c = default.get_config()
  c.baseline.tune_folds = 1
  _expect(c, 'baseline', r'config\.baseline\.tune_folds=1: expected 0 \(tune on the validation')
  schema.validate(c, 'train')  # a rule of the baseline mode only
  _expect(default.get_config(), 'extract', r"config\.data\.name='synthetic': expected 'lamem' or")


def test_transfer_config_applies_an_entry():
  """The one place a transfer entry is applied: its data overrides written with the field's type
  (an int in a float field is a float), its seed, every fold; bad overrides name the entry."""
  c = base_config()
  c.data.run_folds = (0,)
  c.transfer.datasets.other_domain.data.synthetic.score_noise = 1
  sub = schema.transfer_config(c, 'other_domain', c.transfer.datasets.other_domain)
  assert sub.data.synthetic.num_examples == 5_000 and sub.data.synthetic.score_noise == 1.0
  assert isinstance(sub.data.synthetic.score_noise, float)
  assert (sub.seed, sub.data.run_folds, c.seed, c.data.run_folds) == (1, (), 0, (0,))
  entry = c.transfer.datasets.heldout
  assert schema.transfer_config(c, 'heldout', entry).seed == c.seed
  where = r'config\.transfer\.datasets\.heldout\.data: with it applied, '
  entry.data.nope = 1
  with pytest.raises(InputError, match=where + r'config\.data\.nope=1: expected a field of'):
    schema.transfer_config(c, 'heldout', entry)
  del entry.data['nope']
  set_field(entry, 'data.num_folds', 'x')
  with pytest.raises(InputError, match=where + r"config\.data\.num_folds='x': expected an integer"):
    schema.transfer_config(c, 'heldout', entry)
  del entry.data['num_folds']
  set_field(entry, 'data.synthetic', 5)
  with pytest.raises(InputError, match=where + r'config\.data\.synthetic=5: expected a value'):
    schema.validate(c, 'train')


def test_unknown_and_missing_fields():
  c = default.get_config()
  c.num_epoch = 5  # a typo in a config file adds a field
  _expect(c, 'train', r'config\.num_epoch is not a memjax config field \(a typo\?\)')
  c = default.get_config()
  del c.optimizer['eps']
  _expect(c, 'train', r'config\.optimizer\.eps is missing; start the config from configs/def')
  _expect(None, 'train', r'get_config\(\) must return one')
  _expect(default.get_config(), 'fly', r"--mode='fly': expected one of \('train'")


def _image_folder(tmp_path):
  (tmp_path / 'images').mkdir(exist_ok=True)
  (tmp_path / 'scores.csv').write_text('image,score\na.jpg,0.5\n')
  c = default.get_config()
  c.data.name, c.data.dir = 'image_folder', str(tmp_path / 'images')
  c.data.features_dir = str(tmp_path / 'store')
  c.features = ('color_grid',)
  return c


def test_files_the_mode_needs(tmp_path, monkeypatch):
  c = _image_folder(tmp_path)
  schema.validate(c, 'extract')  # the store is made there
  _expect(c, 'train', r"config\.data\.features_dir='.*store': expected an existing feature store")
  (tmp_path / 'store').mkdir()
  schema.validate(c, 'train')
  c.data.csv = str(tmp_path / 'nope.csv')
  _expect(c, 'train', r"config\.data\.csv='.*nope\.csv': expected the scores CSV; it does not ex")
  c.data.csv = str(tmp_path)
  _expect(c, 'train', r'config\.data\.csv=.*: expected the scores CSV; it is a folder')
  c = _image_folder(tmp_path)
  c.extractors.color_grid.kind = 'color_grids'
  _expect(c, 'extract', r"config\.extractors\.color_grid\.kind='color_grids': expected one of \(")
  monkeypatch.setattr('memjax.features.registry.KINDS', ('color_grids',))  # read when validating
  schema.validate(c, 'extract')
  monkeypatch.undo()
  c = _image_folder(tmp_path)
  c.extractors.color_grid.weights = str(tmp_path / 'w.pth')
  _expect(c, 'extract', r"extractors\.color_grid\.weights='.*w\.pth': expected a local weight f")
  c.data.dir = str(tmp_path / 'gone')
  _expect(c, 'extract', r"config\.data\.dir='.*gone': expected the folder of images")
  c = default.get_config()
  _expect(c, 'predict', r'config\.predict\.input=None: expected a folder of images or a CSV')
  c.predict.input = str(tmp_path / 'nothing')
  _expect(c, 'predict', r"config\.predict\.input='.*nothing': expected .*; it does not exist")
  c.data.name, c.data.dir = 'lamem', str(tmp_path)
  _expect(c, 'train', r"config\.data\.dir='.*': expected the LaMem folder holding splits/")


def test_error_classes_and_exit_statuses():
  assert command_line.classify(InputError('bad\nvalue')) == (2, 'bad value', False)
  assert command_line.classify(DivergedError('nan'))[0] == 3
  assert command_line.classify(StoppedError('stopped'))[0] == 75
  assert command_line.classify(FileNotFoundError(2, 'No such file or directory', '/x/y'))[:2] == (
    2,
    'No such file or directory: /x/y.',
  )
  assert command_line.classify(OSError(28, os.strerror(28), '/x'))[0] == 2
  code, message, bug = command_line.classify(ZeroDivisionError('division by zero'))
  assert (code, bug) == (1, True) and 'ZeroDivisionError: division by zero' in message
  assert command_line.classify(KeyboardInterrupt())[0] == 130


def test_handler_prints_one_line_and_the_traceback_only_when_verbose(capsys):
  for verbose in (False, True):
    with pytest.raises(SystemExit) as stop, command_line.reporting_errors(verbose):
      math.sqrt(-1)  # a bug
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith('memjax: error: ')]
    assert stop.value.code == 1 and len(lines) == 1
    assert ('Traceback' in err) == verbose
    assert (command_line.VERBOSE_HINT in lines[0]) != verbose


BROKEN_CONFIGS = {
  'syntax.py': 'def get_config(:\n',
  'no_get_config.py': 'X = 1\n',
  'wrong_type.py': (
    'from configs import default\n\n\ndef get_config():\n  c = default.get_config()\n'
    "  c.num_epochs = 'ten'\n  return c\n"
  ),
}
MAIN_CASES = {
  'missing-config-file': (['--config=configs/no_such.py'], r"--config='configs/no_such\.py'.*not"),
  'syntax-error': (['--config={tmp}/syntax.py'], r'syntax\.py line 1: syntax error'),
  'no-get-config': (['--config={tmp}/no_get_config.py'], r'has no get_config\(\) function'),
  'wrong-type-in-file': (['--config={tmp}/wrong_type.py'], r"get_config\(\) failed: .*'num_ep"),
  'unknown-field': (['--config.no_such=1'], r'error: unknown config field --config\.no_such \('),
  'close-field': (
    ['--config.data.nam=x'],
    r'error: unknown config field --config\.data\.nam; did you mean --config\.data\.name\?$',
  ),
  'unknown-flag': (['--wrokdir=x'], r'error: unknown flag --wrokdir; did you mean --workdir\?$'),
  'far-flag': (['--xyz=1'], r'error: unknown flag --xyz \(--helpfull lists every flag\)\.$'),
  'bad-flag-value': (['--config.num_epochs=ten'], r'--config\.num_epochs=ten: invalid literal'),
  'out-of-range': (['--config.model.dropout=1.5'], r'config\.model\.dropout=1\.5: expected a n'),
  'unknown-name': (['--config.optimizer.name=adamw'], r"optimizer\.name='adamw': expected one"),
  'missing-data-dir': (
    ['--config.data.name=image_folder', '--config.data.dir={tmp}/none'],
    r"config\.data\.dir='.*none': expected the folder of images",
  ),
}


def test_main_reports_mistakes_in_one_line(tmp_path):
  """A few representative mistakes through `python main.py` (each ~0.3 s: validation comes
  before the heavy imports)."""
  for name, text in BROKEN_CONFIGS.items():
    (tmp_path / name).write_text(text)
  for case, (args, pattern) in MAIN_CASES.items():
    args = [a.format(tmp=tmp_path) for a in args]
    if not any(a.startswith('--config=') for a in args):
      args.insert(0, '--config=configs/test.py')
    proc = subprocess.run(
      [sys.executable, 'main.py', f'--workdir={tmp_path / "w"}', *args],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith('memjax: error: ')]
    assert proc.returncode == 2 and len(lines) == 1, (case, proc.stderr[-2000:])
    assert 'Traceback' not in proc.stderr, (case, proc.stderr[-2000:])
    assert re.search(pattern, lines[0]), (case, lines[0])
    assert not (tmp_path / 'w').exists(), case  # nothing started


def test_check_readable_config_file(tmp_path):
  schema.check_readable_config_file(os.path.join(ROOT, 'configs', 'k4.py') + ':arg')
  with pytest.raises(InputError, match='it is a folder'):
    schema.check_readable_config_file(str(tmp_path))
  with pytest.raises(InputError, match='--config is empty'):
    schema.check_readable_config_file('')


def test_compile_cache_is_switched_on_by_main_only(tmp_path):
  """config.compile_cache=True: main.py points JAX's persistent cache at WORKDIR/jax_cache (one
  quick --mode=report run); no library module but the command line (memjax/cli.py, which
  main.py runs) switches it on itself."""
  workdir = tmp_path / 'report'
  proc = subprocess.run(
    [sys.executable, 'main.py', '--config=configs/test.py', f'--workdir={workdir}']
    + ['--mode=report', '--config.compile_cache=True'],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'persistent XLA compilation cache: {workdir}/jax_cache' in proc.stderr
  assert (workdir / 'jax_cache').is_dir() and (workdir / 'report.md').is_file()
  callers = []
  for path in glob.glob(os.path.join(ROOT, 'memjax', '**', '*.py'), recursive=True):
    with open(path) as f:
      text = f.read()
    if 'compile_cache.enable(' in text or 'jax_compilation_cache_dir' in text:
      callers.append(os.path.relpath(path, ROOT))
  assert sorted(callers) == ['memjax/cli.py', 'memjax/runtime/compile_cache.py'], callers


ODD_VALUES = (None, -1, 2**40, float('nan'), True, '', ('x', 'x'), {})


def test_any_value_of_any_field_is_accepted_or_an_input_error(tmp_path):
  """Odd values in every field, modes taking turns: validation never fails another way."""
  modes, outcomes, i = ('train', 'predict', 'transfer'), {'ok': 0, 'input_error': 0}, 0
  for path in sorted(_rules()):
    for value in ODD_VALUES:
      config, mode = base_config(), modes[i % len(modes)]
      config.predict.input, i = str(tmp_path), i + 1
      set_field(config, path, value)
      try:
        schema.validate(config, mode)
        outcomes['ok'] += 1
      except InputError as e:
        assert '\n' not in str(e) and str(e).startswith(('config.', '--mode')), str(e)
        outcomes['input_error'] += 1
  assert outcomes['input_error'] > outcomes['ok'] > 0, outcomes
