"""Every choice of the config runs end to end, and its effect is recomputed independently.

Three tiny runs on synthetic features share the choices between them (`RUNS`). Each trains one
fold for 3 epochs of exactly one full-batch step (batch = every training row, so the step's
gradient does not depend on the row order), keeping all three checkpoints. For each run the test
* recomputes the steps 1 -> 2 and 2 -> 3 by hand: the gradient by NumPy backpropagation through
  the MLP (activation, head, ensemble members), the optimiser's update from its stored state and
  the schedule's learning rate at that step, all from their published formulas;
* re-scores the fold (best step from the stored validation metrics, NumPy forward, NumPy
  thresholds and s_k, SciPy Spearman) against its eval.json;
* checks what each run-time option changed (rows on the device or not, the XLA options, the fold
  seed's rows).

`COVERAGE` maps every choice the schema declares (memjax/schema/fields.py FIELDS, read fresh) to
the tests that run it; `test_every_choice_has_an_end_to_end_test` fails for a choice without one.
"""

import math
import os

import jax
import numpy as np
import numpy_mlp
import pytest
from scipy import stats

from memjax import checkpointing, datasets, device_table, fold_data, folds, train
from memjax.runtime import xla_options
from memjax.schema.fields import FIELDS
from memjax.schema.rules import Entries, Seq

RUNS = {
  'adam': dict(
    optimizer='adam',
    schedule='constant',
    activation='relu',
    head='classification',
    device_resident='on',
    fusions='auto',
    ensemble_size=1,
    fold_seeds=(),
    run_fold=0,
  ),
  'rmsprop': dict(
    optimizer='rmsprop',
    schedule='cosine',
    activation='tanh',
    head='regression',
    device_resident='off',
    fusions='off',
    ensemble_size=1,
    fold_seeds=(),
    run_fold=0,
  ),
  'sgd': dict(
    optimizer='sgd',
    schedule='warmup_cosine',
    activation='relu',
    head='classification',
    device_resident='auto',
    fusions='on',
    ensemble_size=2,
    fold_seeds=(3, 5),
    run_fold=2,  # seed5_fold_0
    learning_rate=0.5,  # plain momentum SGD moves slowly; the validation ranks must change
  ),
}
EPOCHS = 3  # one step each: checkpoints at steps 1, 2, 3
LR = 0.05
WARMUP_EPOCHS = 2.0


def _config(spec: dict):
  from configs import test as test_cfg

  config = test_cfg.get_config()
  config.data.synthetic.num_examples = 160
  config.data.synthetic.cnn_dim = 12
  config.data.synthetic.semantic_dim = 6
  config.data.val_fraction = 0.25
  config.data.num_folds = 2
  config.data.fold_seeds = spec['fold_seeds']
  config.data.run_folds = (spec['run_fold'],)
  config.data.device_resident = spec['device_resident']
  config.cpu_library_fusions = spec['fusions']
  config.model.branch_units.cnn = (6,)
  config.model.branch_units.semantic = (5,)
  config.model.hidden_units = (4,)
  config.model.dropout = 0.0
  config.model.activation = spec['activation']
  config.model.head = spec['head']
  config.model.ensemble_size = spec['ensemble_size']
  config.optimizer.name = spec['optimizer']
  config.optimizer.schedule = spec['schedule']
  config.optimizer.warmup_epochs = WARMUP_EPOCHS
  config.optimizer.learning_rate = spec.get('learning_rate', LR)
  config.num_epochs = EPOCHS
  config.steps_per_call = 1
  config.eval_batch_size = 16
  data = datasets.load(config)
  plan = fold_data.plan_folds(config, data)[spec['run_fold']]
  config.batch_size = int(plan.split.train.size)  # one full-batch step per epoch
  return config, data, plan


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """name -> (config, data, plan, workdir, summary, calls): `calls` records the options the run
  asked XLA for and whether it put its rows on the devices."""
  out = {}
  root = tmp_path_factory.mktemp('options')
  for name, spec in RUNS.items():
    config, data, plan = _config(spec)
    calls = {'compiler_options': [], 'device_put': 0}
    real_options, real_put = xla_options.compiler_options, device_table.put

    def options(function, setting='auto', real=real_options, calls=calls):
      got = real(function, setting)
      calls['compiler_options'].append((function, setting, got))
      return got

    def put(*args, real=real_put, calls=calls, **kwargs):
      calls['device_put'] += 1
      return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
      mp.setattr(checkpointing, 'KEEP_LATEST', EPOCHS)
      mp.setattr(xla_options, 'compiler_options', options)
      mp.setattr(device_table, 'put', put)
      workdir = str(root / name)
      summary = train.train_and_evaluate(config, workdir)
    out[name] = (config, data, plan, workdir, summary, calls)
  return out


