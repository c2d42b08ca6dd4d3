"""SigLIP 2 (kind 'siglip', variants `v2_*`): the fixed-resolution files (SigLIP's layout) and
the NaFlex ones (`Siglip2Model` / `Siglip2VisionModel`), their configs, and equality with
transformers' torch models (CPU torch, test-only, requirements-reference.txt: skipped without
it, failed in CI).

The torch models are tiny (width 32, depth 2) with transformers' random initialisation, saved by
`save_pretrained`, read by memjax with no variant. NaFlex runs at one square size: model only,
memjax equals `Siglip2VisionModel` given the square grid as `spatial_shapes` and a full
attention mask, at the config's grid and (position embeddings resized) at others, within 1e-5.
End to end from JPEGs, within relative L2 1e-4: a fixed-resolution file with the bilinear
preprocessor_config.json SigLIP 2 publishes against `SiglipImageProcessorPil` (mixed aspect
ratios, stretched); a NaFlex file against `Siglip2ImageProcessorPil` on square photos (on
others NaFlex keeps the aspect ratio in a non-square grid, which memjax does not run).
"""

import dataclasses
import json

import jax
import mixed_jpegs
import numpy as np
import pytest
from PIL import Image
from references import require

from memjax.errors import InputError
from memjax.features import images
from memjax.features.vit import architecture, config_files
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import variants as vit_variants

MAX_ABS, RELATIVE_L2 = 1e-5, 1e-4
_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
# The published sizes: google/siglip2-{base,large,so400m,giant-opt}-patchP-S's vision_config.
_SIZES = {
  'b': dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
  'l': dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24),
  'so400m': dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16,
                 num_hidden_layers=27),
  'g': dict(hidden_size=1536, intermediate_size=6144, num_attention_heads=16, num_hidden_layers=40),
}  # fmt: skip


def _published(name: str) -> tuple[dict, int, int]:
  """(vision_config fields, patch, size) of variant `v2_{size}{patch}_{image size}`."""
  size, image_size = name[3:].split('_')
  family, patch = size.rstrip('0123456789'), int(size[len(size.rstrip('0123456789')) :])
  return _SIZES[family], patch, int(image_size)


@pytest.mark.parametrize(
  'name', sorted(n for n in vit_variants.VARIANTS['siglip'] if n.startswith('v2_'))
)
def test_published_configs_name_siglip2_variants(tmp_path, name):
  """A full model's config.json (Gemma's 256000-token text tower) names a fixed-resolution file
  SigLIP 2 and gives it SigLIP 2's bilinear resize; the vision tower alone cannot tell."""
  fields, patch, size = _published(name)
  vision = dict(fields, model_type='siglip_vision_model', patch_size=patch, image_size=size)
  config = {'model_type': 'siglip', 'vision_config': vision, 'text_config': {'vocab_size': 256000}}
  (tmp_path / 'config.json').write_text(json.dumps(config))
  weights = str(tmp_path / 'model.safetensors')
  cfg, variant = architecture.resolve('siglip', None, weights, {}, 'float32')
  assert (variant, cfg.resample) == (name, 'bilinear')
  assert vit_extractor.reference_geometry(cfg, 'hf_siglip').resample == 'bilinear'
  assert vit_extractor.reference_geometry(cfg, 'timm_siglip').resample == 'bicubic'
  (tmp_path / 'config.json').write_text(json.dumps(dict(vision, model_type='siglip_vision_model')))
  cfg, variant = architecture.resolve('siglip', None, weights, {}, 'float32')
  assert cfg.resample == 'bicubic' and not variant.startswith('v2_')


