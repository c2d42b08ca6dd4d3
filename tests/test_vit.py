"""CLIP / SigLIP / DINOv2 (memjax/features/vit/): file layouts, errors, shapes,
extraction end to end. The equivalence with the reference implementation is test_vit_reference.py.

The writers here lay random tensors out as the published files do (Hugging Face names and
PyTorch shapes; OpenCLIP and big_vision renamed from them as their converters map them).
"""

import dataclasses
import json
import os

import jax
import numpy as np
import numpy_mlp
import pytest
from PIL import Image
from references import require

from memjax.errors import InputError
from memjax.features.readers import safetensors as safetensors_reader
from memjax.features.readers import weight_files
from memjax.features.vit import extractor as vit_extractor
from memjax.features.vit import from_hf
from memjax.features.vit import model as vit
from memjax.features.vit import variants as vit_variants
from memjax.features.vit.variants import VARIANTS

TINY = {
  'clip': dataclasses.replace(VARIANTS['clip']['b16'], patch=8, width=32, depth=2, heads=4,
                              mlp=128, image_size=32, resize_to=32, proj_dim=16),
  'clip_gelu': dataclasses.replace(VARIANTS['clip']['b16_gelu'], patch=8, width=32, depth=2,
                                   heads=4, mlp=128, image_size=32, resize_to=32, proj_dim=16),
  'siglip': dataclasses.replace(VARIANTS['siglip']['b16_224'], patch=8, width=32, depth=2,
                                heads=4, mlp=48, image_size=32, resize_to=32),
  'dinov2': dataclasses.replace(VARIANTS['dinov2']['b14'], patch=8, width=32, depth=2,
                                heads=4, mlp=128, image_size=32, resize_to=36),
  'dinov2_reg': dataclasses.replace(VARIANTS['dinov2']['b14_reg'], patch=8, width=32,
                                    depth=2, heads=4, mlp=128, image_size=32, resize_to=36),
}  # fmt: skip
for _name, _cfg in TINY.items():
  vit_variants.add_variant(_cfg.family, f'tiny_{_name}', _cfg)


def _linear(out: dict, name: str, d_in: int, d_out: int, rng, bias: bool = True) -> None:
  out[f'{name}.weight'] = rng.standard_normal((d_out, d_in)) * d_in**-0.5
  if bias:
    out[f'{name}.bias'] = rng.standard_normal(d_out) * 0.1


def _norm(out: dict, name: str, d: int, rng) -> None:
  out[f'{name}.weight'] = 1 + 0.2 * rng.standard_normal(d)
  out[f'{name}.bias'] = 0.1 * rng.standard_normal(d)


def _hf_encoder(out: dict, c: vit_variants.ViTConfig, prefix: str, rng, names: dict) -> None:
  for i in range(c.depth):
    p = f'{prefix}{i}.'
    _norm(out, p + names['ln1'], c.width, rng)
    for n in ('q', 'k', 'v', 'out'):
      _linear(out, p + names[n], c.width, c.width, rng)
    _norm(out, p + names['ln2'], c.width, rng)
    _linear(out, p + 'mlp.fc1', c.width, c.mlp, rng)
    _linear(out, p + 'mlp.fc2', c.mlp, c.width, rng)


_CLIP_NAMES = {
  'ln1': 'layer_norm1',
  'ln2': 'layer_norm2',
  'q': 'self_attn.q_proj',
  'k': 'self_attn.k_proj',
  'v': 'self_attn.v_proj',
  'out': 'self_attn.out_proj',
}
_DINO_NAMES = {'ln1': 'norm1', 'ln2': 'norm2', 'q': 'attention.attention.query',
               'k': 'attention.attention.key', 'v': 'attention.attention.value',
               'out': 'attention.output.dense'}  # fmt: skip