def _fold_dir(workdir: str, spec: dict) -> str:
  return os.path.join(workdir, f'fold_{spec["run_fold"]}')


def _lr(schedule: str, peak: float, t: int, total: int) -> float:
  """The learning rate of the update applied at step t (optax counts updates from 0)."""
  if schedule == 'constant':
    return peak
  if schedule == 'cosine':
    return peak * 0.5 * (1 + math.cos(math.pi * t / total))
  warmup = int(WARMUP_EPOCHS)  # one step per epoch
  if t < warmup:
    return peak * t / warmup
  return peak * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


def _members(params: dict, size: int) -> list[dict]:
  if size == 1:
    return [params]
  return [jax.tree.map(lambda a, m=m: a[m], params['members']) for m in range(size)]


def _gradient(config, params, x: dict, target) -> dict:
  """d(mean over members of the mean loss)/d(params), by hand."""
  size = config.model.ensemble_size
  grads = []
  for member in _members(params, size):
    _, g = numpy_mlp.loss_and_grads(
      member, x, target, config.features, config.model.activation, config.model.head
    )
    grads.append(jax.tree.map(lambda a: a / size, g))
  if size == 1:
    return grads[0]
  return {'members': jax.tree.map(lambda *a: np.stack(a), *grads)}


def _find(opt_state, key: str):
  """The part of a stored optax state holding `key` (mu, nu, trace)."""
  if isinstance(opt_state, dict):
    if key in opt_state:
      return opt_state[key]
    values = opt_state.values()
  elif isinstance(opt_state, (list, tuple)):
    values = opt_state
  else:
    return None
  for v in values:
    found = _find(v, key)
    if found is not None:
      return found
  return None


def _update(config, p, g, opt_state, t: int, total: int) -> dict:
  """The parameters after the update at step t, from the published update rules."""
  lr = _lr(config.optimizer.schedule, config.optimizer.learning_rate, t, total)
  name = config.optimizer.name
  if name == 'adam':  # Kingma & Ba, with optax's defaults b1=0.9, b2=0.999, eps=1e-8
    b1, b2, c = 0.9, 0.999, t + 1
    mu = jax.tree.map(lambda m, gg: b1 * m + (1 - b1) * gg, _find(opt_state, 'mu'), g)
    nu = jax.tree.map(lambda v, gg: b2 * v + (1 - b2) * gg**2, _find(opt_state, 'nu'), g)
    step = jax.tree.map(lambda m, v: (m / (1 - b1**c)) / (np.sqrt(v / (1 - b2**c)) + 1e-8), mu, nu)
  elif name == 'rmsprop':  # optax: eps inside the square root, no bias correction
    d, eps = config.optimizer.rmsprop_decay, config.optimizer.eps
    nu = jax.tree.map(lambda v, gg: d * v + (1 - d) * gg**2, _find(opt_state, 'nu'), g)
    step = jax.tree.map(lambda gg, v: gg / np.sqrt(v + eps), g, nu)
  else:  # heavy-ball momentum: trace = g + m * trace
    m = config.optimizer.momentum
    step = jax.tree.map(lambda tr, gg: gg + m * tr, _find(opt_state, 'trace'), g)
  return jax.tree.map(lambda a, s: a - lr * s, p, step)


