"""Checkpoint items, the one restore path, metadata checks and damaged checkpoints."""

import os
import shutil

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from memjax import (
  checkpoint_files,
  checkpoint_meta,
  checkpointing,
  models,
  optimizers,
  parallel,
  train_state,
)
from memjax.errors import InputError

DIMS = {'cnn': 64, 'semantic': 32}


def _state(config, mesh, seed, *, ema=False):
  model = models.create_model(config)
  tx = optimizers.create_optimizer(config.optimizer, 10, 10)
  keys = [parallel.replicate(jax.random.PRNGKey(seed + k), mesh) for k in (0, 1)]
  state = train_state.jit_create_state(model, tx, DIMS, mesh, ema=ema)(*keys)
  return state, train_state.abstract_state(model, tx, DIMS, mesh, ema=ema), model


def _save_run(config, directory, mesh, points, *, ema=False):
  """Saves a checkpoint per (step, val) with distinct parameters; returns them by step."""
  mngr = checkpointing.manager(directory)
  meta = checkpoint_meta.run_meta(config, DIMS)
  saved = {}
  for step, val in points:
    state, _, _ = _state(config, mesh, seed=step, ema=ema)
    if ema:
      state = state.replace(ema_params=jax.tree.map(lambda p: p + 1.0, state.params))
    state = state.replace(step=state.step + step)
    checkpointing.save(
      mngr, step, state, {**meta, 'epoch': step // 10, 'val': {'spearman': val}},
      {checkpointing.BEST_METRIC: val},
    )  # fmt: skip
    saved[step] = jax.device_get(state)
  mngr.close()
  return saved


def test_keeps_two_latest_and_best_and_restores_params_on_one_device(test_config, tmp_path):
  four = parallel.make_mesh()
  fold_dir = str(tmp_path / 'fold_0')
  points = [(10, 0.3), (20, 0.5), (30, 0.4), (40, 0.2), (50, 0.1)]
  saved = _save_run(test_config, os.path.join(fold_dir, 'checkpoints'), four, points)
  mngr = checkpointing.manager(os.path.join(fold_dir, 'checkpoints'), read_only=True)
  assert mngr.all_steps() == [20, 40, 50]  # best (0.5) and the two latest
  assert checkpointing.select_step(mngr, 'best') == 20
  assert checkpointing.select_step(mngr, 'latest') == 50
  assert checkpointing.select_step(mngr, '40') == 40
  with pytest.raises(InputError, match='expected best, latest or one of the steps'):
    checkpointing.select_step(mngr, '30')
  mngr.close()

  one = Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,))
  model = models.create_model(test_config)
  abstract = train_state.abstract_params(model, DIMS, one)
  expected = checkpoint_meta.run_meta(test_config, DIMS)
  params, meta, step = checkpointing.restore_params(fold_dir, 'best', abstract, expected)
  assert step == 20 and meta['epoch'] == 2 and meta['val'] == {'spearman': 0.5}
  assert jax.tree.leaves(params)[0].sharding.device_set == {jax.devices()[0]}
  jax.tree.map(np.testing.assert_array_equal, saved[20].params, jax.device_get(params))


def test_resume_restores_the_whole_state_and_ema_params_are_what_evaluation_gets(
  test_config, tmp_path
):
  mesh = parallel.make_mesh()
  fold_dir = str(tmp_path / 'fold_0')
  saved = _save_run(
    test_config, os.path.join(fold_dir, 'checkpoints'), mesh, [(10, 0.3)], ema=True
  )[10]
  _, abstract, model = _state(test_config, mesh, 0, ema=True)
  mngr = checkpointing.manager(os.path.join(fold_dir, 'checkpoints'), read_only=True)
  state, _ = checkpointing.restore_train_state(mngr, 10, abstract)
  mngr.close()
  got = jax.device_get(state)
  assert int(got.step) == 10
  for a, b in ((saved.params, got.params), (saved.ema_params, got.ema_params)):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  jax.tree.map(np.testing.assert_array_equal, saved.opt_state, got.opt_state)
  np.testing.assert_array_equal(saved.dropout_key, got.dropout_key)
  params, _, _ = checkpointing.restore_params(
    fold_dir,
    'latest',
    train_state.abstract_params(model, DIMS, mesh),
    checkpoint_meta.run_meta(test_config, DIMS),
  )
  jax.tree.map(np.testing.assert_array_equal, saved.ema_params, jax.device_get(params))


def test_a_mismatch_names_every_differing_field(test_config, tmp_path):
  mesh = parallel.make_mesh()
  fold_dir = str(tmp_path / 'fold_0')
  _save_run(test_config, os.path.join(fold_dir, 'checkpoints'), mesh, [(10, 0.3)])
  other = test_config.copy_and_resolve_references()
  other.num_classes = 3
  other.standardize = True
  other.optimizer.weight_decay = 0.1  # adam -> adamw: another optimiser-state tree
  model = models.create_model(other)
  with pytest.raises(InputError) as e:
    checkpointing.restore_params(
      fold_dir,
      'best',
      train_state.abstract_params(model, DIMS, mesh),
      checkpoint_meta.run_meta(other, DIMS),
    )
  message = str(e.value)
  assert message.endswith(
    'does not match the config (checkpoint -> config): num_classes: 4 -> 3; '
    'standardize: False -> True'
  )
  assert 'optimizer' not in message  # evaluation does not care about the optimiser
  mngr = checkpointing.manager(os.path.join(fold_dir, 'checkpoints'), read_only=True)
  meta = checkpointing.restore_meta(mngr, 10)
  mngr.close()
  # Resuming compares every result field: what the parameters mean always counts, the rest
  # (the optimiser here) only unless `allow` (config.resume_changed).
  with pytest.raises(InputError, match='num_classes: 4 -> 3; standardize: False -> True; '):
    checkpoint_meta.check_meta(meta, checkpoint_meta.run_meta(other, DIMS), 'x', resume=True)
  same_model = test_config.copy_and_resolve_references()
  same_model.optimizer.weight_decay = 0.1
  expected = checkpoint_meta.run_meta(same_model, DIMS)
  with pytest.raises(InputError, match=r'optimizer.weight_decay: 0.0 -> 0.1$'):
    checkpoint_meta.check_meta(meta, expected, 'x', resume=True)
  diffs = checkpoint_meta.check_meta(meta, expected, 'x', resume=True, allow=True)
  assert diffs == ['optimizer.weight_decay: 0.0 -> 0.1']
  assert checkpoint_meta.check_meta(meta, expected, 'x') == []  # evaluation: the same model


