"""Fine-tuning knobs of the backbones: `remat` (EfficientNet-Lite, ViT), EfficientNet `dtype`.

Gradient checkpointing must change nothing but the backward pass's memory: the same parameter
tree, the same outputs, the same gradients, and a `remat` (jax.checkpoint) per block in the
gradient's jaxpr. bfloat16 EfficientNet-Lite computes its convolutions in bfloat16 and returns
float32 close to the float32 model. Small inputs and a reduced EfficientNet (3 MBConv blocks:
plain, expanded with a residual, strided) keep the compiles short (XLA:CPU takes seconds per
block to compile the depthwise taps' gradients); the real Lite0 checks the parameter trees, and
its packaged ImageNet weights bfloat16 on a real photo.
"""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from configs import default
from memjax.errors import InputError
from memjax.features import images, registry
from memjax.features.efficientnet_lite import extractor as el_extractor
from memjax.features.efficientnet_lite import model as el
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import model as vit
from memjax.features.vit import variants as vit_variants

TINY_LITE = 'efficientnet_lite_tiny'
TINY_BLOCKS = (
  el.BlockSpec(32, 8, kernel=3, stride=1, expand_ratio=1, stage=1),
  el.BlockSpec(8, 8, kernel=3, stride=1, expand_ratio=6, stage=2),  # residual
  el.BlockSpec(8, 16, kernel=3, stride=2, expand_ratio=6, stage=3),
)
TINY_DINO = dataclasses.replace(
  vit_variants.VARIANTS['dinov2']['b14'], patch=8, width=32, depth=2, heads=4, mlp=64, image_size=32
)


@pytest.fixture(scope='module')
def tiny_lite():
  """(variant name, params, images [2, 32, 32, 3] uint8) of a 3-block EfficientNet-Lite."""
  real = el.block_specs

  def specs(variant: str = 'efficientnet_lite0'):
    return TINY_BLOCKS if variant == TINY_LITE else real(variant)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(el, 'block_specs', specs)
    params = el.init_params(TINY_LITE, seed=1)
    batch = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    yield TINY_LITE, params, jnp.asarray(batch)


def _lite(variant: str, **kw):
  return el.EfficientNetLite(variant, (3,), **kw)  # a pooled stage: every output path is used


def _outputs_and_grads(model):
  """A jitted (params, batch) -> (the model's outputs, the gradient of a loss of them)."""

  def loss(params, batch):
    outputs = model.apply({'params': params}, batch)
    flat = jax.tree_util.tree_leaves(outputs)
    return sum(jnp.sum(jnp.sin(x * (i + 1))) for i, x in enumerate(flat)), outputs

  return jax.jit(lambda params, batch: jax.grad(loss, has_aux=True)(params, batch)[::-1])


def _barriers(jitted, *args) -> int:
  """Optimisation barriers in the StableHLO that `jitted` hands XLA."""
  return jitted.lower(*args).as_text().count('optimization_barrier')


def _assert_trees_close(got, want, rtol):
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
    scale = float(np.abs(w).max()) or 1.0
    np.testing.assert_allclose(g, w, rtol=0, atol=rtol * scale)


def test_lite_remat_keeps_the_parameter_tree_outputs_and_gradients(tiny_lite):
  variant, params, batch = tiny_lite
  assert len(el.block_specs(variant)) == 3 and len(el.block_specs('efficientnet_lite0')) == 16
  shapes = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.uint8)
  init = lambda v, remat: jax.eval_shape(_lite(v, remat=remat).init, jax.random.key(0), shapes)
  for v in ('efficientnet_lite0', variant):  # same names (block_{i}), shapes and dtypes
    assert init(v, False) == init(v, True)
  plain, remat = _lite(variant), _lite(variant, remat=True)
  step = {m: _outputs_and_grads(m) for m in (plain, remat)}
  (got, grads), (want, want_grads) = step[remat](params, batch), step[plain](params, batch)
  assert got[0].shape == (2, 1280 + 16) and got[1].shape == (2, 1000)
  for g, w in zip(got, want, strict=True):
    np.testing.assert_array_equal(g, w)
  _assert_trees_close(grads, want_grads, 1e-6)
  assert float(np.abs(want_grads['block_0']['depthwise']['kernel']).max()) > 1e-4  # not vacuous
  # The knob really checkpoints: one remat per block in the gradient's jaxpr, none without it.
  jaxpr = {m: str(jax.make_jaxpr(f)(params, batch)) for m, f in step.items()}
  assert jaxpr[remat].count('remat') == 3
  assert 'remat' not in jaxpr[plain] and 'checkpoint' not in jaxpr[plain]
  # ... and reaches XLA as the recomputation behind an optimisation barrier per block (XLA:CPU
  # strips the barriers and merges the recomputation away; GPU/TPU keep them).
  barriers = {m: _barriers(f, params, batch) for m, f in step.items()}
  assert barriers == {plain: 0, remat: 3}


