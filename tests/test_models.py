import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax import models
from memjax.errors import InputError


def _inputs(batch=5):
  rng = np.random.default_rng(0)
  return {
    'cnn': jnp.asarray(rng.uniform(size=(batch, 64)), jnp.float32),
    'semantic': jnp.asarray(rng.normal(size=(batch, 32)), jnp.float32),
  }


@pytest.mark.parametrize('features', [('cnn',), ('semantic',), ('cnn', 'semantic')])
def test_fusion_mlp_shapes_for_any_feature_subset(test_config, features):
  test_config.features = features
  model = models.create_model(test_config)
  params = model.init(jax.random.PRNGKey(0), _inputs(), train=False)['params']
  assert model.apply({'params': params}, _inputs(), train=False).shape == (5, 4)
  assert set(params) == {f'{f}_0' for f in features} | {'fusion_0', 'head'}
  width = sum(test_config.model.branch_units[f][0] for f in features)
  assert params['fusion_0']['kernel'].shape == (width, 8)


def test_regression_head_gives_scores_in_unit_interval(test_config):
  test_config.model.head = 'regression'
  model = models.create_model(test_config)
  params = model.init(jax.random.PRNGKey(0), _inputs(), train=False)
  out = model.apply(params, _inputs(), train=False)
  assert out.shape == (5,) and bool(jnp.all((out > 0) & (out < 1)))


def test_dropout_only_in_training(test_config):
  test_config.model.activation = 'tanh'
  model = models.create_model(test_config)
  params = model.init(jax.random.PRNGKey(0), _inputs(), train=False)
  a = model.apply(params, _inputs(), train=False)
  np.testing.assert_array_equal(a, model.apply(params, _inputs(), train=False))
  b = model.apply(params, _inputs(), train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  assert not np.allclose(a, b)


def test_bad_model_config(test_config):
  test_config.model.activation = 'gelu'
  with pytest.raises(InputError, match='activation'):
    models.create_model(test_config)
