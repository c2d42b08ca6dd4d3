"""ViT weight files as users have them: transformers 4 and 5 layouts, with and without the
projection / head, and the architecture from the `config.json` beside the weights.

The tensors are written under the published key names (test_vit.py's writers; transformers 5
saves a vision tower without the `vision_model.` prefix, transformers 4 and the full models with
it). The configs are written by `transformers`' own config classes when it is installed (a
test-only reference: `to_json_file` saves only what differs from the defaults, so memjax's
defaults are exercised too), else these tests skip; one hand-written minimal config always runs.
"""

import dataclasses
import json

import numpy as np
import pytest
import test_vit as tv

from memjax.errors import InputError
from memjax.features.vit import config_files
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import model as vit
from memjax.features.vit import variants as vit_variants

pytest.importorskip('safetensors')

_HF_ACT = {'quick_gelu': 'quick_gelu', 'gelu': 'gelu', 'gelu_tanh': 'gelu_pytorch_tanh'}


def _strip(tensors: dict, drop_projection: bool = True) -> dict:
  """A transformers 5 vision tower: `vision_model.` names without the prefix, no text tower."""
  out = {k[len('vision_model.') :]: v for k, v in tensors.items() if k.startswith('vision_model.')}
  if not drop_projection:
    out['visual_projection.weight'] = tensors['visual_projection.weight']
  return out


def _transformers_config(c: vit_variants.ViTConfig, model: str, path) -> None:
  """`config.json` as transformers writes it for `model` of architecture `c`."""
  transformers = pytest.importorskip('transformers')
  if c.family == 'dinov2':
    cls = transformers.Dinov2WithRegistersConfig if c.registers else transformers.Dinov2Config
    kw = dict(num_register_tokens=c.registers) if c.registers else {}
    config = cls(
      hidden_size=c.width, num_hidden_layers=c.depth, num_attention_heads=c.heads,
      mlp_ratio=c.mlp // c.width, image_size=c.image_size, patch_size=c.patch,
      hidden_act=_HF_ACT[c.act], **kw,
    )  # fmt: skip
  else:
    vision = dict(
      hidden_size=c.width, intermediate_size=c.mlp, num_hidden_layers=c.depth,
      num_attention_heads=c.heads, image_size=c.image_size, patch_size=c.patch,
      hidden_act=_HF_ACT[c.act], layer_norm_eps=c.eps,
    )  # fmt: skip
    if model == 'CLIPModel':
      config = transformers.CLIPConfig(vision_config=vision, projection_dim=c.proj_dim)
    elif model == 'SiglipModel':
      config = transformers.SiglipConfig(vision_config=vision)
    elif c.family == 'clip':
      config = transformers.CLIPVisionConfig(projection_dim=c.proj_dim, **vision)
    else:
      config = transformers.SiglipVisionConfig(**vision)
  config.to_json_file(str(path / 'config.json'))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  """{name: hf tensors} of the tiny models, and the images."""
  return {
    'clip': tv.hf_tensors(tv.TINY['clip']),
    'clip_gelu': tv.hf_tensors(tv.TINY['clip_gelu'], seed=3),
    'siglip': tv.hf_tensors(tv.TINY['siglip'], seed=1),
    'dinov2_reg': tv.hf_tensors(tv.TINY['dinov2_reg'], seed=2),
  }


def _save(tensors: dict, folder) -> str:
  folder.mkdir(parents=True, exist_ok=True)
  return tv.save_safetensors(tensors, folder / 'model.safetensors')


IMAGES = tv.random_images(2, 32, seed=5)


def test_transformers5_vision_towers_load_without_prefix(files, tmp_path):
  full = _save(files['siglip'], tmp_path / 'siglip_full')
  tower = _save(_strip(files['siglip']), tmp_path / 'siglip_tower')
  want = tv.features('siglip', 'tiny_siglip', full, IMAGES)
  np.testing.assert_allclose(tv.features('siglip', 'tiny_siglip', tower, IMAGES), want, atol=1e-6)
  clip_full = _save(files['clip'], tmp_path / 'clip_full')
  clip_tower = _save(_strip(files['clip']), tmp_path / 'clip_tower')
  with_proj = _save(_strip(files['clip'], drop_projection=False), tmp_path / 'clip_proj')
  for output in ('pooled', 'embedding'):
    want = tv.features('clip', 'tiny_clip', clip_full, IMAGES, output=output)
    got = tv.features('clip', 'tiny_clip', with_proj, IMAGES, output=output)
    np.testing.assert_allclose(got, want, atol=1e-6)
  want = tv.features('clip', 'tiny_clip', clip_full, IMAGES, output='pooled')
  got = tv.features('clip', 'tiny_clip', clip_tower, IMAGES, output='pooled')
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert want.shape == (2, 32)


