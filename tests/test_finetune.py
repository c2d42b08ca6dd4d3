"""Fine-tuning the extractors (memjax/finetune.py): what trains, LoRA, the optimiser's state,
freeze-then-unfreeze, 4 devices = 1 (EfficientNet-Lite0 with random weights on 32 px crops), and
a LoRA-tuned ViT end to end (train, stop and resume, evaluate, predict) on a folder of small
images (a 3-block CLIP of width 32, so it compiles and runs in seconds)."""

import dataclasses
import functools
import math
import os

import jax
import numpy as np
import pytest
import scored_folders
from jax.sharding import Mesh

from configs import photos_finetune
from memjax import (
  augment,
  finetune,
  fold_consts,
  models,
  parallel,
  predict,
  schema,
  steps,
  train,
  train_state,
)
from memjax.errors import InputError, StoppedError
from memjax.features.efficientnet_lite import extractor as el_extractor
from memjax.features.efficientnet_lite import model as el_model
from memjax.features.extractor import Extractor
from memjax.features.vit import model as vit
from memjax.features.vit import variants as vit_variants
from memjax.features.vit.variants import VARIANTS
from memjax.runtime import fault_points

SIZE = 32


@functools.cache
def tiny_lite0() -> Extractor:
  """EfficientNet-Lite0 with random weights on 32 px crops (the real one's tree and blocks)."""
  return Extractor(
    name='tiny_lite0',
    feature_dim=el_model.FEATURE_DIM,
    params=el_model.init_params('efficientnet_lite0', seed=0),
    forward=functools.partial(el_model.forward, model=el_model.EfficientNetLite()),
    image_size=SIZE,
    resize_to=SIZE + 4,
  )


@functools.cache
def tiny_vit(output: str = 'embedding') -> Extractor:
  cfg = dataclasses.replace(
    VARIANTS['clip']['b16'], patch=8, width=32, depth=3, heads=4, mlp=64, image_size=SIZE,
    resize_to=SIZE, proj_dim=16,
  )  # fmt: skip
  return Extractor(
    name='tiny_clip',
    feature_dim=vit_variants.feature_dim(cfg, output),
    params=vit.init_params(cfg),
    forward=functools.partial(vit.forward, model=vit.VisionTransformer(cfg, output)),
    image_size=SIZE,
    resize_to=SIZE,
  )


def _finetune_cfg(mode, last_blocks=2, rank=4, alpha=None):
  config = photos_finetune.get_config()
  config.finetune.mode, config.finetune.last_blocks = mode, last_blocks
  config.finetune.lora_rank, config.finetune.lora_alpha = rank, alpha
  return config.finetune


def _images(n=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_last_blocks_train_the_last_blocks_and_what_reads_after_them():
  e = tiny_lite0()
  assert finetune.plan(e, _finetune_cfg('last', 2), 'f').keys == ('block_14', 'block_15', 'head')
  everything = finetune.plan(e, _finetune_cfg('all'), 'f').keys
  # the ImageNet classifier is never read by the features: it does not train
  assert everything == ('stem', *[f'block_{i}' for i in range(16)], 'head')
  assert finetune.plan(e, _finetune_cfg('none'), 'f') is None
  with pytest.raises(InputError, match=r'last_blocks must be in 1\.\.16'):
    finetune.plan(e, _finetune_cfg('last', 17), 'f')
  # a ViT: the last block, then the final norm and the projection the embedding reads
  assert finetune.plan(tiny_vit(), _finetune_cfg('last', 1), 'f').keys == (
    'block_2',
    'norm',
    'proj',
  )
  assert 'proj' not in finetune.plan(tiny_vit('cls'), _finetune_cfg('all'), 'f').keys


@pytest.mark.parametrize('extractor', [tiny_lite0, tiny_vit], ids=['lite0', 'vit'])
def test_lora_adds_r_times_in_plus_out_per_kernel_and_starts_as_the_frozen_network(extractor):
  e = extractor()
  rank = 3
  p = finetune.plan(e, _finetune_cfg('lora', last_blocks=0, rank=rank), 'f')
  kernels = [
    leaf.shape
    for path, leaf in jax.tree_util.tree_flatten_with_path(e.params)[0]
    if path[0].key.startswith('block_') and path[-1].key == 'kernel' and leaf.ndim == 2
  ]
  assert len(p.lora_paths) == len(kernels) > 0
  assert p.num_params(e.params) == sum(rank * (i + o) for i, o in kernels)
  assert p.alpha == rank  # alpha None: a scale of 1
  trained = p.init(jax.random.PRNGKey(1), e.params)
  merged = p.merge(trained, p.frozen(e.params))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), merged, e.params)
  x = _images(4)
  forward = jax.jit(e.forward)
  np.testing.assert_array_equal(forward(merged, x), forward(e.params, x))
  # the adapters change the network once B moves
  moved = jax.tree.map(lambda t: t + 0.01, trained)
  assert not np.allclose(forward(p.merge(moved, e.params), x), forward(e.params, x))
  last = finetune.plan(e, _finetune_cfg('lora', last_blocks=1, rank=rank), 'f')
  assert {path[0] for path in last.lora_paths} == {finetune.blocks(e.params)[-1]}


