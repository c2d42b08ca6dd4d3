"""memjax's ViT features from JPEGs == transformers' (its PIL image processors and torch models).

End to end: JPEG files of mixed aspect ratios go through memjax's decoder and image pipeline
(`images.image_batches` with the extractor's reference geometry) and its Flax ViT; the
reference opens the same files with PIL, preprocesses them with transformers' PIL image
processors (`CLIPImageProcessorPil`, `SiglipImageProcessorPil`, `BitImageProcessorPil` with
facebook/dinov2's preprocessor config: the `use_fast=False` path) and runs transformers' torch
models. The models are tiny (width 32, depth 2) with transformers' own random initialisation at
the published input sizes (224; DINOv2 with its 518-px position grid run at 224), saved by
`save_pretrained` (model.safetensors + config.json), and memjax reads that folder's file with
no variant given: the architecture comes from the config.json. Every output memjax offers per
family must agree within relative L2 1e-4 (measured: 1e-7 to 3e-7).

transformers' torchvision processors (the default "fast" path) resize with torch's antialiased
bicubic, which differs from PIL's in the last bits; memjax follows the PIL path
(docs/backbones.md gives the size of the difference).

torch (the CPU build, requirements-reference.txt) and transformers are test-only references:
memjax itself never imports them (`test_memjax_never_imports_torch`).
"""

import os
import subprocess
import sys

import jax
import mixed_jpegs
import numpy as np
import pytest
from PIL import Image
from references import require

from memjax.features import images
from memjax.features.geometry import Geometry
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import variants as vit_variants
from memjax.features.vit.variants import IMAGENET_MEAN, IMAGENET_STD

torch = require('torch')
transformers = require('transformers')
require('safetensors')

TOLERANCE = 1e-4  # relative L2 over all images and feature dimensions
LNSIM = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'lnsim-dev')
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
_DINOV2_PROCESSOR = dict(  # facebook/dinov2-*'s preprocessor_config.json
  size={'shortest_edge': 256}, crop_size={'height': 224, 'width': 224}, resample=3,
  image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD), do_convert_rgb=True,
)  # fmt: skip


def _clip_outputs(model, pixels) -> dict:
  if isinstance(model, transformers.CLIPModel):
    embedding = model.get_image_features(pixel_values=pixels).pooler_output
  else:
    embedding = model(pixel_values=pixels).image_embeds
  return {'embedding': embedding, 'pooled': model.vision_model(pixel_values=pixels).pooler_output}


def _siglip_outputs(model, pixels) -> dict:
  out = model(pixel_values=pixels)
  return {'pooled': out.pooler_output, 'patch_mean': out.last_hidden_state.mean(1)}


def _dinov2_outputs(model, pixels) -> dict:
  tokens = model(pixel_values=pixels).last_hidden_state
  patches = tokens[:, 1 + getattr(model.config, 'num_register_tokens', 0) :].mean(1)
  return {'cls_patch_mean': torch.cat([tokens[:, 0], patches], -1), 'cls': tokens[:, 0],
          'patch_mean': patches}  # fmt: skip


def _models() -> dict:
  """{name: (family, model, processor, outputs)}: transformers' tiny models, eval mode."""
  t = transformers
  vision = dict(_TINY, intermediate_size=64, patch_size=16, image_size=224)
  text = dict(_TINY, intermediate_size=64, vocab_size=64, max_position_embeddings=8)
  dinov2 = dict(_TINY, patch_size=14, image_size=518)
  torch.manual_seed(0)
  models = {
    'clip': ('clip', t.CLIPModel(t.CLIPConfig(vision_config=vision, text_config=text,
             projection_dim=16)), t.CLIPImageProcessorPil(), _clip_outputs),
    'clip_gelu_tower': ('clip', t.CLIPVisionModelWithProjection(t.CLIPVisionConfig(
      hidden_act='gelu', projection_dim=16, **vision)), t.CLIPImageProcessorPil(), _clip_outputs),
    'siglip': ('siglip', t.SiglipVisionModel(t.SiglipVisionConfig(**vision)),
               t.SiglipImageProcessorPil(), _siglip_outputs),
    'dinov2': ('dinov2', t.Dinov2Model(t.Dinov2Config(**dinov2)),
               t.BitImageProcessorPil(**_DINOV2_PROCESSOR), _dinov2_outputs),
    'dinov2_reg': ('dinov2', t.Dinov2WithRegistersModel(t.Dinov2WithRegistersConfig(
      num_register_tokens=4, **dinov2)), t.BitImageProcessorPil(**_DINOV2_PROCESSOR),
      _dinov2_outputs),
  }  # fmt: skip
  for _, model, _, _ in models.values():
    model.eval()
  return models


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """{name: (family, model, processor, outputs, path of its model.safetensors)}."""
  out = {}
  for name, (family, model, processor, outputs) in _models().items():
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(str(folder))
    assert sorted(os.listdir(folder)) == ['config.json', 'model.safetensors']
    out[name] = (family, model, processor, outputs, str(folder / 'model.safetensors'))
  return out