def test_vit_remat_keeps_the_parameter_tree_outputs_and_gradients():
  params = jax.tree_util.tree_map(jnp.asarray, vit.init_params(TINY_DINO, seed=2))
  batch = jnp.asarray(np.random.default_rng(3).standard_normal((2, 32, 32, 3)), jnp.float32)
  plain = vit.VisionTransformer(TINY_DINO, 'cls_patch_mean', (1,))
  remat = vit.VisionTransformer(TINY_DINO, 'cls_patch_mean', (1,), remat=True)
  trees = [jax.eval_shape(m.init, jax.random.key(0), batch)['params'] for m in (plain, remat)]
  assert trees[0] == trees[1]
  assert jax.tree_util.tree_structure(trees[0]) == jax.tree_util.tree_structure(params)
  step = {m: _outputs_and_grads(m) for m in (plain, remat)}
  (got, grads), (want, want_grads) = step[remat](params, batch), step[plain](params, batch)
  assert got.shape == (2, 3 * 32)
  np.testing.assert_array_equal(got, want)
  _assert_trees_close(grads, want_grads, 1e-6)
  assert float(np.abs(want_grads['block_1']['ls1']).max()) > 1e-4  # not vacuous
  jaxpr = {m: str(jax.make_jaxpr(f)(params, batch)) for m, f in step.items()}
  assert jaxpr[remat].count('remat') == TINY_DINO.depth
  assert 'remat' not in jaxpr[plain]
  barriers = {m: _barriers(f, params, batch) for m, f in step.items()}
  assert barriers == {plain: 0, remat: TINY_DINO.depth}


def _compute_dtypes(jaxpr: str, primitive: str) -> set[str]:
  """The result dtypes of every `primitive` equation in a printed jaxpr."""
  return set(re.findall(rf'(\w+)\[[\d,]*\] = {primitive}\[', jaxpr))


def test_lite_bfloat16_computes_in_bfloat16_and_returns_close_float32(tiny_lite):
  variant, params, batch = tiny_lite
  f32, bf16 = _lite(variant), _lite(variant, dtype='bfloat16')
  assert _lite(variant, dtype='float32') == f32  # the default
  trace = {m: str(jax.make_jaxpr(functools.partial(m.apply, {'params': params}))(batch))
           for m in (f32, bf16)}  # fmt: skip
  assert _compute_dtypes(trace[bf16], 'dot_general') == {'bf16'}
  assert _compute_dtypes(trace[bf16], 'conv_general_dilated') == {'bf16'}  # the stem
  # Every layer hands the next one bfloat16 (the depthwise taps multiply-add in float32).
  capture = functools.partial(bf16.apply, capture_intermediates=True)
  layers = jax.eval_shape(capture, {'params': params}, batch)[1]['intermediates']
  out = lambda *path: functools.reduce(dict.__getitem__, path, layers)['__call__'][0].dtype
  assert out('stem') == jnp.bfloat16
  for i, spec in enumerate(TINY_BLOCKS):
    assert out(f'block_{i}') == out(f'block_{i}', 'depthwise') == jnp.bfloat16
    assert out(f'block_{i}', 'project') == jnp.bfloat16
    assert spec.expand_ratio == 1 or out(f'block_{i}', 'expand') == jnp.bfloat16
  assert 'bf16' not in trace[f32]
  assert _compute_dtypes(trace[f32], 'dot_general') == {'f32'}
  (got, got_logits), (want, want_logits) = (jax.jit(m.apply)({'params': params}, batch)
                                            for m in (bf16, f32))  # fmt: skip
  assert got.dtype == got_logits.dtype == jnp.float32
  assert got.shape == want.shape == (2, 1280 + el.stage_channels(variant)[3])
  error = np.linalg.norm(got - want) / np.linalg.norm(want)
  assert 1e-4 < error < 5e-2  # bfloat16 really differs, but slightly
  logit_error = np.linalg.norm(got_logits - want_logits) / np.linalg.norm(want_logits)
  assert logit_error < 5e-2
  with pytest.raises(InputError, match='dtype'):
    _lite(variant, dtype='float16').apply({'params': params}, batch)


def test_lite0_bfloat16_with_imagenet_weights_on_a_photo():
  f32 = registry.build(default.get_config(), 'efficientnet')
  bf16 = el_extractor.make_extractor('efficientnet_lite0', dtype='bfloat16')
  assert bf16.preprocessing == f32.preprocessing + '; bfloat16 compute'
  assert bf16.name == f32.name and bf16.weights_sha256 == f32.weights_sha256
  photo = images.resize_and_crop(Image.fromarray(skimage.data.chelsea()), 256, 224)[None]
  run = lambda e: jax.jit(e.forward.keywords['model'].apply)({'params': e.params}, photo)
  (got, got_logits), (want, want_logits) = run(bf16), run(f32)
  assert got.dtype == got_logits.dtype == np.float32
  assert np.linalg.norm(got - want) / np.linalg.norm(want) < 5e-2  # 0.023 measured
  for logits in (got_logits, want_logits):  # a cat either way (tiger cat / Egyptian cat)
    assert int(np.argmax(logits)) in range(281, 286)


def test_registry_passes_dtype_and_finetune_remat(monkeypatch):
  config = default.get_config()
  model = lambda e: e.forward.keywords['model']
  plain = model(registry.build(config, 'efficientnet'))
  assert (plain.dtype, plain.remat) == ('float32', False)  # no config.finetune: remat off
  config.extractors.efficientnet.dtype = 'bfloat16'
  config.finetune = {'remat': True}
  tuned = model(registry.build(config, 'efficientnet'))
  assert (tuned.variant, tuned.dtype, tuned.remat) == ('efficientnet_lite0', 'bfloat16', True)
  config.extractors.efficientnet.dtype = 'half'
  with pytest.raises(InputError, match=r'config\.extractors\.efficientnet\.dtype'):
    registry.build(config, 'efficientnet')
  calls = []
  monkeypatch.setattr(vit_extractor, 'make_extractor', lambda *a, **kw: calls.append((a, kw)))
  config.extractors.dinov2.weights = 'dinov2.safetensors'
  config.extractors.dinov2.dtype = 'bfloat16'
  registry.build(config, 'dinov2')
  config.finetune.remat = False
  registry.build(config, 'dinov2')
  assert [(a[4], kw['remat']) for a, kw in calls] == [('bfloat16', True), ('bfloat16', False)]