def _rows(data, plan):
  scores = plan.scores
  cuts = numpy_mlp.thresholds(scores[plan.split.train], 4)
  return scores, cuts


@pytest.mark.parametrize('name', list(RUNS))
def test_each_step_is_the_hand_computed_update(runs, name):
  config, data, plan, workdir, _, _ = runs[name]
  fold_dir = _fold_dir(workdir, RUNS[name])
  assert numpy_mlp.checkpoint_steps(fold_dir) == [1, 2, 3]
  rows = plan.split.train
  x = {n: np.asarray(data.features[n][rows], np.float32) for n in config.features}
  scores, cuts = _rows(data, plan)
  target = (
    scores[rows] if config.model.head == 'regression' else numpy_mlp.classes(scores[rows], cuts)
  )
  for t in (1, 2):
    p = numpy_mlp.checkpoint_params(fold_dir, t)
    state = numpy_mlp.checkpoint_params(fold_dir, t, 'train')
    assert int(state['step']) == t
    want = _update(config, p, _gradient(config, p, x, target), state['opt_state'], t, EPOCHS)
    got = numpy_mlp.checkpoint_params(fold_dir, t + 1)
    moved = max(
      np.max(np.abs(a - b)) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p), strict=True)
    )
    assert moved > 1e-3 * LR, (name, t)  # the step did change the parameters
    for path, a in jax.tree_util.tree_leaves_with_path(got):
      b = want
      for k in path:
        b = b[k.key]
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=f'{name} t={t} {path}')


@pytest.mark.parametrize('name', list(RUNS))
def test_eval_json_is_rescored_independently(runs, name):
  config, data, plan, workdir, summary, _ = runs[name]
  fold_dir = _fold_dir(workdir, RUNS[name])
  steps = numpy_mlp.checkpoint_steps(fold_dir)
  val = {s: numpy_mlp.checkpoint_meta(fold_dir, s)['val']['spearman'] for s in steps}
  best = max(val, key=val.get)
  assert sorted(val.values())[-2] < val[best], val  # a tie would leave the best step open
  scores, cuts = _rows(data, plan)
  values = numpy_mlp.score_values(scores[plan.split.train], cuts, config.score_values)
  test = plan.split.test
  x = {n: np.asarray(data.features[n][test], np.float32) for n in config.features}
  params = numpy_mlp.checkpoint_params(fold_dir, best)
  outs = [
    numpy_mlp.forward(m, x, config.features, config.model.activation)
    for m in _members(params, config.model.ensemble_size)
  ]
  if config.model.head == 'regression':
    m = np.mean(outs, axis=0)
  else:
    m = np.mean([numpy_mlp.softmax(o) for o in outs], axis=0) @ values
  (result,) = summary['folds']
  assert result['checkpoint_step'] == best
  if config.model.head == 'regression':  # no classes to report
    assert not {'thresholds', 'score_values', 'accuracy'} & set(result)
  else:
    np.testing.assert_allclose(result['thresholds'], cuts, atol=1e-12)
    np.testing.assert_allclose(result['score_values'], values, atol=1e-12)
  assert result['spearman'] == pytest.approx(stats.spearmanr(m, scores[test]).statistic, abs=1e-4)
  assert result['mse'] == pytest.approx(np.mean((m - scores[test]) ** 2), rel=1e-4)


def test_device_resident_rows_follow_the_option(runs):
  puts = {name: runs[name][5]['device_put'] for name in RUNS}
  # 'auto' puts these few rows on the device: they fit any budget.
  assert puts == {'adam': 1, 'rmsprop': 0, 'sgd': 1}