def test_transformers4_vision_tower_without_projection(files, tmp_path):
  v4 = {k: v for k, v in files['clip'].items() if k.startswith('vision_model.')}
  path = _save(v4, tmp_path / 'v4')
  want = tv.features(
    'clip', 'tiny_clip', _save(files['clip'], tmp_path / 'full'), IMAGES, output='pooled'
  )
  np.testing.assert_allclose(
    tv.features('clip', 'tiny_clip', path, IMAGES, output='pooled'), want, atol=1e-6
  )
  with pytest.raises(InputError, match=r"projection.*output='embedding' needs it") as e:
    vit_extractor.make_extractor('clip', 'tiny_clip', path, output='embedding')
  assert '\n' not in str(e.value)


def test_siglip_without_head_gives_patch_mean_only(files, tmp_path):
  tower = {k: v for k, v in _strip(files['siglip']).items() if not k.startswith('head.')}
  path = _save(tower, tmp_path / 'nohead')
  full = _save(files['siglip'], tmp_path / 'full')
  want = tv.features('siglip', 'tiny_siglip', full, IMAGES, output='patch_mean')
  got = tv.features('siglip', 'tiny_siglip', path, IMAGES, output='patch_mean')
  np.testing.assert_allclose(got, want, atol=1e-6)
  with pytest.raises(InputError, match="attention-pooling head.*use output='patch_mean'"):
    vit_extractor.make_extractor('siglip', 'tiny_siglip', path, output='pooled')


def test_registers_file_as_no_register_variant_is_refused(files, tmp_path):
  path = _save(files['dinov2_reg'], tmp_path / 'reg')
  with pytest.raises(InputError, match=r'register tokens 4, but variant dinov2/tiny_dinov2 has 0'):
    vit_extractor.make_extractor('dinov2', 'tiny_dinov2', path)
  assert vit_extractor.make_extractor('dinov2', 'tiny_dinov2_reg', path).feature_dim == 64


@pytest.mark.parametrize('model', ['CLIPModel', 'CLIPVisionModel'])
def test_config_json_gives_the_architecture_and_checks_the_variant(files, tmp_path, model):
  c = tv.TINY['clip_gelu']
  tensors = files['clip_gelu'] if model == 'CLIPModel' else _strip(files['clip_gelu'], False)
  path = _save(tensors, tmp_path)
  want = tv.features('clip', 'tiny_clip_gelu', path, IMAGES)  # the registered variant, checked
  _transformers_config(c, model, tmp_path)
  e = vit_extractor.make_extractor('clip', None, path)  # the architecture from config.json
  assert e.config == c and e.name == 'clip_tiny_clip_gelu/embedding'
  np.testing.assert_allclose(tv.features('clip', None, path, IMAGES), want, atol=1e-6)
  with pytest.raises(InputError, match=r"config\.json says activation 'gelu', but variant "
                     r"clip/tiny_clip has 'quick_gelu'") as err:  # fmt: skip
    vit_extractor.make_extractor('clip', 'tiny_clip', path)
  assert '\n' not in str(err.value)


def test_any_size_loads_from_its_config(tmp_path):
  c = dataclasses.replace(
    tv.TINY['siglip'], width=24, heads=3, depth=3, mlp=40, patch=4, image_size=24, resize_to=24
  )
  path = _save(tv.hf_tensors(c, seed=7), tmp_path)
  _transformers_config(c, 'SiglipModel', tmp_path)
  e = vit_extractor.make_extractor('siglip', None, path)
  assert (e.config.width, e.config.depth, e.config.heads, e.config.mlp) == (24, 3, 3, 40)
  assert (e.config.patch, e.image_size, e.name) == (
    4,
    24,
    'siglip_w24d3h3m40p4s24_gelu_tanh/pooled',
  )
  name = 'w24d3h3m40p4s24_gelu_tanh'
  vit_variants.add_variant('siglip', name, dataclasses.replace(c, dtype='float32'))
  np.testing.assert_allclose(
    tv.features('siglip', None, path, tv.random_images(2, 24)),
    tv.features('siglip', name, path, tv.random_images(2, 24)),
    atol=1e-6,
  )