def _step_setup(mode, mesh, *, unfreeze_step=0, last_blocks=1, optimizer='adam', extractor=None):
  config = photos_finetune.get_config()
  config.optimizer.name = optimizer
  config.features = ('efficientnet',)
  config.model.ensemble_size = 1
  config.finetune.mode, config.finetune.last_blocks = mode, last_blocks
  config.finetune.lora_rank = 2
  config.finetune.unfreeze_epoch = unfreeze_step / 10  # 10 steps per epoch below
  config.finetune.warmup_epochs = 0.0
  e = (extractor or tiny_lite0)()
  backbone = finetune.Backbone({'efficientnet': e}, finetune.plans(config, {'efficientnet': e}))
  model = models.create_model(config)
  tx = finetune.create_optimizer(config, 100, 10)
  dims = {'efficientnet': e.feature_dim}
  rep = lambda x: parallel.replicate(x, mesh)
  weights = rep(backbone.weights(config.features))
  init = train_state.jit_create_state(model, tx, dims, mesh, backbone=backbone)
  state = init(rep(jax.random.PRNGKey(0)), rep(jax.random.PRNGKey(1)), weights)
  consts = rep(
    fold_consts.host_consts(
      [0.4, 0.5, 0.6], [0.4, 0.5, 0.6, 1.0], {'efficientnet': np.zeros(e.feature_dim)},
      {'efficientnet': np.full(e.feature_dim, 0.1)},
    )
  )  # fmt: skip
  recipe = steps.Recipe(
    augment=augment.spec_of(config),
    unfreeze_step=finetune.unfreeze_step(config, 10),
    ema_decay=0.0,
  )
  step = steps.jit_train_steps(model, tx, mesh, scan=False, recipe=recipe, backbone=backbone)
  frozen = rep(backbone.frozen_weights(config.features))
  return backbone, state, consts, step, frozen


def _batch(t, n=16):
  score = np.random.default_rng(t).uniform(size=n).astype(np.float32)
  return {'image': _images(n, seed=t), 'score': score, 'label': np.zeros(n, np.int32)}


def _host(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


@pytest.fixture(scope='module')
def two_meshes():
  """Two 'last 1 block' steps of the same batches on 1 and on 4 devices: (backbone, frozen,
  initial state, final states). sgd: Adam's first steps are about +-lr whatever the gradient's
  size, so they would turn last-bit differences of near-zero gradients into visible ones."""
  states = []
  for mesh in (Mesh(np.asarray(jax.devices()[:1]), (parallel.AXIS,)), parallel.make_mesh()):
    backbone, state, consts, step, frozen = _step_setup('last', mesh, optimizer='sgd')
    start = _host(state)
    for t in range(2):
      state, _ = step(state, parallel.to_global(_batch(t), mesh, 0), consts, frozen)
    states.append(_host(state))
  return backbone, _host(frozen), start, states


def test_a_fine_tuned_step_on_four_devices_equals_one_device(two_meshes):
  assert jax.device_count() == 4
  _, _, start, (one, four) = two_meshes
  moved = one.params['backbone']['efficientnet']['head']['kernel']
  assert not np.array_equal(moved, start.params['backbone']['efficientnet']['head']['kernel'])
  close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)
  jax.tree.map(close, one.params, four.params)


