"""The real eval and train steps on a model with fixed logits, against hand-computed numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from memjax import fold_consts, models, parallel, steps, train_state
from memjax.models import FusionMLP

K = 4
LOGITS = np.array(
  [[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0], [-1.0, 0.5, 0.5, 2.0], [9.0, 9.0, 9.0, 9.0]],
  np.float32,
)
LABELS = np.array([0, 1, 3, 2], np.int32)
MASK = np.array([1.0, 1.0, 1.0, 0.0], np.float32)  # the last row is padding
VALUES = np.array([0.6, 0.7, 0.8, 1.0], np.float32)
THRESHOLDS = np.array([0.65, 0.75, 0.9], np.float32)


def _identity_model(head: str = 'classification'):
  """A model whose output is its input (classification) or sigmoid(sum of input)."""
  model = FusionMLP(
    features=('x',),
    branch_units={'x': ()},
    hidden_units=(),
    num_outputs=K,
    dropout_rate=0.0,
    activation='relu',
    head=head,
  )
  outputs = K if head == 'classification' else 1
  kernel = np.eye(K, outputs, dtype=np.float32) if outputs == K else np.ones((K, 1), np.float32)
  params = {'head': {'kernel': kernel, 'bias': np.zeros(outputs, np.float32)}}
  return model, params


def _consts():
  return fold_consts.host_consts(THRESHOLDS, VALUES, {'x': np.zeros(K)}, {'x': np.ones(K)})


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_eval_step_on_fixed_logits_matches_hand_computed_numbers():
  model, params = _identity_model()
  batch = {'x': LOGITS, 'label': LABELS, 'score': np.zeros(4, np.float32), 'mask': MASK}
  preds, sums = jax.jit(lambda p, b, c: steps.eval_step(p, b, c, {}, model=model))(
    params, batch, _consts()
  )
  probs = _softmax(LOGITS.astype(np.float64))
  np.testing.assert_allclose(preds['probs'], probs, rtol=1e-6)
  np.testing.assert_allclose(preds['score'], probs @ VALUES, rtol=1e-6)
  assert preds['score'][3] == pytest.approx(VALUES.mean(), rel=1e-6)  # uniform probabilities
  np.testing.assert_array_equal(preds['class'], [0, 2, 3, 0])  # argmax; ties -> first
  nll = -np.log(probs[np.arange(4), LABELS])
  assert float(sums['loss']) == pytest.approx(nll[:3].sum(), rel=1e-6)
  assert float(sums['count']) == 3.0
  assert set(sums) == {'loss', 'count'}  # accuracy is computed on the host


def test_eval_step_regression_head_scores_and_classes():
  model, params = _identity_model('regression')
  score = np.array([0.9, 0.5, 0.7, 0.1], np.float32)
  batch = {'x': LOGITS, 'label': LABELS, 'score': score, 'mask': MASK}
  preds, sums = steps.eval_step(params, batch, _consts(), {}, model=model)
  expected = 1.0 / (1.0 + np.exp(-LOGITS.astype(np.float64).sum(-1)))
  np.testing.assert_allclose(preds['score'], expected, rtol=1e-6)
  np.testing.assert_array_equal(preds['class'], np.searchsorted(THRESHOLDS, expected, 'left'))
  assert 'probs' not in preds
  assert float(sums['loss']) == pytest.approx(((expected - score) ** 2)[:3].sum(), rel=1e-5)


def test_standardisation_constants_shift_and_scale_the_inputs():
  model, params = _identity_model()
  shift, scale = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.5, 1.0, 2.0, 4.0])
  consts = fold_consts.host_consts(THRESHOLDS, VALUES, {'x': shift}, {'x': scale})
  batch = {'x': LOGITS, 'label': LABELS, 'score': np.zeros(4, np.float32), 'mask': MASK}
  preds, _ = steps.eval_step(params, batch, consts, {}, model=model)
  np.testing.assert_allclose(preds['probs'], _softmax((LOGITS - shift) * scale), rtol=1e-5)


def test_soft_targets_move_mass_to_neighbouring_classes():
  targets = np.asarray(steps.soft_targets(jnp.array([0, 1, 3]), K, 0.2))
  np.testing.assert_allclose(
    targets, [[0.8, 0.2, 0.0, 0.0], [0.1, 0.8, 0.1, 0.0], [0.0, 0.0, 0.2, 0.8]], atol=1e-7
  )
  np.testing.assert_allclose(steps.soft_targets(jnp.array([2]), K, 0.0), [[0, 0, 1, 0]])


def test_train_step_with_smoothing_and_ema_against_hand_computed_update():
  model, params = _identity_model()
  tx = optax.sgd(0.5)
  mesh = parallel.make_mesh()
  state = train_state.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    dropout_key=jax.random.PRNGKey(0),
    ema_params=params,
  )
  batch = {'x': LOGITS, 'label': LABELS, 'score': np.zeros(4, np.float32)}
  recipe = steps.Recipe(label_smoothing=0.2, ema_decay=0.9)
  fn = steps.jit_train_steps(model, tx, mesh, scan=False, recipe=recipe)
  new, sums = fn(
    parallel.replicate(state, mesh),
    parallel.to_global(batch, mesh, 0),
    parallel.replicate(_consts(), mesh),
    {},
  )
  targets = np.asarray(steps.soft_targets(jnp.asarray(LABELS), K, 0.2))
  probs = _softmax(LOGITS.astype(np.float64))
  assert float(sums['loss']) == pytest.approx(-(targets * np.log(probs)).sum(), rel=1e-5)
  grad_logits = (probs - targets) / 4  # d mean CE / d logits
  kernel = np.eye(K) - 0.5 * LOGITS.T.astype(np.float64) @ grad_logits
  np.testing.assert_allclose(new.params['head']['kernel'], kernel, rtol=1e-5, atol=1e-6)
  ema = 0.9 * np.eye(K) + 0.1 * kernel  # the average starts at the initial parameters
  np.testing.assert_allclose(new.ema_params['head']['kernel'], ema, rtol=1e-5, atol=1e-6)
  assert int(new.step) == 1 and int(sums['count']) == 4


def test_an_ensemble_averages_its_members_probabilities_and_losses(test_config):
  test_config.model.ensemble_size = 3
  ensemble = models.create_model(test_config)
  test_config.model.ensemble_size = 1
  single = models.create_model(test_config)
  rng = np.random.default_rng(0)
  batch = {
    'cnn': rng.normal(size=(5, 64)).astype(np.float32),
    'semantic': rng.normal(size=(5, 32)).astype(np.float32),
    'label': np.array([0, 1, 2, 3, 1], np.int32),
    'score': np.zeros(5, np.float32),
    'mask': np.ones(5, np.float32),
  }
  params = train_state.init_params(ensemble, {'cnn': 64, 'semantic': 32}, jax.random.PRNGKey(0))
  assert jax.tree.leaves(params)[0].shape[0] == 3
  dims = {'cnn': 64, 'semantic': 32}
  consts = fold_consts.host_consts(
    THRESHOLDS,
    VALUES,
    {n: np.zeros(d) for n, d in dims.items()},
    {n: np.ones(d) for n, d in dims.items()},
  )
  preds, sums = steps.eval_step(params, batch, consts, {}, model=ensemble)
  members = [jax.tree.map(lambda p, i=i: p[i], params['members']) for i in range(3)]
  inputs = {n: batch[n] for n in dims}
  probs = [_softmax(np.asarray(single.apply({'params': m}, inputs, train=False))) for m in members]
  mean = np.mean(probs, axis=0)
  np.testing.assert_allclose(preds['probs'], mean, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(preds['score'], mean @ VALUES, rtol=1e-5)
  nll = np.mean([-np.log(p[np.arange(5), batch['label']]) for p in probs], axis=0)
  assert float(sums['loss']) == pytest.approx(nll.sum(), rel=1e-5)
  assert len({round(float(p[0, 0]), 6) for p in probs}) == 3  # members differ


def test_standardisation_uses_the_training_rows_only(test_config):
  from memjax import datasets, fold_data

  rng = np.random.default_rng(0)
  table = rng.normal(3.0, 2.0, size=(50, 6)).astype(np.float16)
  table[:, 5] = 7.0  # constant on the training rows: scale stays 1
  data = datasets.MemorabilityData(
    name='x',
    ids=np.array([f'{i}' for i in range(50)]),
    features={'cnn': table},
    scores=rng.uniform(size=50),
    synthetic=True,
    ceiling=None,
    description='x',
  )
  test_config.features = ('cnn',)
  train_rows = np.arange(0, 50, 2)[::-1]  # any order; read in chunks
  shift, scale = fold_data.standardization(test_config, data, train_rows)
  x = table[np.sort(train_rows)].astype(np.float64)
  np.testing.assert_allclose(shift['cnn'], x.mean(0), rtol=1e-9)
  np.testing.assert_allclose(scale['cnn'][:5], 1.0 / x[:, :5].std(0), rtol=1e-6)
  assert scale['cnn'][5] == 1.0