def test_dinov2_registers_config(files, tmp_path):
  """DINOv2's config.json image_size is the stored position grid (518 for the published ones);
  the model runs at its processor's 224 crop of 256, the grid resized as the reference does."""
  c = tv.TINY['dinov2_reg']
  path = _save(files['dinov2_reg'], tmp_path)
  _transformers_config(c, 'Dinov2WithRegistersModel', tmp_path)
  e = vit_extractor.make_extractor('dinov2', None, path)
  assert (e.config.registers, e.config.antialias_pos) == (4, True)
  assert (e.image_size, e.resize_to) == (224, 256)
  vit_variants.add_variant(
    'dinov2', 'tiny_reg_224', dataclasses.replace(c, image_size=224, resize_to=256)
  )
  images = tv.random_images(1, 224)
  np.testing.assert_allclose(
    tv.features('dinov2', None, path, images),
    tv.features('dinov2', 'tiny_reg_224', path, images),
    atol=1e-6,
  )


def test_minimal_hand_written_config_takes_transformers_defaults(tmp_path):
  """`{"model_type": "clip_vision_model", "hidden_size": 32, ...}` leaves out quick_gelu, eps and
  projection_dim 512: the defaults apply, as in transformers."""
  (tmp_path / 'config.json').write_text(json.dumps({
    'model_type': 'clip_vision_model', 'hidden_size': 32, 'intermediate_size': 128,
    'num_hidden_layers': 2, 'num_attention_heads': 4, 'patch_size': 8, 'image_size': 32,
  }))  # fmt: skip
  arch = config_files.read('clip', str(tmp_path / 'model.safetensors'))
  assert arch.fields == dict(
    width=32, depth=2, heads=4, patch=8, act='quick_gelu', eps=1e-5, mlp=128, image_size=32,
    proj_dim=512,
  )  # fmt: skip
  (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'siglip'}))
  with pytest.raises(InputError, match="model_type 'siglip' is not a clip model"):
    config_files.read('clip', str(tmp_path / 'model.safetensors'))


def test_dinov2_giant_swiglu_config(tmp_path):
  """DINOv2-giant: use_swiglu_ffn, hidden width int(int(1536 * 4) * 2 / 3) rounded up to 8."""
  (tmp_path / 'config.json').write_text(json.dumps({
    'model_type': 'dinov2', 'hidden_size': 1536, 'num_hidden_layers': 40,
    'num_attention_heads': 24, 'use_swiglu_ffn': True, 'image_size': 518,
  }))  # fmt: skip
  arch = config_files.read('dinov2', str(tmp_path / 'model.safetensors'))
  assert (arch.fields['act'], arch.fields['mlp'], arch.fields['patch']) == ('swiglu', 4096, 14)