def test_naflex_config(tmp_path):
  """NaFlex: the square of num_patches is the default size; a variant may run another."""
  vision = dict(_SIZES['so400m'], model_type='siglip2_vision_model', num_patches=256)
  (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'siglip2',
                                                    'vision_config': vision}))  # fmt: skip
  weights = str(tmp_path / 'model.safetensors')
  assert architecture.resolve('siglip', None, weights, {}, 'float32')[1] == 'v2_so400m16_256'
  assert architecture.resolve('siglip', 'v2_so400m16_512', weights, {}, 'float32')[1]
  with pytest.raises(InputError, match='says width 1152, but variant siglip/v2_b16_256 has 768'):
    architecture.resolve('siglip', 'v2_b16_256', weights, {}, 'float32')
  (tmp_path / 'config.json').write_text(json.dumps(dict(vision, num_patches=200)))
  with pytest.raises(InputError, match='num_patches 200 is not a square grid'):
    architecture.resolve('siglip', None, weights, {}, 'float32')


def test_processor_resample(tmp_path):
  weights = str(tmp_path / 'model.safetensors')
  assert config_files.processor_resample(weights) is None
  for resample, want in ((2, 'bilinear'), (3, 'bicubic'), (None, None)):
    (tmp_path / 'preprocessor_config.json').write_text(json.dumps({'resample': resample}))
    assert config_files.processor_resample(weights) == want
  (tmp_path / 'preprocessor_config.json').write_text(json.dumps({'resample': 1}))
  with pytest.raises(InputError, match='resample 1 is not a filter memjax has'):
    config_files.processor_resample(weights)


# --- Equality with transformers' torch models ------------------------------------------------


@pytest.fixture(scope='module')
def saved(tmp_path_factory) -> dict:
  """{name: (torch vision model, processor, path of its model.safetensors)}: a NaFlex vision
  model (4 x 4 position grid, patch 8), a full NaFlex Siglip2Model, and a fixed-resolution
  SigLIP vision model with SigLIP 2's bilinear preprocessor_config.json."""
  torch = require('torch')
  t = require('transformers')
  torch.manual_seed(0)
  naflex = dict(_TINY, patch_size=8, num_patches=16)
  text = dict(_TINY, vocab_size=64, max_position_embeddings=8, bos_token_id=0, eos_token_id=1)
  full = t.Siglip2Model(t.Siglip2Config(vision_config=naflex, text_config=text))
  models = {
    'naflex': (t.Siglip2VisionModel(t.Siglip2VisionConfig(**naflex)),
               t.Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)),
    'naflex_full': (full, None),
    'fixed': (t.SiglipVisionModel(t.SiglipVisionConfig(**_TINY, patch_size=16, image_size=64)),
              t.SiglipImageProcessorPil(size={'height': 64, 'width': 64}, resample=2)),
  }  # fmt: skip
  out = {}
  for name, (model, processor) in models.items():
    folder = tmp_path_factory.mktemp(name)
    model.eval().save_pretrained(str(folder))
    if name == 'fixed':
      processor.save_pretrained(str(folder))
    vision = model.vision_model if name == 'naflex_full' else model
    out[name] = (vision, processor, str(folder / 'model.safetensors'))
  return out


def _naflex_outputs(model, pixels: np.ndarray, patch: int) -> dict:
  """Siglip2VisionModel's outputs of normalised square pixels [B, S, S, 3]: the patches of the
  whole square grid, all attended."""
  import torch

  b, s = pixels.shape[:2]
  g = s // patch
  patches = pixels.reshape(b, g, patch, g, patch, 3).transpose(0, 1, 3, 2, 4, 5)
  with torch.no_grad():
    out = model(
      pixel_values=torch.from_numpy(patches.reshape(b, g * g, -1)),
      pixel_attention_mask=torch.ones(b, g * g, dtype=torch.long),
      spatial_shapes=torch.tensor([[g, g]] * b),
    )
  return {'pooled': out.pooler_output.numpy(), 'patch_mean': out.last_hidden_state.mean(1).numpy()}


def _memjax(e, pixels: np.ndarray) -> np.ndarray:
  return np.asarray(jax.jit(e.forward)(e.params, pixels))