def _damage(step_dir: str, how: str) -> None:
  """Damages a checkpoint the way a full disk, a bad copy or a partial sync would."""
  params_dir = os.path.join(step_dir, 'params')
  if how == 'truncated data file':
    for root, _, names in os.walk(params_dir):
      for name in names:
        path = os.path.join(root, name)
        if os.path.basename(root) == 'd':
          with open(path, 'r+b') as f:
            f.truncate(max(os.path.getsize(path) // 3, 1))
  elif how == 'corrupt tree metadata':
    with open(os.path.join(params_dir, '_METADATA'), 'w') as f:
      f.write('{"tree_metadata": {"garbage')
  elif how == 'missing meta item':
    shutil.rmtree(os.path.join(step_dir, 'meta'))
  elif how == 'empty params directory':
    shutil.rmtree(params_dir)
    os.mkdir(params_dir)
  else:
    raise ValueError(how)


@pytest.mark.parametrize(
  'how',
  ['truncated data file', 'corrupt tree metadata', 'missing meta item', 'empty params directory'],
)
def test_a_damaged_checkpoint_is_named_with_the_next_intact_one(test_config, tmp_path, how):
  mesh = parallel.make_mesh()
  fold_dir = str(tmp_path / 'fold_0')
  ckpt = os.path.join(fold_dir, 'checkpoints')
  _save_run(test_config, ckpt, mesh, [(10, 0.3), (20, 0.5), (30, 0.4)])
  _damage(os.path.join(ckpt, '20'), how)
  model = models.create_model(test_config)
  with pytest.raises(InputError) as e:
    checkpointing.restore_params(
      fold_dir,
      'best',
      train_state.abstract_params(model, DIMS, mesh),
      checkpoint_meta.run_meta(test_config, DIMS),
    )
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith(f'fold_0: checkpoint step 20 at {ckpt}/20 cannot be read (')
  assert message.endswith('the newest intact checkpoint is step 30 (--config.eval.checkpoint=30).')


def test_a_checkpoint_whose_files_are_as_written_is_never_called_damaged(
  test_config, tmp_path, monkeypatch
):
  """An unreadable checkpoint with intact files (a reading problem: the path, permissions,
  library versions) is neither called damaged nor set aside; once a file changes, it is."""
  mesh = parallel.make_mesh()
  fold_dir = str(tmp_path / 'fold_0')
  ckpt = os.path.join(fold_dir, 'checkpoints')
  _save_run(test_config, ckpt, mesh, [(10, 0.3), (20, 0.5), (30, 0.4), (40, 0.1)])
  records = sorted(os.listdir(os.path.join(fold_dir, checkpoint_files.FILES_DIR)))
  assert records == ['20.json', '30.json', '40.json']  # those of the kept checkpoints
  assert all(checkpoint_files.intact(ckpt, s) for s in (20, 30, 40))

  def unreadable(*args):
    raise ValueError('NOT_FOUND: a reading problem, not damage')

  monkeypatch.setattr(checkpointing, '_read_params', unreadable)
  model = models.create_model(test_config)
  args = (
    train_state.abstract_params(model, DIMS, mesh),
    checkpoint_meta.run_meta(test_config, DIMS),
  )
  with pytest.raises(InputError) as e:
    checkpointing.restore_params(fold_dir, 'best', *args)
  message = str(e.value)
  assert 'exactly as written' in message and 'not damaged' in message
  assert 'train it again' not in message and 'newest intact' not in message
  mngr = checkpointing.manager(ckpt)
  with pytest.raises(InputError, match='files are exactly as written'):
    checkpoint_files.set_aside(str(mngr.directory), 20, fold_dir)
  assert mngr.all_steps() == [20, 30, 40]

  _damage(os.path.join(ckpt, '20'), 'truncated data file')
  assert checkpoint_files.intact(ckpt, 20) is False
  with pytest.raises(InputError) as e:
    checkpointing.restore_params(fold_dir, 'best', *args)
  assert 'exactly as written' not in str(e.value)
  moved = checkpoint_files.set_aside(str(mngr.directory), 20, fold_dir)
  assert os.path.isdir(moved) and not os.path.exists(os.path.join(ckpt, '20'))
  mngr.close()


def test_no_checkpoint_is_a_clear_error(tmp_path):
  mngr = checkpointing.manager(str(tmp_path / 'empty'))
  with pytest.raises(InputError, match='no checkpoint in'):
    checkpointing.select_step(mngr, 'best')