def hf_tensors(c: vit_variants.ViTConfig, seed: int = 0, pos_grid: int | None = None) -> dict:
  """Random tensors named and shaped as the family's Hugging Face `model.safetensors`."""
  rng, d, out = np.random.default_rng(seed), c.width, {}
  conv = (d, 3, c.patch, c.patch)
  if c.family in ('clip', 'siglip'):
    v = 'vision_model.'
    out[f'{v}embeddings.patch_embedding.weight'] = rng.standard_normal(conv) * 0.1
    out[f'{v}embeddings.position_embedding.weight'] = rng.standard_normal((c.positions, d)) * 0.5
    out[f'{v}embeddings.position_ids'] = np.arange(c.positions)[None]  # a buffer older files keep
    _hf_encoder(out, c, f'{v}encoder.layers.', rng, _CLIP_NAMES)
    _norm(out, f'{v}post_layernorm', d, rng)
    out['text_model.embeddings.token_embedding.weight'] = rng.standard_normal((10, 8))
  if c.family == 'clip':
    out[f'{v}embeddings.class_embedding'] = rng.standard_normal(d) * 0.5
    _norm(out, f'{v}pre_layrnorm', d, rng)
    _linear(out, 'visual_projection', d, c.proj_dim, rng, bias=False)
  elif c.family == 'siglip':
    out[f'{v}embeddings.patch_embedding.bias'] = rng.standard_normal(d) * 0.1
    out[f'{v}head.probe'] = rng.standard_normal((1, 1, d))
    out[f'{v}head.attention.in_proj_weight'] = rng.standard_normal((3 * d, d)) * d**-0.5
    out[f'{v}head.attention.in_proj_bias'] = rng.standard_normal(3 * d) * 0.1
    _linear(out, f'{v}head.attention.out_proj', d, d, rng)
    _norm(out, f'{v}head.layernorm', d, rng)
    _linear(out, f'{v}head.mlp.fc1', d, c.mlp, rng)
    _linear(out, f'{v}head.mlp.fc2', c.mlp, d, rng)
  else:
    g = pos_grid or c.grid
    out['embeddings.cls_token'] = rng.standard_normal((1, 1, d)) * 0.5
    out['embeddings.mask_token'] = np.zeros((1, d))
    out['embeddings.position_embeddings'] = rng.standard_normal((1, g * g + 1, d)) * 0.5
    out['embeddings.patch_embeddings.projection.weight'] = rng.standard_normal(conv) * 0.1
    out['embeddings.patch_embeddings.projection.bias'] = rng.standard_normal(d) * 0.1
    if c.registers:
      out['embeddings.register_tokens'] = rng.standard_normal((1, c.registers, d)) * 0.5
    _hf_encoder(out, c, 'encoder.layer.', rng, _DINO_NAMES)
    for i in range(c.depth):
      for k in (1, 2):
        out[f'encoder.layer.{i}.layer_scale{k}.lambda1'] = 0.5 + 0.1 * rng.standard_normal(d)
    _norm(out, 'layernorm', d, rng)
  return {k: np.asarray(v, np.int64 if k.endswith('_ids') else np.float32) for k, v in out.items()}


def open_clip_tensors(hf: dict, c: vit_variants.ViTConfig) -> dict:
  """The same CLIP weights under OpenCLIP's names (`visual.*`; q/k/v as one `in_proj`)."""
  v, out = 'vision_model.', {}
  out['visual.conv1.weight'] = hf[f'{v}embeddings.patch_embedding.weight']
  out['visual.class_embedding'] = hf[f'{v}embeddings.class_embedding']
  out['visual.positional_embedding'] = hf[f'{v}embeddings.position_embedding.weight']
  out['visual.proj'] = hf['visual_projection.weight'].T
  for a, b in (('ln_pre', 'pre_layrnorm'), ('ln_post', 'post_layernorm')):
    for f in ('weight', 'bias'):
      out[f'visual.{a}.{f}'] = hf[f'{v}{b}.{f}']
  for i in range(c.depth):
    p, q = f'visual.transformer.resblocks.{i}.', f'{v}encoder.layers.{i}.'
    for f in ('weight', 'bias'):
      out[f'{p}ln_1.{f}'] = hf[f'{q}layer_norm1.{f}']
      out[f'{p}ln_2.{f}'] = hf[f'{q}layer_norm2.{f}']
      out[f'{p}attn.out_proj.{f}'] = hf[f'{q}self_attn.out_proj.{f}']
      out[f'{p}mlp.c_fc.{f}'] = hf[f'{q}mlp.fc1.{f}']
      out[f'{p}mlp.c_proj.{f}'] = hf[f'{q}mlp.fc2.{f}']
      qkv = [hf[f'{q}self_attn.{n}_proj.{f}'] for n in 'qkv']
      out[f'{p}attn.in_proj_{f}'] = np.concatenate(qkv)
  out['token_embedding.weight'] = np.zeros((10, 8), np.float32)
  return out


