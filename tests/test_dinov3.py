"""DINOv3 (kind 'dinov3'): transformers' files and configs, and equality with transformers'
DINOv3ViTModel (CPU torch, test-only, requirements-reference.txt: skipped without it, failed in CI).

The torch models are tiny (width 32, depth 2), initialised by transformers and then perturbed so
that every bias, layer scale and norm matters, saved by `save_pretrained` (model.safetensors +
config.json, the published layout), and read by memjax with no variant: the architecture comes
from the config.json. Model only: random pixels, every output within 1e-5 max abs. End to end:
JPEGs of mixed aspect ratios through memjax's decoder and image pipeline against transformers'
DINOv3 preprocessing + model, within relative L2 1e-4.

transformers' `DINOv3ViTImageProcessor` exists only on torchvision (no PIL path); its steps are
rescale to float, resize to 224 x 224 with torchvision's antialiased bilinear on the float tensor
(`torch.nn.functional.interpolate(..., antialias=True)`), normalise. The reference here runs
those torch calls directly (`_processor`); memjax resizes in PIL's float mode, the same filter.
"""

import dataclasses
import json
import os
import shutil

import jax
import mixed_jpegs
import numpy as np
import pytest
import test_vit as tv
from PIL import Image
from references import require

from memjax.errors import InputError
from memjax.features import images
from memjax.features.geometry import Geometry
from memjax.features.vit import architecture
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import variants as vit_variants

MAX_ABS, RELATIVE_L2 = 1e-5, 1e-4
_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
# name: transformers DINOv3ViTConfig fields (the rest tiny): published ViT-S/B/L (gelu MLP, 4
# registers, no key bias) and S+/H+/7B (SwiGLU); the second also drops the query, MLP and output
# biases (7B has no query / value bias) and has no registers.
MODELS = {
  'gelu_reg4': dict(num_register_tokens=4, image_size=64),
  'swiglu': dict(use_gated_mlp=True, hidden_act='silu', num_register_tokens=0, query_bias=False,
                 key_bias=True, value_bias=False, mlp_bias=False, image_size=48),
}  # fmt: skip
# The published facebook/dinov3-vit*16-pretrain-lvd1689m configs (architecture fields).
PUBLISHED = {
  's16': dict(hidden_size=384, intermediate_size=1536, num_attention_heads=6, num_hidden_layers=12),
  's16plus': dict(hidden_size=384, intermediate_size=1536, num_attention_heads=6,
                  num_hidden_layers=12, use_gated_mlp=True, hidden_act='silu'),
  'b16': dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
              num_hidden_layers=12),
  'l16': dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
              num_hidden_layers=24),
  'h16plus': dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
                  num_hidden_layers=32, use_gated_mlp=True, hidden_act='silu'),
  '7b16': dict(hidden_size=4096, intermediate_size=8192, num_attention_heads=32,
               num_hidden_layers=40, use_gated_mlp=True, hidden_act='silu', query_bias=False,
               value_bias=False, layerscale_value=1e-5),
}  # fmt: skip


def _write_config(folder, **fields) -> str:
  """A hand-written config.json (model_type dinov3_vit) in `folder`; the weights' path beside."""
  config = dict(model_type='dinov3_vit', num_register_tokens=4, layer_norm_eps=1e-5,
                rope_theta=100.0, image_size=224, patch_size=16, **fields)  # fmt: skip
  (folder / 'config.json').write_text(json.dumps(config))
  return str(folder / 'model.safetensors')


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_published_configs_are_the_builtin_variants(tmp_path, name):
  weights = _write_config(tmp_path, **PUBLISHED[name])
  cfg, variant = architecture.resolve('dinov3', None, weights, {}, 'float32')
  assert (variant, cfg) == (name, vit_variants.VARIANTS['dinov3'][name])
  assert architecture.resolve('dinov3', name, weights, {}, 'float32')[1] == name  # agrees


