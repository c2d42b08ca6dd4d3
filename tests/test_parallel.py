"""Data parallelism on 4 simulated CPU devices against 1 device, and scan against a loop."""

import jax
import numpy as np
from jax.sharding import Mesh

from memjax import fold_consts, models, optimizers, parallel, steps, train_state


def _setup(config, mesh):
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 100, 10)
  dims = {'cnn': 64, 'semantic': 32}
  keys = [parallel.replicate(jax.random.PRNGKey(k), mesh) for k in (0, 1)]
  state = train_state.jit_create_state(model, tx, dims, mesh)(*keys)
  consts = parallel.replicate(
    fold_consts.host_consts(
      [0.68, 0.77, 0.85],
      [0.68, 0.77, 0.85, 1.0],
      {n: np.zeros(d) for n, d in dims.items()},
      {n: np.ones(d) for n, d in dims.items()},
    ),
    mesh,
  )
  return model, tx, state, consts


def _batches(num_steps, batch=16):
  rng = np.random.default_rng(0)
  score = rng.uniform(size=(num_steps, batch)).astype(np.float32)
  return {
    'cnn': rng.uniform(size=(num_steps, batch, 64)).astype(np.float32),
    'semantic': rng.normal(size=(num_steps, batch, 32)).astype(np.float32),
    'score': score,
    'label': np.searchsorted([0.68, 0.77, 0.85], score).astype(np.int32),
  }


def _params(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def test_four_devices_match_one_device(test_config):
  assert jax.device_count() == 4
  one = Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))
  four = parallel.make_mesh()
  batches = _batches(3)
  results = []
  for mesh in (one, four):
    model, tx, state, consts = _setup(test_config, mesh)
    step = steps.jit_train_steps(model, tx, mesh, scan=False)
    for t in range(3):
      batch = parallel.to_global({k: v[t] for k, v in batches.items()}, mesh, 0)
      assert len(batch['cnn'].sharding.device_set) == mesh.devices.size
      state, metrics = step(state, batch, consts, {})
    assert int(state.step) == 3
    results.append((_params(state), jax.device_get(metrics)))
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), results[0][0], results[1][0]
  )
  np.testing.assert_allclose(results[0][1]['loss'], results[1][1]['loss'], rtol=1e-5)


def test_scan_matches_steps_one_by_one(test_config):
  mesh = parallel.make_mesh()
  batches = _batches(4)
  model, tx, state, consts = _setup(test_config, mesh)
  single = steps.jit_train_steps(model, tx, mesh, scan=False)
  loss = 0.0
  for t in range(4):
    state, m = single(
      state, parallel.to_global({k: v[t] for k, v in batches.items()}, mesh, 0), consts, {}
    )
    loss += float(m['loss'])
  looped = _params(state)
  _, _, state, _ = _setup(test_config, mesh)
  scanned = steps.jit_train_steps(model, tx, mesh)
  state, m = scanned(state, parallel.to_global(batches, mesh, 1), consts, {})
  assert int(state.step) == 4 and int(m['count']) == 64
  np.testing.assert_allclose(float(m['loss']), loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), looped, _params(state))