def test_frozen_parts_are_untouched_and_carry_no_optimiser_state(two_meshes):
  backbone, frozen, start, (_, after) = two_meshes
  assert sorted(start.params['backbone']['efficientnet']) == ['block_15', 'head']
  trained_size = sum(x.size for x in jax.tree.leaves(start.params))
  # sgd with momentum: one trace per trained value (+ the schedules' step counts); nothing for
  # the frozen blocks
  assert trained_size <= sum(x.size for x in jax.tree.leaves(start.opt_state)) <= trained_size + 4
  full = backbone.params_of('efficientnet', after.params['backbone'], frozen)
  for key, value in tiny_lite0().params.items():  # untrained blocks bit-identical
    same = key not in ('block_15', 'head')
    equal = all(jax.tree.leaves(jax.tree.map(np.array_equal, full[key], _host(value))))
    assert equal == same, key


def test_the_backbone_waits_for_the_unfreeze_step_while_the_head_trains():
  mesh = parallel.make_mesh()
  _, state, consts, step, frozen = _step_setup(
    'lora', mesh, unfreeze_step=2, last_blocks=2, extractor=tiny_vit
  )
  start = _host(state.params)
  history = []
  for t in range(3):
    state, metrics = step(state, parallel.to_global(_batch(t), mesh, 0), consts, frozen)
    assert math.isfinite(float(metrics['loss']))
    history.append(_host(state.params))
  same = lambda a, b: all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))
  assert same(history[1]['backbone'], start['backbone'])  # steps 0, 1: frozen
  assert not same(history[1]['head'], start['head'])
  assert not same(history[2]['backbone'], start['backbone'])  # step 2 trains it


def test_fine_tuning_needs_features_computed_on_the_fly():
  config = photos_finetune.get_config()
  config.data.on_the_fly = False
  with pytest.raises(InputError, match=r"config\.finetune\.mode='last': .*on_the_fly=True"):
    schema.validate(config, 'train', check_paths=False)
  config.finetune.mode = 'none'  # augmentation alone also needs images
  with pytest.raises(InputError, match=r'config\.augment=.*on_the_fly=True'):
    schema.validate(config, 'sweep', check_paths=False)
  config.augment.crop_scale, config.augment.crop_ratio = (1.0, 1.0), (1.0, 1.0)
  config.augment.flip = False
  schema.validate(config, 'search', check_paths=False)


# --- end to end: a folder of images, the config of configs/photos_finetune.py made small -------


def _small(images: str):
  config = photos_finetune.get_config()
  config.data.dir = images
  config.data.num_folds, config.data.run_folds = 3, (0,)
  config.model.ensemble_size = 2
  config.model.hidden_units = (16,)
  config.num_epochs, config.batch_size, config.eval_batch_size = 3, 8, 16
  config.steps_per_call = 2
  config.finetune.mode, config.finetune.last_blocks, config.finetune.lora_rank = 'lora', 0, 2
  config.finetune.learning_rate = 1e-2
  config.finetune.unfreeze_epoch, config.finetune.warmup_epochs = 1.0, 0.5
  config.ema_decay = 0.5
  config.log_every_secs = 100.0
  return config


@pytest.fixture(scope='module')
def tiny_backbone():
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(el_extractor, 'make_extractor', lambda *a, **k: tiny_vit())
    yield