def test_config_errors(tmp_path):
  weights = _write_config(tmp_path, **dict(PUBLISHED['s16'], use_gated_mlp=True))
  with pytest.raises(InputError, match="a gated MLP with hidden_act 'gelu'; memjax has SwiGLU"):
    architecture.resolve('dinov3', None, weights, {}, 'float32')
  weights = _write_config(tmp_path, **PUBLISHED['s16'])
  with pytest.raises(InputError, match="model_type 'dinov3_vit' is not a dinov2 model"):
    architecture.resolve('dinov2', None, weights, {}, 'float32')
  with pytest.raises(InputError, match='says width 384, but variant dinov3/b16 has 768'):
    architecture.resolve('dinov3', 'b16', weights, {}, 'float32')
  (tmp_path / 'dinov2').mkdir()
  dinov2 = tv.save_safetensors(tv.hf_tensors(tv.TINY['dinov2']), tmp_path / 'dinov2/x.safetensors')
  with pytest.raises(InputError, match=r"not a dinov3 image encoder: none of \['embeddings"):
    vit_extractor.make_extractor('dinov3', None, dinov2)


def test_float_pixels_through_both_image_pipelines(tmp_path):
  """DINOv3's geometry decodes to float32 (not rounded to 8 bits) in the extraction pipeline
  and in the on-the-fly `ImageRows` alike; the uint8 geometry rounds the same resize."""
  paths = mixed_jpegs.write(str(tmp_path))[:3]
  float_geometry = Geometry(64, 64, 'bilinear', 'truncate', 'stretch', 'float32')
  batch = next(images.image_batches(paths, batch_size=4, resize_to=64, image_size=64,
                                    geometry=float_geometry))  # fmt: skip
  rows = images.ImageRows(paths, 64, 64, geometry=float_geometry)
  assert batch['image'].dtype == rows.dtype == np.float32 and batch['ok'].sum() == 3
  np.testing.assert_array_equal(rows[np.arange(3)], batch['image'][:3])
  rounded = dataclasses.replace(float_geometry, pixels='uint8')
  with Image.open(paths[1]) as image:
    u8 = rounded.apply(image.convert('RGB'))
  assert u8.dtype == np.uint8
  assert 0 < np.abs(u8 - batch['image'][1]).max() < 1  # PIL rounds after each of its 2 passes
  assert 'bilinear in float32' in float_geometry.describe()


# --- Equality with transformers' torch model -------------------------------------------------


@pytest.fixture(scope='module')
def saved(tmp_path_factory) -> dict:
  """{name: (torch model, path of its model.safetensors)}."""
  torch = require('torch')
  transformers = require('transformers')
  out = {}
  for name, fields in MODELS.items():
    torch.manual_seed(0)
    model = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(**_TINY, **fields)).eval()
    with torch.no_grad():
      for p in model.parameters():
        p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(str(folder))
    out[name] = (model, str(folder / 'model.safetensors'))
  return out


def _outputs(model, pixels: np.ndarray) -> dict:
  """transformers' outputs of normalised pixels [B, S, S, 3], as memjax's outputs."""
  import torch

  with torch.no_grad():
    tokens = model(pixel_values=torch.from_numpy(pixels).permute(0, 3, 1, 2)).last_hidden_state
  patches = tokens[:, 1 + model.config.num_register_tokens :].mean(1)
  out = {'cls_patch_mean': torch.cat([tokens[:, 0], patches], -1), 'cls': tokens[:, 0],
         'patch_mean': patches}  # fmt: skip
  return {k: v.numpy() for k, v in out.items()}


def _memjax(e, pixels: np.ndarray) -> np.ndarray:
  return np.asarray(jax.jit(e.forward)(e.params, pixels))