@pytest.mark.parametrize('name', ['naflex', 'naflex_full'])
def test_naflex_model_equals_transformers(saved, name):
  """At the config's 4 x 4 grid (both outputs), and at 6 x 6 and 3 x 3 through variants (the
  position embeddings resized as Siglip2VisionEmbeddings does): within 1e-5."""
  model, _, path = saved[name]
  base = vit_extractor.make_extractor('siglip', None, path)
  assert (base.config.image_size, base.config.resample) == (32, 'bilinear')
  runs = [(None, 32, 'pooled'), (None, 32, 'patch_mean')]
  for size in (48, 24):
    vit_variants.add_variant('siglip', f'tiny_naflex_{size}',
                    dataclasses.replace(base.config, image_size=size, resize_to=size))  # fmt: skip
    runs.append((f'tiny_naflex_{size}', size, 'pooled'))
  for variant, size, output in runs:
    pixels = np.random.default_rng(size).uniform(0, 255, (3, size, size, 3)).astype(np.float32)
    want = _naflex_outputs(model, (pixels / 127.5 - 1).astype(np.float32), 8)[output]
    got = _memjax(vit_extractor.make_extractor('siglip', variant, path, output=output), pixels)
    print(f'siglip2 {name} {size} px {output}: max abs {np.abs(got - want).max():.1e}')
    assert np.abs(got - want).max() <= MAX_ABS, (variant, output)


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _decode(paths: list[str], geometry) -> np.ndarray:
  batch = next(images.image_batches(paths, batch_size=len(paths), resize_to=geometry.resize_to,
                                    image_size=geometry.image_size, geometry=geometry))  # fmt: skip
  assert batch['ok'].all()
  return batch['image']


def _check(got: np.ndarray, want: np.ndarray, what: str) -> None:
  rel = _relative_l2(got, want)
  print(f'{what}: max abs {np.abs(got - want).max():.1e}, relative L2 {rel:.1e}')
  assert rel <= RELATIVE_L2, what
  assert _relative_l2(want[1:], want[:1]) > 1000 * RELATIVE_L2  # the images' features differ


def test_fixed_resolution_jpegs_equal_transformers(saved, tmp_path):
  """The published preprocessor_config.json's bilinear resize is used: both outputs equal
  SiglipImageProcessorPil + SiglipVisionModel; SigLIP's bicubic would be off by far more."""
  import torch

  model, processor, path = saved['fixed']
  paths = mixed_jpegs.write(str(tmp_path))
  pixels = []
  for p in paths:
    with Image.open(p) as image:
      pixels.append(processor(images=image.convert('RGB'), return_tensors='np')['pixel_values'])
  with torch.no_grad():
    out = model(pixel_values=torch.from_numpy(np.concatenate(pixels)))
  want = {'pooled': out.pooler_output.numpy(), 'patch_mean': out.last_hidden_state.mean(1).numpy()}
  for output in vit_variants.OUTPUTS['siglip']:
    e = vit_extractor.make_extractor('siglip', None, path, output=output)
    assert e.geometry.resample == 'bilinear'
    _check(_memjax(e, _decode(paths, e.geometry)), want[output], f'siglip2 fixed {output}')
  bicubic = dataclasses.replace(e.geometry, resample='bicubic')
  assert _relative_l2(_memjax(e, _decode(paths, bicubic)), want[output]) > 10 * RELATIVE_L2


def test_naflex_square_jpegs_equal_transformers(saved, tmp_path):
  """Square photos: Siglip2ImageProcessorPil gives the square 4 x 4 grid, as memjax runs it."""
  import torch

  model, processor, path = saved['naflex']
  paths = mixed_jpegs.write(str(tmp_path), square_only=True)
  with_images = []
  for p in paths:
    with Image.open(p) as image:
      with_images.append(image.convert('RGB'))
  inputs = processor(images=with_images, return_tensors='pt')
  assert inputs['spatial_shapes'].tolist() == [[4, 4]] * len(paths)
  with torch.no_grad():
    out = model(**inputs)
  want = {'pooled': out.pooler_output.numpy(), 'patch_mean': out.last_hidden_state.mean(1).numpy()}
  for output in vit_variants.OUTPUTS['siglip']:
    e = vit_extractor.make_extractor('siglip', None, path, output=output)
    _check(_memjax(e, _decode(paths, e.geometry)), want[output], f'siglip2 naflex {output}')