@pytest.fixture(scope='module')
def finetuned(tmp_path_factory, tiny_backbone):
  root = tmp_path_factory.mktemp('finetune')
  scored_folders.write_brightness_folder(root / 'images', 48, seed=2, size=(36, 40))
  config = _small(str(root / 'images'))
  workdir = str(root / 'run')
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_a_fine_tuned_run_stopped_and_resumed_ends_as_the_uninterrupted_one(
  finetuned, tmp_path, monkeypatch
):
  config, _, summary = finetuned
  workdir = str(tmp_path / 'resumed')
  monkeypatch.setenv(fault_points.ENV, 'train_chunk:3:TERM')
  monkeypatch.setattr(fault_points, '_seen', {})
  with pytest.raises(StoppedError):
    train.train_and_evaluate(config, workdir)
  monkeypatch.delenv(fault_points.ENV)
  resumed = train.train_and_evaluate(config, workdir)
  assert resumed['folds'][0]['spearman'] == pytest.approx(summary['folds'][0]['spearman'], abs=1e-6)
  assert resumed['folds'][0]['mse'] == pytest.approx(summary['folds'][0]['mse'], rel=1e-5)


def test_evaluate_and_predict_restore_the_fine_tuned_backbone(finetuned, tmp_path):
  from memjax import evaluate

  config, workdir, summary = finetuned
  again = evaluate.evaluate(config, workdir)
  assert again['folds'][0]['spearman'] == pytest.approx(summary['folds'][0]['spearman'], abs=1e-6)
  predictor = predict.Predictor(config, workdir)
  trained = jax.device_get(predictor._folds['params']['backbone']['efficientnet'])
  assert sorted(trained) == ['block_0', 'block_1', 'block_2']
  assert sorted(trained['block_1']) == ['fc1', 'fc2', 'out', 'qkv']
  lora_b = trained['block_2']['fc2']['kernel']['lora_b'][0]  # fold 0 of the stacked folds
  assert np.abs(lora_b).max() > 0  # B started at zero: the adapters trained and predict has them
  # predict scores the test images as evaluation did (one fold: its own predictions): the
  # evaluation path's per-image predictions of the fold's test rows, and their Spearman is the
  # one eval.json reports.
  from scipy import stats

  from memjax import datasets, fold_data, run_parts, scoring

  data = datasets.load(config)
  mesh = parallel.make_mesh()
  plan = fold_data.plan_folds(config, data)[0]
  parts = run_parts.build_parts(config, data.extractors, data.feature_dims(config.features), mesh)
  params, meta, step = parts.restore(os.path.join(workdir, 'fold_0'), config.eval.checkpoint)
  assert step == summary['folds'][0]['checkpoint_step']
  fd = fold_data.prepare(config, data, plan, 0, stored=meta)
  consts = parallel.replicate(fd.consts, mesh)
  test = fd.split.test
  preds, _ = scoring.predict(parts, params, fd, test, consts)
  rho = stats.spearmanr(preds['score'], fd.arrays['score'][test]).statistic
  assert rho == pytest.approx(summary['folds'][0]['spearman'], abs=1e-6)
  paths = [os.path.join(config.data.dir, data.ids[r]) for r in test]
  scores, _, errors = predictor.predict_paths(paths, batch_size=16)
  assert not any(errors) and np.std(scores) > 0
  np.testing.assert_allclose(scores, preds['score'], rtol=0, atol=1e-5)
  # a checkpoint of another fine-tune mode is refused, naming the field
  other = _small(config.data.dir)
  other.finetune.mode, other.finetune.last_blocks = 'last', 1
  with pytest.raises(InputError, match=r"finetune.mode: 'lora' -> 'last'"):
    predict.Predictor(other, workdir)


def test_a_workdir_recorded_before_fine_tuning_existed_matches_a_config_that_leaves_it_off(
  test_config, tmp_path
):
  import json

  from memjax import datasets, run_record

  data = datasets.load(test_config)
  record = run_record.record_of(test_config, data)
  record['fields'] = {
    k: v for k, v in record['fields'].items() if not k.startswith(('finetune.', 'augment.'))
  }
  with open(tmp_path / run_record.RUN_FILE, 'w') as f:
    json.dump(record, f)
  assert run_record.check(test_config, data, str(tmp_path)) == []
  test_config.augment.flip = True
  with pytest.raises(InputError, match=r"augment\.flip: '<unset>' -> True"):
    run_record.check(test_config, data, str(tmp_path))