@pytest.mark.parametrize('name', sorted(MODELS))
def test_model_equals_transformers(saved, name):
  """Random pixels at the config's size (every output) and, through a variant, at another (the
  rotary embeddings follow the grid): within 1e-5."""
  model, path = saved[name]
  base = vit_extractor.make_extractor('dinov3', None, path).config
  size = MODELS[name]['image_size']
  vit_variants.add_variant('dinov3', f'tiny_{name}_80', dataclasses.replace(base, image_size=80))
  for variant, s in ((None, size), (f'tiny_{name}_80', 80)):
    pixels = np.random.default_rng(s).uniform(0, 255, (3, s, s, 3)).astype(np.float32)
    want = _outputs(
      model, ((pixels / 255 - vit_variants.IMAGENET_MEAN) / vit_variants.IMAGENET_STD).astype('f4')
    )
    for output in vit_variants.OUTPUTS['dinov3'] if variant is None else ['cls_patch_mean']:
      got = _memjax(vit_extractor.make_extractor('dinov3', variant, path, output=output), pixels)
      print(f'dinov3 {name} {s} px {output}: max abs {np.abs(got - want[output]).max():.1e}')
      assert np.abs(got - want[output]).max() <= MAX_ABS, (name, variant, output)


def test_pytorch_bin_in_memory_names_equals_the_safetensors(saved, tmp_path):
  """`torch.save(model.state_dict())` as pytorch_model.bin: transformers 5 holds the blocks as
  `model.layer.{i}` (saved files say `layer.{i}`); both read to the same parameters."""
  import torch

  model, path = saved['swiglu']
  state = model.state_dict()
  assert any(k.startswith('model.layer.0.') for k in state)
  torch.save(state, str(tmp_path / 'pytorch_model.bin'))
  shutil.copy(os.path.join(os.path.dirname(path), 'config.json'), tmp_path)
  a = vit_extractor.make_extractor('dinov3', None, path).params
  b = vit_extractor.make_extractor('dinov3', None, str(tmp_path / 'pytorch_model.bin')).params
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def _processor(path: str, size: int = 224) -> np.ndarray:
  """transformers' DINOv3ViTImageProcessor's steps: RGB -> float / 255 -> torchvision's resize
  of a float tensor (antialiased bilinear interpolate) -> ImageNet mean / std. [S, S, 3]."""
  import torch

  with Image.open(path) as image:
    x = torch.from_numpy(np.array(image.convert('RGB'))).permute(2, 0, 1)[None]
  x = x.to(torch.float32) * (1 / 255)
  x = torch.nn.functional.interpolate(
    x, size=(size, size), mode='bilinear', align_corners=False, antialias=True
  )
  mean, std = (
    torch.tensor(v).view(1, 3, 1, 1)
    for v in (vit_variants.IMAGENET_MEAN, vit_variants.IMAGENET_STD)
  )
  return ((x - mean) / std)[0].permute(1, 2, 0).numpy()


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def test_jpegs_equal_transformers(saved, tmp_path):
  """End to end at the processor's 224 x 224: every output within relative L2 1e-4. Rounding
  the resized image to 8 bits (the uint8 pipeline of the other families) would be 10x off."""
  model, path = saved['gelu_reg4']
  paths = mixed_jpegs.write(str(tmp_path))
  want = _outputs(model, np.stack([_processor(p) for p in paths]))
  vit_variants.add_variant('dinov3', 'tiny_224', dataclasses.replace(
    vit_extractor.make_extractor('dinov3', None, path).config, image_size=224, resize_to=224
  ))  # fmt: skip
  for output in vit_variants.OUTPUTS['dinov3']:
    e = vit_extractor.make_extractor('dinov3', 'tiny_224', path, output=output)
    assert e.geometry == Geometry(224, 224, 'bilinear', 'truncate', 'stretch', 'float32')
    batch = next(images.image_batches(paths, batch_size=len(paths), resize_to=224,
                                      image_size=224, geometry=e.geometry))  # fmt: skip
    got = _memjax(e, batch['image'])
    rel = _relative_l2(got, want[output])
    print(f'dinov3 {output}: max abs {np.abs(got - want[output]).max():.1e}, rel L2 {rel:.1e}')
    assert rel <= RELATIVE_L2, output
    assert _relative_l2(want[output][1:], want[output][:1]) > 1000 * RELATIVE_L2
  rounded = dataclasses.replace(e.geometry, pixels='uint8')
  batch = next(images.image_batches(paths, batch_size=len(paths), resize_to=224, image_size=224,
                                    geometry=rounded))  # fmt: skip
  assert _relative_l2(_memjax(e, batch['image']), want[output]) > 10 * RELATIVE_L2
