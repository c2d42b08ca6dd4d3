import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from memjax import checkpointing, models, optimizers, parallel, steps
from memjax.errors import InputError


def _state(config, mesh, seed):
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 10, 10)
  dims = {'cnn': 64, 'semantic': 32}
  key = parallel.replicate(jax.random.PRNGKey(seed), mesh)
  return steps.create_state(model, tx, dims, key, mesh), steps.abstract_state(model, tx, dims, mesh)


def test_round_trip_keeps_latest_and_best_and_reshards_to_one_device(test_config, tmp_path):
  four = parallel.make_mesh()
  mngr = checkpointing.manager(str(tmp_path / 'ckpt'))
  saved = {}
  for step, val in [(10, 0.3), (20, 0.5), (30, 0.4), (40, 0.2)]:
    state, _ = _state(test_config, four, seed=step)
    state = state.replace(step=state.step + step)
    checkpointing.save(
      mngr,
      step,
      state,
      {'epoch': step // 10, 'thresholds': [0.5]},
      {checkpointing.BEST_METRIC: val},
    )
    saved[step] = jax.device_get(state.params)
  assert mngr.all_steps() == [20, 40]  # best (0.5) and latest
  assert checkpointing.select_step(mngr, 'best') == 20
  assert checkpointing.select_step(mngr, 'latest') == 40
  assert checkpointing.select_step(mngr, '40') == 40
  with pytest.raises(InputError, match='expected best, latest or one of the steps'):
    checkpointing.select_step(mngr, '30')
  mngr.close()

  one = Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))
  _, abstract = _state(test_config, one, seed=0)
  reader = checkpointing.manager(str(tmp_path / 'ckpt'), read_only=True)
  restored, meta = checkpointing.restore(reader, 20, abstract)
  assert meta == {'epoch': 2, 'thresholds': [0.5]}
  assert int(restored.step) == 20
  leaf = jax.tree.leaves(restored.params)[0]
  assert leaf.sharding.device_set == {jax.devices()[0]}
  jax.tree.map(np.testing.assert_array_equal, saved[20], jax.device_get(restored.params))


def test_no_checkpoint_is_a_clear_error(tmp_path):
  mngr = checkpointing.manager(str(tmp_path / 'empty'))
  with pytest.raises(InputError, match='no checkpoint in'):
    checkpointing.select_step(mngr, 'best')