def test_swiglu_block_equals_numpy(tmp_path):
  """A tiny SwiGLU DINOv2 in HF names (mlp.weights_in / weights_out) against a NumPy forward of
  its first block's MLP branch: silu(x W_a) * (x W_b) W_out, W_in = [W_a; W_b]."""
  c = dataclasses.replace(tv.TINY['dinov2'], act='swiglu', mlp=24)
  t = tv.hf_tensors(dataclasses.replace(c, act='gelu'), seed=4)
  rng = np.random.default_rng(0)
  for i in range(c.depth):
    p = f'encoder.layer.{i}.mlp.'
    for k in ('fc1', 'fc2'):
      del t[f'{p}{k}.weight'], t[f'{p}{k}.bias']
    t[f'{p}weights_in.weight'] = rng.standard_normal((48, 32)).astype(np.float32) * 0.2
    t[f'{p}weights_in.bias'] = rng.standard_normal(48).astype(np.float32) * 0.1
    t[f'{p}weights_out.weight'] = rng.standard_normal((32, 24)).astype(np.float32) * 0.2
    t[f'{p}weights_out.bias'] = rng.standard_normal(32).astype(np.float32) * 0.1
  path = _save(t, tmp_path)
  vit_variants.add_variant('dinov2', 'tiny_swiglu', c)
  with pytest.raises(InputError, match="shapes show activation 'swiglu', but variant "):
    vit_extractor.make_extractor('dinov2', 'tiny_dinov2', path)
  e = vit_extractor.make_extractor('dinov2', 'tiny_swiglu', path)
  x = rng.standard_normal((1, 5, 32)).astype(np.float32)
  block = vit.Block(c)
  got = np.asarray(block.apply({'params': e.params['block_0']}, x))
  p = 'encoder.layer.0.'

  def ln(v, name):
    m, s = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    return (v - m) / np.sqrt(s + c.eps) * t[f'{p}{name}.weight'] + t[f'{p}{name}.bias']

  def lin(v, name):
    return v @ t[f'{p}{name}.weight'].T + t[f'{p}{name}.bias']

  h = ln(x, 'norm1')
  q, k, v = (
    lin(h, f'attention.attention.{n}').reshape(1, 5, 4, 8) for n in ('query', 'key', 'value')
  )
  logits = np.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(8)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  a = lin(np.einsum('bhqk,bkhd->bqhd', w, v).reshape(1, 5, 32), 'attention.output.dense')
  x1 = x + a * t[f'{p}layer_scale1.lambda1']
  u = lin(ln(x1, 'norm2'), 'mlp.weights_in')
  g = u[..., :24] / (1 + np.exp(-u[..., :24])) * u[..., 24:]
  want = x1 + lin(g, 'mlp.weights_out') * t[f'{p}layer_scale2.lambda1']
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_open_clip_config_sets_the_activation(files, tmp_path):
  """OpenCLIP's `open_clip_config.json` (model_cfg.quick_gelu, vision_cfg sizes) beside
  `open_clip_model.safetensors`; a timm tower (`timm_model_name`) is refused by name."""
  c = tv.TINY['clip_gelu']
  oc = tv.open_clip_tensors(files['clip_gelu'], c)
  path = tv.save_safetensors(oc, tmp_path / 'open_clip_model.safetensors')
  model_cfg = {
    'embed_dim': 16,
    'vision_cfg': {'image_size': 32, 'layers': 2, 'width': 32, 'head_width': 8, 'patch_size': 8},
  }
  (tmp_path / 'open_clip_config.json').write_text(json.dumps({'model_cfg': model_cfg}))
  e = vit_extractor.make_extractor('clip', None, path)
  assert e.config == c and e.crop == 'center_round'  # torchvision's CenterCrop offset
  np.testing.assert_allclose(
    tv.features('clip', None, path, IMAGES), tv.features('clip', 'tiny_clip_gelu', path, IMAGES),
    atol=1e-6,
  )  # fmt: skip
  with pytest.raises(InputError, match="says activation 'gelu', but variant clip/tiny_clip has"):
    vit_extractor.make_extractor('clip', 'tiny_clip', path)
  model_cfg['quick_gelu'] = True
  (tmp_path / 'open_clip_config.json').write_text(json.dumps({'model_cfg': model_cfg}))
  assert vit_extractor.make_extractor('clip', None, path).config.act == 'quick_gelu'
  model_cfg['vision_cfg']['timm_model_name'] = 'vit_base_patch16_siglip_224'
  (tmp_path / 'open_clip_config.json').write_text(json.dumps({'model_cfg': model_cfg}))
  with pytest.raises(InputError, match="timm's 'vit_base_patch16_siglip_224', not a clip model"):
    vit_extractor.make_extractor('clip', None, path)


_TIMM_CLIP_SWAPS = [  # timm's vision_transformer._convert_openai_clip, in its order
  ('conv1', 'patch_embed.proj'), ('positional_embedding', 'pos_embed'),
  ('transformer.resblocks.', 'blocks.'), ('ln_pre', 'norm_pre'), ('ln_post', 'norm'),
  ('ln_', 'norm'), ('in_proj_', 'qkv.'), ('out_proj', 'proj'), ('mlp.c_fc', 'mlp.fc1'),
  ('mlp.c_proj', 'mlp.fc2'),
]  # fmt: skip


def _timm_clip(open_clip: dict) -> dict:
  out = {}
  for k, v in open_clip.items():
    if not k.startswith('visual.'):
      continue
    k = k[len('visual.') :]
    for a, b in _TIMM_CLIP_SWAPS:
      k = k.replace(a, b)
    if k == 'proj':
      k, v = 'head.weight', v.T
      out['head.bias'] = np.zeros(v.shape[0], np.float32)
    elif k == 'class_embedding':
      v = v[None, None]
      k = 'cls_token'
    elif k == 'pos_embed':
      v = v[None]
    out[k] = v
  return out