def test_xla_options_follow_cpu_library_fusions(runs):
  off = {'xla_cpu_experimental_ynn_fusion_type': ''}  # XLA's flag: no YNNPACK fusions
  expected = {'auto': off, 'off': off, 'on': {}}  # 'auto' is off for train and eval on CPU
  for name, spec in RUNS.items():
    calls = runs[name][5]['compiler_options']
    functions = {f for f, _, _ in calls}
    assert {'train', 'eval'} <= functions, name
    for _, setting, got in calls:
      assert setting == spec['fusions'] and got == expected[setting], (name, setting, got)


def test_fold_seeds_choose_the_rows_of_their_seed(runs):
  config, data, plan, _, summary, _ = runs['sgd']
  (result,) = summary['folds']
  assert result['name'] == plan.name == 'seed5_fold_0'
  ids = data.ids
  fold_of = folds.assign_folds(ids, 2, 5)
  split = folds.split_fold(ids, fold_of, 0, config.data.val_fraction, 5)
  np.testing.assert_array_equal(np.sort(plan.split.test), np.sort(split.test))
  train_scores = data.scores[split.train]
  np.testing.assert_allclose(result['thresholds'], numpy_mlp.thresholds(train_scores, 4))
  other = folds.split_fold(ids, folds.assign_folds(ids, 2, 3), 0, config.data.val_fraction, 3)
  assert not np.array_equal(np.sort(other.test), np.sort(split.test))  # the seed matters


def test_ensemble_members_are_trained_apart(runs):
  config, _, _, workdir, _, _ = runs['sgd']
  params = numpy_mlp.checkpoint_params(_fold_dir(workdir, RUNS['sgd']), EPOCHS)
  for leaf in jax.tree.leaves(params):
    assert leaf.shape[0] == config.model.ensemble_size
    assert not np.allclose(leaf[0], leaf[1])  # own initialisation per member


@pytest.mark.parametrize('dtype', ['float16', 'float32'])
def test_extract_dtype_stores_the_features_in_that_dtype(test_config, tmp_path, dtype):
  """Colour-grid features of square files (no resize), stored in `extract.dtype`, equal the
  NumPy feature rounded to that dtype."""
  from PIL import Image

  from memjax import extract
  from memjax.features import store

  rng = np.random.default_rng(1)
  root = tmp_path / 'images'
  os.makedirs(root)
  with open(root / 'scores.csv', 'w') as f:
    f.write('image,score\n')
    for i in range(6):
      Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(root / f'{i}.png')
      f.write(f'{i}.png,{rng.uniform():.3f}\n')
  config = test_config
  config.data.name, config.data.dir = 'image_folder', str(root)
  config.data.features_dir = str(tmp_path / 'store')
  config.features, config.extract.batch_size, config.extract.dtype = ('color_grid',), 4, dtype
  extract.extract(config, str(tmp_path))
  ids, features, _ = store.read_store(config.data.features_dir)
  stored = np.asarray(features['color_grid'])
  assert stored.dtype == np.dtype(dtype)
  want = np.stack([numpy_mlp.color_grid(str(root / i)) for i in ids])
  # float16 keeps 11 significant bits: half a unit in the last place below 1 is 2.4e-4
  tolerance = {'float16': 2.5e-4, 'float32': 1e-6}[dtype]
  np.testing.assert_allclose(stored.astype(np.float64), want, rtol=0, atol=tolerance)