def big_vision_tensors(hf: dict, c: vit_variants.ViTConfig) -> dict:
  """The same SigLIP weights as big_vision's `.npz` (flax kernels, per-head attention)."""
  v, d, h, out = 'vision_model.', c.width, c.heads, {}
  img = 'params/img/'
  heads_in = lambda w: w.T.reshape(d, h, d // h)  # noqa: E731
  out[f'{img}embedding/kernel'] = hf[f'{v}embeddings.patch_embedding.weight'].transpose(2, 3, 1, 0)
  out[f'{img}embedding/bias'] = hf[f'{v}embeddings.patch_embedding.bias']
  out[f'{img}pos_embedding'] = hf[f'{v}embeddings.position_embedding.weight'][None]

  def norm(dst: str, src: str) -> None:
    out[f'{dst}/scale'], out[f'{dst}/bias'] = hf[f'{src}.weight'], hf[f'{src}.bias']

  def dense(dst: str, src: str) -> None:
    out[f'{dst}/kernel'], out[f'{dst}/bias'] = hf[f'{src}.weight'].T, hf[f'{src}.bias']

  def attention(dst: str, w: list, b: list, w_out: np.ndarray, b_out: np.ndarray) -> None:
    for n, wi, bi in zip(('query', 'key', 'value'), w, b, strict=True):
      out[f'{dst}/{n}/kernel'], out[f'{dst}/{n}/bias'] = heads_in(wi), bi.reshape(h, d // h)
    out[f'{dst}/out/kernel'], out[f'{dst}/out/bias'] = w_out.T.reshape(h, d // h, d), b_out

  for i in range(c.depth):
    p, q = f'{img}Transformer/encoderblock_{i}/', f'{v}encoder.layers.{i}.'
    norm(f'{p}LayerNorm_0', f'{q}layer_norm1')
    norm(f'{p}LayerNorm_1', f'{q}layer_norm2')
    dense(f'{p}MlpBlock_0/Dense_0', f'{q}mlp.fc1')
    dense(f'{p}MlpBlock_0/Dense_1', f'{q}mlp.fc2')
    attention(
      f'{p}MultiHeadDotProductAttention_0',
      [hf[f'{q}self_attn.{n}_proj.weight'] for n in 'qkv'],
      [hf[f'{q}self_attn.{n}_proj.bias'] for n in 'qkv'],
      hf[f'{q}self_attn.out_proj.weight'],
      hf[f'{q}self_attn.out_proj.bias'],
    )
  norm(f'{img}Transformer/encoder_norm', f'{v}post_layernorm')
  m = f'{img}MAPHead_0/'
  out[f'{m}probe'] = hf[f'{v}head.probe']
  norm(f'{m}LayerNorm_0', f'{v}head.layernorm')
  dense(f'{m}MlpBlock_0/Dense_0', f'{v}head.mlp.fc1')
  dense(f'{m}MlpBlock_0/Dense_1', f'{v}head.mlp.fc2')
  w, b = hf[f'{v}head.attention.in_proj_weight'], hf[f'{v}head.attention.in_proj_bias']
  attention(
    f'{m}MultiHeadDotProductAttention_0',
    np.split(w, 3),
    np.split(b, 3),
    hf[f'{v}head.attention.out_proj.weight'],
    hf[f'{v}head.attention.out_proj.bias'],
  )
  out['params/txt/Embed_0/embedding'] = np.zeros((10, 8), np.float32)
  return out


def save_safetensors(tensors: dict, path) -> str:
  from safetensors.numpy import save_file

  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
  return str(path)


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def features(family: str, variant: str, path: str, images: np.ndarray, **kw) -> np.ndarray:
  e = vit_extractor.make_extractor(family, variant, path, **kw)
  return np.asarray(jax.jit(e.forward)(e.params, images))


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
  require('safetensors')
  hf = hf_tensors(TINY['clip'])
  return hf, save_safetensors(hf, tmp_path_factory.mktemp('clip') / 'model.safetensors')


def test_safetensors_reader_matches_the_writer(clip_file):
  hf, path = clip_file
  read = safetensors_reader.read(path)
  assert sorted(read) == sorted(hf)
  for k, v in hf.items():
    np.testing.assert_array_equal(read[k], v)
    assert read[k].dtype == v.dtype


def test_safetensors_bfloat16_and_truncated(tmp_path):
  import ml_dtypes

  x = np.arange(6, dtype=np.float32).reshape(2, 3).astype(ml_dtypes.bfloat16)
  header = json.dumps({'x': {'dtype': 'BF16', 'shape': [2, 3], 'data_offsets': [0, 12]}}).encode()
  path = tmp_path / 'w.safetensors'
  path.write_bytes(len(header).to_bytes(8, 'little') + header + x.tobytes())
  np.testing.assert_array_equal(safetensors_reader.read(str(path))['x'], x)
  path.write_bytes(len(header).to_bytes(8, 'little') + header + x.tobytes()[:8])
  with pytest.raises(InputError, match="'x' lies outside the file"):
    safetensors_reader.read(str(path))


def test_open_clip_and_pytorch_bin_equal_the_safetensors(clip_file, tmp_path):
  import torch_files

  hf, path = clip_file
  images = random_images(3, 32)
  want = features('clip', 'tiny_clip', path, images)
  assert want.shape == (3, 16)
  oc = tmp_path / 'open_clip_pytorch_model.bin'
  torch_files.save_zip(oc, {k: torch_files.tensor(v) for k, v in open_clip_tensors(
    hf, TINY['clip']).items()})  # fmt: skip
  np.testing.assert_allclose(features('clip', 'tiny_clip', str(oc), images), want, atol=1e-6)
  hf_bin = tmp_path / 'pytorch_model.bin'
  torch_files.save_zip(hf_bin, {k: torch_files.tensor(v) for k, v in hf.items()})
  np.testing.assert_allclose(features('clip', 'tiny_clip', str(hf_bin), images), want, atol=1e-6)


def test_big_vision_npz_equals_the_hf_siglip(tmp_path):
  require('safetensors')
  c = TINY['siglip']
  hf = hf_tensors(c, seed=1)
  path = save_safetensors(hf, tmp_path / 'model.safetensors')
  npz = tmp_path / 'siglip.npz'
  np.savez(npz, **big_vision_tensors(hf, c))
  images = random_images(3, 32, seed=1)
  want = features('siglip', 'tiny_siglip', path, images)
  np.testing.assert_allclose(features('siglip', 'tiny_siglip', str(npz), images), want, atol=1e-5)


def test_wrapped_dinov2_and_scanned_big_vision(tmp_path):
  require('safetensors')
  c = TINY['dinov2']
  hf = hf_tensors(c, seed=2, pos_grid=5)
  images = random_images(2, 32, seed=2)
  want = features('dinov2', 'tiny_dinov2', save_safetensors(hf, tmp_path / 'a.safetensors'), images)
  wrapped = {f'dinov2.{k}': v for k, v in hf.items()}  # a Dinov2ForImageClassification file
  wrapped['classifier.weight'] = np.zeros((10, 64), np.float32)
  path = save_safetensors(wrapped, tmp_path / 'b.safetensors')
  np.testing.assert_array_equal(features('dinov2', 'tiny_dinov2', path, images), want)
  s = TINY['siglip']
  bv = big_vision_tensors(hf_tensors(s, seed=2), s)
  unscanned = tmp_path / 'siglip.npz'
  np.savez(unscanned, **bv)
  block = 'params/img/Transformer/encoderblock'
  scanned = {k: v for k, v in bv.items() if not k.startswith(f'{block}_')}
  for k in [k for k in bv if k.startswith(f'{block}_0/')]:
    rest = k[len(f'{block}_0/') :]
    scanned[f'{block}/{rest}'] = np.stack([bv[f'{block}_{i}/{rest}'] for i in range(s.depth)])
  np.savez(tmp_path / 'scanned.npz', **{k.removeprefix('params/'): v for k, v in scanned.items()})
  images = random_images(2, 32, seed=3)
  np.testing.assert_array_equal(
    features('siglip', 'tiny_siglip', str(tmp_path / 'scanned.npz'), images),
    features('siglip', 'tiny_siglip', str(unscanned), images),
  )


@pytest.mark.parametrize(
  ('drop', 'change', 'message'),
  [
    ('vision_model.encoder.layers.1.mlp.fc2.bias', None, r"'vision_model\.encoder\.layers\.1\."
     r"mlp\.fc2\.bias' is missing"),
    (None, 'visual_projection.weight', r"'visual_projection\.weight' has shape \(16, 31\), "
     r'expected \(16, 32\)'),
  ],
)  # fmt: skip
def test_partial_or_misshaped_file_fails_in_one_line(clip_file, tmp_path, drop, change, message):
  hf, _ = clip_file
  bad = dict(hf)
  if drop:
    del bad[drop]
  if change:
    bad[change] = bad[change][:, :-1]
  path = save_safetensors(bad, tmp_path / 'model.safetensors')
  with pytest.raises(InputError, match=message) as e:
    vit_extractor.make_extractor('clip', 'tiny_clip', path)
  assert '\n' not in str(e.value)


def test_wrong_family_and_wrong_variant_fail_in_one_line(clip_file):
  _, path = clip_file
  with pytest.raises(InputError, match='not a dinov2 image encoder'):
    vit_extractor.make_extractor('dinov2', 'tiny_dinov2', path)
  with pytest.raises(
    InputError, match=r'tensor shapes show width 32, but variant clip/b16 has 768'
  ):
    vit_extractor.make_extractor('clip', 'b16', path)
  with pytest.raises(InputError, match='variant must be one of'):
    vit_extractor.make_extractor('clip', 'b15', path)
  with pytest.raises(InputError, match='output must be one of'):
    vit_extractor.make_extractor('clip', 'tiny_clip', path, output='cls_patch_mean')
  with pytest.raises(InputError, match=r'pool_depths must be blocks 1\.\.2 of clip, got \[3\]'):
    vit_extractor.make_extractor('clip', 'tiny_clip', path, pool_depths=(3,))


def test_torch_bicubic_weights():
  # PyTorch's upsample_bicubic2d (align_corners=False): source x = (i + 0.5) * in / out - 0.5,
  # cubic convolution with A = -0.75 on the 4 neighbours, reads clamped to the edge. By hand,
  # [0, 1] -> 4: i = 0: x = -0.25, weights (-0.0352, 0.2617, 0.8789, -0.1055) on pixels
  # (0, 0, 0, 1) -> -0.10546875; i = 1: x = 0.25, weights (-0.1055, 0.8789, 0.2617, -0.0352) on
  # (0, 0, 1, 1) -> 0.2265625; the rest by symmetry. (OpenCV's INTER_CUBIC, the same kernel and
  # sampling, agreed with `_cubic_matrix` to 5e-7 on 37 -> 16, DINOv2's case, in a one-off check.)
  m = from_hf._cubic_matrix(2, 4)
  np.testing.assert_allclose(m @ [0.0, 1.0], [-0.10546875, 0.2265625, 0.7734375, 1.10546875])
  np.testing.assert_allclose(from_hf._cubic_matrix(37, 16).sum(axis=1), 1.0)
  np.testing.assert_allclose(from_hf._cubic_matrix(5, 5), np.eye(5), atol=1e-12)


@pytest.mark.parametrize(
  ('family', 'variant', 'dim'),
  [
    ('clip', 'b32', 512),
    ('clip', 'l14', 768),
    ('siglip', 'so400m14_384', 1152),
    ('dinov2', 'l14_reg', 2048),
    ('dinov2', 's14', 768),
  ],
)
def test_full_size_shapes(family, variant, dim):
  cfg = vit_variants.get_config(family, variant)
  model = vit.VisionTransformer(cfg, vit_variants.OUTPUTS[family][0])
  shapes = vit.param_shapes(cfg)
  images = jax.ShapeDtypeStruct((2, cfg.image_size, cfg.image_size, 3), np.uint8)
  out = jax.eval_shape(lambda p, x: vit.forward(p, x, model=model), shapes, images)
  assert (
    out.shape == (2, dim) == (2, vit_variants.feature_dim(cfg, vit_variants.OUTPUTS[family][0]))
  )
  n = sum(np.prod(s.shape) for s in jax.tree.leaves(shapes))
  # Published vision-tower sizes; DINOv2's less the 37 x 37 position table (here 16 x 16) and
  # the mask token: ViT-S/14 22.06M - 1113 x 384 - 384.
  expected = {'b32': 87.8e6, 'l14': 303.9e6, 'so400m14_384': 428.2e6, 'l14_reg': 303.2e6,
              's14': 21.63e6}[variant]  # fmt: skip
  assert abs(n - expected) / expected < 0.01, n


def test_pool_depths_and_bfloat16(clip_file):
  _, path = clip_file
  images = random_images(2, 32)
  base = features('clip', 'tiny_clip', path, images, output='pooled')
  pooled = features('clip', 'tiny_clip', path, images, output='pooled', pool_depths=(1, 2))
  assert pooled.shape == (2, 32 * 3)
  np.testing.assert_allclose(pooled[:, :32], base, atol=1e-5)
  bf16 = features('clip', 'tiny_clip', path, images, output='pooled', dtype='bfloat16')
  assert bf16.dtype == np.float32
  assert np.abs(bf16 - base).max() < 0.1 * np.abs(base).max()


def test_extract_end_to_end(tmp_path, test_config):
  """A tiny CLIP file -> --mode=extract of a folder -> CLIP features in the store; fused with the
  colour grid (another image geometry), CLIP follows the grid's crops and resizes them itself.
  Alone, CLIP's images are cut as its reference processor cuts them (bicubic, truncated)."""
  require('safetensors')
  from memjax import extract
  from memjax.features import images as images_lib
  from memjax.features import store

  weights = save_safetensors(hf_tensors(TINY['clip'], seed=3), tmp_path / 'model.safetensors')
  folder = tmp_path / 'images'
  folder.mkdir()
  rng = np.random.default_rng(0)
  with open(folder / 'scores.csv', 'w') as f:
    f.write('image,score\n')
    for i in range(6):
      size = (40 + 7 * i, 36 + 3 * i)
      Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(folder / f'{i}.png')
      f.write(f'{i}.png,0.{i}\n')
  config = test_config
  config.data.name = 'image_folder'
  config.data.dir = str(folder)
  config.extractors.clip.variant = 'tiny_clip'
  config.extractors.clip.weights = weights
  config.extract.batch_size = 4
  config.extract.dtype = 'float32'
  e = vit_extractor.make_extractor('clip', 'tiny_clip', weights)
  from memjax.features.geometry import Geometry

  for features, geometry in ((('clip',), e.geometry), (('clip', 'color_grid'), Geometry(256, 224))):
    config.features = features
    config.data.features_dir = str(tmp_path / '_'.join(features))
    assert extract.extract(config, str(tmp_path))['num_images'] == 6
    ids, arrays, meta = store.read_store(config.data.features_dir)
    assert arrays['clip'].shape == (6, 16)
    entry = meta['features']['clip']
    assert entry['extractor'] == 'clip_tiny_clip/embedding'
    assert entry['weights_sha256'] == weight_files.file_sha256(weights)
    assert entry['input_size'] == [geometry.image_size] * 2
    g = geometry
    crops = np.stack([images_lib.load_image(str(folder / i), 0, 0, g) for i in ids])
    want = np.asarray(jax.jit(e.forward)(e.params, crops))
    np.testing.assert_allclose(np.asarray(arrays['clip']), want, rtol=1e-4, atol=1e-4)
  assert 'resized to 32 inside the model' in entry['preprocessing']
  assert arrays['color_grid'].shape == (6, 48)


def test_on_the_fly_training_and_predict(tmp_path, test_config):
  """CLIP fused with the colour grid, computed inside the training steps, then in predict."""
  require('safetensors')
  import csv

  from memjax import predict, train

  weights = save_safetensors(hf_tensors(TINY['clip'], seed=4), tmp_path / 'model.safetensors')
  folder = tmp_path / 'images'
  folder.mkdir()
  rng = np.random.default_rng(1)
  with open(folder / 'scores.csv', 'w') as f:
    f.write('image,score\n')
    for i in range(24):
      Image.fromarray(rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)).save(
        folder / f'{i}.png'
      )
      f.write(f'{i}.png,{rng.uniform():.3f}\n')
  config = test_config
  config.data.name = 'image_folder'
  config.data.dir = str(folder)
  config.data.on_the_fly = True
  config.data.run_folds = (0,)
  config.features = ('clip', 'color_grid')
  config.model.branch_units.clip = (8,)
  config.model.branch_units.color_grid = (8,)
  config.extractors.clip.variant = 'tiny_clip'
  config.extractors.clip.weights = weights
  config.num_epochs, config.batch_size = 2, 4
  live = train.train_and_evaluate(config, str(tmp_path / 'live'))
  assert live['folds'][0]['num_examples'] > 0 and np.isfinite(live['folds'][0]['loss'])
  config.predict.input = str(folder)
  out = predict.predict(config, str(tmp_path / 'live'))
  assert out['num_images'] == 24
  with open(out['output']) as f:
    written = {os.path.basename(r['path']): float(r['score']) for r in csv.DictReader(f)}
  assert len(written) == 24
  # The fold's chosen checkpoint (orbax) through the MLP in NumPy, on the CLIP features of the
  # shared crops (shorter side 256, centre 224; the ViT resizes to its 32 inside) and the NumPy
  # colour-grid means of the same crops, with the fold's s_k: predict's scores.
  from memjax.features import images as images_lib

  names = [f'{i}.png' for i in range(24)]
  crops = np.stack([images_lib.load_image(str(folder / n), 256, 224) for n in names])
  e = vit_extractor.make_extractor('clip', 'tiny_clip', weights)
  x = {
    'clip': np.asarray(jax.jit(e.forward)(e.params, crops)),
    'color_grid': (crops / 255.0).reshape(24, 4, 56, 4, 56, 3).mean(axis=(2, 4)).reshape(24, 48),
  }
  fold_dir = tmp_path / 'live' / 'fold_0'
  step = live['folds'][0]['checkpoint_step']
  params = numpy_mlp.checkpoint_params(str(fold_dir), step)
  values = numpy_mlp.checkpoint_meta(str(fold_dir), step)['values']
  probs = numpy_mlp.softmax(numpy_mlp.forward(params, x, config.features))
  np.testing.assert_allclose([written[n] for n in names], probs @ values, rtol=0, atol=1e-5)


def test_share_geometry():
  """ViTs take the other features' geometry, or the largest ViT's; fixed ones must agree."""
  from memjax.features import registry
  from memjax.features.extractor import Extractor

  def fake(family: str, resize_to: int, size: int) -> vit_extractor.ViTExtractor:
    cfg = dataclasses.replace(TINY[family], image_size=size, resize_to=resize_to)
    return vit_extractor.ViTExtractor('x', 1, {}, None, size, resize_to, 'p', None, config=cfg)

  grid = registry.color_grid()
  out = vit_extractor.share_geometry({'clip': fake('clip', 32, 32), 'grid': grid})
  assert (out['clip'].resize_to, out['clip'].image_size) == (256, 224)
  assert 'resized to 32 inside the model' in out['clip'].preprocessing
  out = vit_extractor.share_geometry({'a': fake('clip', 32, 32), 'b': fake('siglip', 48, 48)})
  assert {(e.resize_to, e.image_size) for e in out.values()} == {(48, 48)}
  assert out['b'].preprocessing == 'p' and 'resized to 32' in out['a'].preprocessing
  out = vit_extractor.share_geometry({'a': fake('clip', 224, 224), 'g': grid})  # CLIP + VGG
  assert (out['a'].resize_to, out['a'].image_size) == (256, 224)
  assert 'are used at that size' in out['a'].preprocessing
  other = Extractor('vgg', 1, {}, None, 200, 230)
  with pytest.raises(InputError, match='want different inputs'):
    vit_extractor.share_geometry({'a': fake('clip', 32, 32), 'g': grid, 'v': other})
