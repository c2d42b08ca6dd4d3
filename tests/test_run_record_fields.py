"""The run record, field by field: every field that can change results is refused when changed,
naming it; the fields it ignores are an explicit list."""

import pytest

from configs import test as test_cfg
from memjax import run_record
from memjax.datasets import synthetic
from memjax.errors import InputError

# Pinned: a field leaves the record only by being listed here on purpose.
EXPECTED_IGNORED = (
  'log_every_secs',
  'data.dir',
  'data.csv',
  'data.features_dir',
  'compile_cache',
  'resume_changed',
  'cpu_library_fusions',
  'steps_per_call',
  'data.device_resident',
  'finetune.remat',
  'eval_batch_size',
  'eval',
  'data.run_folds',
  'extract',
  'predict',
  'baseline',
  'sweep',
  'search',
  'transfer',
  'report',
  'distributed',
)
EXPECTED_MEANING = (
  'features',
  'extractors',
  'model',
  'num_classes',
  'score_values',
  'standardize',
  'finetune',
)
FIELDS = sorted(run_record.result_fields(test_cfg.get_config()))


def _changed(value):
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value * 2 + 0.5
  if isinstance(value, str):
    return value + '_other'
  if isinstance(value, (list, tuple)):
    return (*value, value[-1]) if value else (1,)
  if value is None:
    return 'set'
  raise TypeError(value)


def _set(config, name, value):
  *parents, leaf = name.split('.')
  node = config
  for part in parents:
    node = node[part]
  with node.ignore_type():
    node[leaf] = value


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
  config = test_cfg.get_config()
  config.data.synthetic.num_examples = 40
  data = synthetic.generate(config.data.synthetic, config.seed)
  workdir = str(tmp_path_factory.mktemp('record'))
  assert run_record.check(config, data, workdir) == []
  return config, data, workdir


def test_the_groups_are_the_pinned_lists():
  assert run_record.IGNORED == EXPECTED_IGNORED
  assert run_record.MEANING == EXPECTED_MEANING
  flat = run_record.flatten(test_cfg.get_config().to_dict())
  fields = run_record.result_fields(test_cfg.get_config())
  left_out = {n for n in flat if n not in fields}
  for name in left_out:  # each left out by a pinned prefix, or as an unused feature's entry
    under = any(name == p or name.startswith(p + '.') for p in EXPECTED_IGNORED)
    unused = name.split('.')[0] == 'extractors' or name.startswith('model.branch_units.')
    weights = name.split('.')[-1] in ('weights', 'projection')
    assert under or unused or weights, name
  assert 'extractors.cnn.kind' in fields and 'extractors.clip.kind' not in fields
  assert 'extractors.cnn.weights' not in fields  # its content is in the extractor identity


@pytest.mark.parametrize('name', FIELDS)
def test_changing_a_result_field_is_refused_naming_it(recorded, name):
  config, data, workdir = recorded
  other = config.copy_and_resolve_references()
  old = run_record.result_fields(config)[name]
  _set(other, name, _changed(old))
  with pytest.raises(InputError) as e:
    run_record.check(other, data, workdir)
  message = str(e.value)
  assert f'{name}: ' in message
  fixed = any(name == p or name.startswith(p + '.') for p in EXPECTED_MEANING)
  assert ('these fields say what the trained parameters mean' in message) == fixed
  if not fixed:  # the rest may go on when asked to, and the difference is returned
    other.resume_changed = True
    assert [d.split(':')[0] for d in run_record.check(other, data, workdir)] == [name]


@pytest.mark.parametrize('name', ['eval_batch_size', 'data.run_folds', 'predict.output'])
def test_an_ignored_field_may_differ(recorded, name):
  config, data, workdir = recorded
  other = config.copy_and_resolve_references()
  _set(other, name, _changed(run_record.flatten(config.to_dict())[name]))
  assert run_record.check(other, data, workdir) == []