# Every choice of the schema -> the tests that run it end to end and check a value it decides.
# A choice marked `unit:` is covered below the end-to-end level only (the note says why).
_HERE = 'tests/test_options_end_to_end.py'
_RESCORING = 'tests/test_rescoring.py'
_STEP = f'{_HERE}::test_each_step_is_the_hand_computed_update'
_EVAL = f'{_HERE}::test_eval_json_is_rescored_independently'
COVERAGE = {
  ('score_values', 'upper_threshold'): [
    f'{_RESCORING}::test_eval_json_is_the_best_checkpoint_rescored_independently'
  ],
  ('score_values', 'class_mean'): [
    f'{_RESCORING}::test_eval_json_is_the_best_checkpoint_rescored_independently'
  ],
  ('cpu_library_fusions', 'auto'): [f'{_HERE}::test_xla_options_follow_cpu_library_fusions', _STEP],
  ('cpu_library_fusions', 'on'): [f'{_HERE}::test_xla_options_follow_cpu_library_fusions', _STEP],
  ('cpu_library_fusions', 'off'): [f'{_HERE}::test_xla_options_follow_cpu_library_fusions', _STEP],
  ('data.name', 'synthetic'): [_STEP, _EVAL],
  ('data.name', 'lamem'): ['tests/test_lamem.py::test_official_protocol_end_to_end'],
  ('data.name', 'image_folder'): [
    f'{_RESCORING}::test_eval_json_is_the_best_checkpoint_rescored_independently'
  ],
  ('data.device_resident', 'auto'): [
    f'{_HERE}::test_device_resident_rows_follow_the_option',
    _STEP,
  ],
  ('data.device_resident', 'on'): [f'{_HERE}::test_device_resident_rows_follow_the_option', _STEP],
  ('data.device_resident', 'off'): [f'{_HERE}::test_device_resident_rows_follow_the_option', _STEP],
  ('data.protocol', 'cv5'): [_EVAL],
  ('data.protocol', 'official'): ['tests/test_lamem.py::test_official_protocol_end_to_end'],
  ('model.head', 'classification'): [_STEP, _EVAL],
  ('model.head', 'regression'): [_STEP, _EVAL],
  ('model.activation', 'relu'): [_STEP, _EVAL],
  ('model.activation', 'tanh'): [_STEP, _EVAL],
  ('optimizer.name', 'adam'): [_STEP],
  ('optimizer.name', 'rmsprop'): [_STEP],
  ('optimizer.name', 'sgd'): [_STEP],
  ('optimizer.schedule', 'constant'): [_STEP],
  ('optimizer.schedule', 'cosine'): [_STEP],
  ('optimizer.schedule', 'warmup_cosine'): [_STEP],
  ('extractors.*.dtype', 'float32'): ['tests/test_vit.py::test_extract_end_to_end'],
  ('extractors.*.dtype', 'bfloat16'): [
    'tests/test_backbone_options.py::test_lite_bfloat16_computes_in_bfloat16_and_returns_close_float32',
    'tests/test_vit.py::test_pool_depths_and_bfloat16',
  ],
  ('finetune.mode', 'none'): [_STEP],
  ('finetune.mode', 'last'): [
    'tests/test_finetune.py::test_evaluate_and_predict_restore_the_fine_tuned_backbone'
  ],
  ('finetune.mode', 'lora'): [
    'tests/test_finetune.py::test_lora_adds_r_times_in_plus_out_per_kernel_and_starts_as_the_frozen_network'
  ],
  # unit: which parameters 'all' trains is checked on the plan; a full-backbone run is the
  # 'last' run with every block, too slow to add on two cores.
  ('finetune.mode', 'all'): [
    'tests/test_finetune.py::test_last_blocks_train_the_last_blocks_and_what_reads_after_them'
  ],
  ('extract.dtype', 'float16'): [f'{_HERE}::test_extract_dtype_stores_the_features_in_that_dtype'],
  ('extract.dtype', 'float32'): [f'{_HERE}::test_extract_dtype_stores_the_features_in_that_dtype'],
  ('extract.on_error', 'skip'): [
    'tests/test_extract_predict.py::test_extract_skips_bad_images_and_resumes_after_a_crash'
  ],
  ('extract.on_error', 'stop'): [
    'tests/test_extract_predict.py::test_extract_can_stop_on_the_first_bad_image'
  ],
  ('predict.on_error', 'skip'): ['tests/test_bad_input.py::test_bad_input'],
  ('predict.on_error', 'stop'): ['tests/test_bad_input.py::test_bad_input'],
  **{
    ('baseline.method', m): [
      'tests/test_baselines.py::test_finite_spearman_on_exactly_the_mlp_folds'
    ]
    for m in ('svr', 'ridge', 'ridge_cv', 'knn', 'tree')
  },
  ('baseline.approximation', 'nystroem'): [
    'tests/test_baselines.py::test_finite_spearman_on_exactly_the_mlp_folds'
  ],
  ('baseline.approximation', 'none'): [
    'tests/test_baselines.py::test_exact_svr_and_ridge_are_scikit_learns_own'
  ],
  # A search trial is a training run with the sampled value: the runs above check each value.
  ('search.activations[]', 'relu'): [
    _STEP,
    'tests/test_search.py::test_search_space_maps_onto_the_config',
  ],
  ('search.activations[]', 'tanh'): [
    _STEP,
    'tests/test_search.py::test_search_space_maps_onto_the_config',
  ],
  **{
    ('search.optimizers[]', o): [
      _STEP,
      'tests/test_search.py::test_search_space_maps_onto_the_config',
    ]
    for o in ('adam', 'rmsprop', 'sgd')
  },
  # Options that are not a `choices` rule but choose what runs (the list).
  ('eval.checkpoint', 'best'): [f'{_RESCORING}::test_evaluate_mode_rescores_the_best_checkpoint'],
  ('eval.checkpoint', 'latest'): [
    f'{_RESCORING}::test_evaluate_mode_latest_checkpoint_is_the_latest'
  ],
  ('eval.checkpoint', '<step>'): [f'{_RESCORING}::test_evaluate_mode_scores_a_named_step'],
  ('model.ensemble_size', '>1'): [
    _STEP,
    _EVAL,
    f'{_HERE}::test_ensemble_members_are_trained_apart',
  ],
  ('data.fold_seeds', 'several'): [
    f'{_HERE}::test_fold_seeds_choose_the_rows_of_their_seed',
    _STEP,
  ],
}
EXTRA_OPTIONS = {
  ('eval.checkpoint', 'best'),
  ('eval.checkpoint', 'latest'),
  ('eval.checkpoint', '<step>'),
  ('model.ensemble_size', '>1'),
  ('data.fold_seeds', 'several'),
}