def _timm_siglip(hf: dict, c: vit_variants.ViTConfig) -> dict:
  """timm's SigLIP names (big_vision -> timm `_load_weights`) of the HF SigLIP tensors."""
  v, d, out = 'vision_model.', c.width, {}
  out['patch_embed.proj.weight'] = hf[f'{v}embeddings.patch_embedding.weight']
  out['patch_embed.proj.bias'] = hf[f'{v}embeddings.patch_embedding.bias']
  out['pos_embed'] = hf[f'{v}embeddings.position_embedding.weight'][None]
  for f in ('weight', 'bias'):
    out[f'norm.{f}'] = hf[f'{v}post_layernorm.{f}']
    out[f'attn_pool.norm.{f}'] = hf[f'{v}head.layernorm.{f}']
    out[f'attn_pool.proj.{f}'] = hf[f'{v}head.attention.out_proj.{f}']
    for m in ('fc1', 'fc2'):
      out[f'attn_pool.mlp.{m}.{f}'] = hf[f'{v}head.mlp.{m}.{f}']
    for i in range(c.depth):
      p, q = f'blocks.{i}.', f'{v}encoder.layers.{i}.'
      out[f'{p}norm1.{f}'] = hf[f'{q}layer_norm1.{f}']
      out[f'{p}norm2.{f}'] = hf[f'{q}layer_norm2.{f}']
      out[f'{p}attn.qkv.{f}'] = np.concatenate([hf[f'{q}self_attn.{n}_proj.{f}'] for n in 'qkv'])
      out[f'{p}attn.proj.{f}'] = hf[f'{q}self_attn.out_proj.{f}']
      out[f'{p}mlp.fc1.{f}'] = hf[f'{q}mlp.fc1.{f}']
      out[f'{p}mlp.fc2.{f}'] = hf[f'{q}mlp.fc2.{f}']
  out['attn_pool.latent'] = hf[f'{v}head.probe']
  in_w, in_b = hf[f'{v}head.attention.in_proj_weight'], hf[f'{v}head.attention.in_proj_bias']
  out['attn_pool.q.weight'], out['attn_pool.q.bias'] = in_w[:d], in_b[:d]
  out['attn_pool.kv.weight'], out['attn_pool.kv.bias'] = in_w[d:], in_b[d:]
  return out


def test_timm_clip_and_siglip_names(files, tmp_path):
  c = tv.TINY['clip']
  full = _save(files['clip'], tmp_path / 'hf')
  timm = _save(_timm_clip(tv.open_clip_tensors(files['clip'], c)), tmp_path / 'timm_clip')
  for output in ('embedding', 'pooled'):
    np.testing.assert_allclose(
      tv.features('clip', 'tiny_clip', timm, IMAGES, output=output),
      tv.features('clip', 'tiny_clip', full, IMAGES, output=output),
      atol=1e-6,
    )
  s = tv.TINY['siglip']
  hf = _save(files['siglip'], tmp_path / 'hf_siglip')
  want = tv.features('siglip', 'tiny_siglip', hf, IMAGES)
  names = _timm_siglip(files['siglip'], s)
  got = tv.features('siglip', 'tiny_siglip', _save(names, tmp_path / 'timm_siglip'), IMAGES)
  np.testing.assert_allclose(got, want, atol=1e-6)
  trunk = {f'visual.trunk.{k}': v for k, v in names.items()}  # OpenCLIP's SigLIP
  trunk['text.token_embedding.weight'] = np.zeros((10, 8), np.float32)
  folder = tmp_path / 'open_clip_siglip'
  path = _save(trunk, folder)
  vision_cfg = {'timm_model_name': 'vit_base_patch16_siglip_224', 'image_size': 32}
  (folder / 'open_clip_config.json').write_text(
    json.dumps({'model_cfg': {'vision_cfg': vision_cfg}})
  )
  e = vit_extractor.make_extractor('siglip', None, path)
  assert e.name == 'siglip_tiny_siglip/pooled' and e.crop == 'stretch'
  np.testing.assert_allclose(tv.features('siglip', None, path, IMAGES), want, atol=1e-6)