@pytest.fixture(scope='module')
def sample_jpegs(tmp_path_factory) -> list[str]:
  """scikit-image's sample photos cut to mixed aspect ratios (square, 3:2, 2:3, 1:2.4, odd
  sizes), saved as JPEG."""
  return mixed_jpegs.write(str(tmp_path_factory.mktemp('jpegs')))


def _reference(model, processor, outputs, paths: list[str]) -> dict:
  pixels = []
  for path in paths:
    with Image.open(path) as image:
      pixels.append(processor(images=image.convert('RGB'), return_tensors='np')['pixel_values'])
  with torch.no_grad():
    out = outputs(model, torch.from_numpy(np.concatenate(pixels)))
  return {k: v.numpy() for k, v in out.items()}


def _memjax(path: str, family: str, output: str, paths: list[str], geometry=None) -> np.ndarray:
  e = vit_extractor.make_extractor(family, None, path, output=output)
  g = geometry or e.geometry
  batch = next(images.image_batches(
    paths, batch_size=len(paths), resize_to=g.resize_to, image_size=g.image_size, geometry=g
  ))  # fmt: skip
  assert batch['ok'].all()
  return np.asarray(jax.jit(e.forward)(e.params, batch['image']))


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _check(name: str, saved: dict, paths: list[str]) -> None:
  family, model, processor, outputs, path = saved[name]
  want = _reference(model, processor, outputs, paths)
  assert sorted(want) == sorted(vit_variants.OUTPUTS[family])  # every output memjax offers
  for output, reference in want.items():
    got = _memjax(path, family, output, paths)
    assert got.shape == reference.shape and got.dtype == np.float32, output
    rel = _relative_l2(got, reference)
    print(f'{name} {output}: max abs {np.abs(got - reference).max():.1e}, relative L2 {rel:.1e}')
    assert rel <= TOLERANCE, (name, output, rel)
    # Not a degenerate agreement: the images' features differ by far more than the tolerance.
    assert _relative_l2(reference[1:], reference[:1]) > 1000 * TOLERANCE, output
  # The comparison sees preprocessing: memjax's own recipe (bilinear, rounded sizes, no
  # stretch) is off by 2e-3 to 0.13, 20 to 1300 times the tolerance.
  e = vit_extractor.make_extractor(family, None, path)
  own = _memjax(path, family, e.name.split('/')[1], paths, Geometry(e.resize_to, e.image_size))
  assert _relative_l2(own, want[e.name.split('/')[1]]) > 10 * TOLERANCE


@pytest.mark.parametrize('name', ['clip', 'clip_gelu_tower', 'siglip', 'dinov2', 'dinov2_reg'])
def test_jpeg_features_equal_transformers(name, saved, sample_jpegs):
  _check(name, saved, sample_jpegs)


def test_lnsim_photos_equal_transformers(saved):
  """Real photos of lnsim-dev (when `../shared/data/lnsim-dev` exists): the first five with
  distinct aspect ratios (landscape, portrait, square and odd sizes)."""
  folder = os.path.join(LNSIM, 'images')
  if not os.path.isdir(folder):
    pytest.skip('no lnsim-dev photos at ../shared/data/lnsim-dev')
  paths, ratios = [], set()
  for name in sorted(os.listdir(folder)):
    with Image.open(os.path.join(folder, name)) as image:
      ratio = round(image.size[0] / image.size[1], 2)
    if ratio not in ratios:
      ratios.add(ratio)
      paths.append(os.path.join(folder, name))
    if len(paths) == 5:  # the batch size of sample_jpegs: the compiled programs are reused
      break
  for name in saved:
    _check(name, saved, paths)


def test_memjax_never_imports_torch():
  """The library stays torch-free (and free of transformers, which would import it): every
  memjax module imported in a fresh interpreter leaves both out of `sys.modules`."""
  code = (
    'import importlib, pkgutil, sys\n'
    'import memjax\n'
    'for m in pkgutil.walk_packages(memjax.__path__, "memjax."):\n'
    '  importlib.import_module(m.name)\n'
    'bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))\n'
    'assert not bad, bad\n'
    'print(len([m for m in sys.modules if m.startswith("memjax.")]))\n'
  )
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run(
    [sys.executable, '-c', code], cwd=root, capture_output=True, text=True, timeout=300
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert int(done.stdout.split()[-1]) > 50  # the modules were imported