def schema_choices() -> set:
  """(field, choice) of every rule with `choices` in the schema's FIELDS: plain fields, the
  items of sequences (`field[]`) and the fields of open entries (`field.*.name`)."""
  found = set()

  def add(path, rule):
    if getattr(rule, 'choices', None) is not None:
      found.update((path, c) for c in rule.choices)

  for path, rule in FIELDS.items():
    add(path, rule)
    if isinstance(rule, Seq) and rule.item is not None:
      add(f'{path}[]', rule.item)
    if isinstance(rule, Entries) and rule.fields:
      for field, sub in rule.fields.items():
        add(f'{path}.*.{field}', sub)
  return found


def _test_exists(node: str) -> bool:
  import ast

  path, name = node.split('::')
  with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), path)) as f:
    tree = ast.parse(f.read())
  return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def test_every_choice_has_an_end_to_end_test():
  wanted = schema_choices() | EXTRA_OPTIONS
  assert ('model.head', 'regression') in wanted and len(wanted) > 40  # the reader works
  missing = sorted(wanted - set(COVERAGE))
  assert not missing, f'choices without a test in COVERAGE: {missing}'
  stale = sorted(set(COVERAGE) - wanted)
  assert not stale, f'COVERAGE lists choices the schema no longer has: {stale}'
  absent = sorted({n for nodes in COVERAGE.values() for n in nodes if not _test_exists(n)})
  assert not absent, f'COVERAGE names tests that do not exist: {absent}'
