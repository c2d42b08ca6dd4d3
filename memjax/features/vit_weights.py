"""Weights of the CLIP / SigLIP / DINOv2 encoders (`vit.py`) from the files users have.

Layouts read (the family is the extractor's; the layout is recognised from the tensor names):

* Hugging Face `transformers` 4 and 5 (all families): `model.safetensors` or `pytorch_model.bin`
  of `openai/clip-vit-*`, `google/siglip-*` (and fixed-resolution `google/siglip2-*`, the same
  layout), `facebook/dinov2-*` (and `-with-registers-`, and giant's SwiGLU), of the full model
  (`vision_model.*`) or of the vision tower alone (`vision_model.*` as transformers 4 saves it,
  no prefix as transformers 5 does); CLIP's projection (`visual_projection.weight`, in
  `CLIPModel` and `CLIPVisionModelWithProjection`) only for `output='embedding'`, SigLIP's
  attention-pooling head only for `output='pooled'`;
* OpenCLIP (CLIP): `open_clip_model.safetensors` / `open_clip_pytorch_model.bin`, `visual.*`;
* big_vision (SigLIP): the released `.npz`, `params/img/...` names;
* timm (CLIP, SigLIP): `vit_*_clip_*` (`norm_pre`, fused `attn.qkv`, the projection as a
  zero-bias `head`) and `vit_*_siglip_*` (`attn_pool.*`: the MAP head), also as OpenCLIP's
  `visual.trunk.*`. timm's DINOv2 names are not read (refused: no dinov2 layout recognised).

Files are read by `readers.weight_files.read_tensors` (`.safetensors`, `.bin` / `.pth` / `.pt`
and `.npz`, none needing torch or safetensors). Anything else in the file (the text tower,
buffers) is ignored; a missing or mis-shaped tensor of the image tower fails in one line naming
it. The architecture comes from the `config.json` beside the file when there is one
(`vit_arch.py`), which a given variant must agree with. Position embeddings stored for another
grid are resized as the reference does: DINOv2 (518 px, 37 x 37) with PyTorch's bicubic
(a = -0.75, no antialiasing), DINOv2 with registers with antialiasing; CLIP and SigLIP must
match the variant's grid.
"""

from collections.abc import Callable, Mapping

import jax
import numpy as np

from memjax.errors import InputError
from memjax.features.readers import weight_files
from memjax.features.vit import ViTConfig


class _Tensors:
  """Named tensors of one file, taken with a shape check; errors name file, tensor and variant."""

  def __init__(self, tensors: Mapping[str, np.ndarray], where: str, what: str, prefix: str = ''):
    self.tensors, self.where, self.what, self.prefix = tensors, where, what, prefix

  def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
    full = self.prefix + name
    if name not in self.tensors:
      raise InputError(
        f'{self.where}: tensor {full!r} is missing; expected a {self.what} file (check the file '
        'and config.extractors.<name>.variant).'
      )
    value = self.tensors[name]
    if tuple(value.shape) != tuple(shape):
      raise InputError(
        f'{self.where}: tensor {full!r} has shape {tuple(value.shape)}, expected {tuple(shape)} '
        f'for {self.what} (check config.extractors.<name>.variant).'
      )
    return np.asarray(value, np.float32)

  def linear(self, name: str, d_in: int, d_out: int, bias: bool = True) -> dict:
    """A PyTorch Linear `name` ([out, in] weight) as a Dense {kernel [in, out], bias}."""
    out = {'kernel': self.get(f'{name}.weight', (d_out, d_in)).T}
    if bias:
      out['bias'] = self.get(f'{name}.bias', (d_out,))
    return out

  def norm(self, name: str, d: int, scale: str = 'weight', bias: str = 'bias') -> dict:
    return {'scale': self.get(f'{name}.{scale}', (d,)), 'bias': self.get(f'{name}.{bias}', (d,))}


def _patch(w: np.ndarray) -> np.ndarray:
  """A PyTorch patch conv weight [D, 3, p, p] as the patch Dense kernel [p * p * 3, D]."""
  return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])


def _concat_dense(*parts: dict) -> dict:
  return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}


def _hf_block(t: _Tensors, c: ViTConfig, p: str, names: dict) -> dict:
  d = c.width
  block = {
    'ln1': t.norm(f'{p}.{names["ln1"]}', d),
    'qkv': _concat_dense(*(t.linear(f'{p}.{names[n]}', d, d) for n in ('q', 'k', 'v'))),
    'out': t.linear(f'{p}.{names["out"]}', d, d),
    'ln2': t.norm(f'{p}.{names["ln2"]}', d),
  }
  if c.act == 'swiglu':  # DINOv2-giant: HF's Dinov2SwiGLUFFN weights_in [2 * mlp, D], weights_out
    block['fc1'] = t.linear(f'{p}.mlp.weights_in', d, 2 * c.mlp)
    block['fc2'] = t.linear(f'{p}.mlp.weights_out', c.mlp, d)
  else:
    block['fc1'] = t.linear(f'{p}.{names["fc1"]}', d, c.mlp)
    block['fc2'] = t.linear(f'{p}.{names["fc2"]}', c.mlp, d)
  if c.layer_scale:
    block['ls1'] = t.get(f'{p}.layer_scale1.lambda1', (d,))
    block['ls2'] = t.get(f'{p}.layer_scale2.lambda1', (d,))
  return block


_HF_CLIP_BLOCK = {
  'ln1': 'layer_norm1',
  'q': 'self_attn.q_proj',
  'k': 'self_attn.k_proj',
  'v': 'self_attn.v_proj',
  'out': 'self_attn.out_proj',
  'ln2': 'layer_norm2',
  'fc1': 'mlp.fc1',
  'fc2': 'mlp.fc2',
}
_HF_DINO_BLOCK = {
  'ln1': 'norm1',
  'q': 'attention.attention.query',
  'k': 'attention.attention.key',
  'v': 'attention.attention.value',
  'out': 'attention.output.dense',
  'ln2': 'norm2',
  'fc1': 'mlp.fc1',
  'fc2': 'mlp.fc2',
}


def _hf_clip(t: _Tensors, c: ViTConfig) -> dict:
  d = c.width
  params = {
    'patch_embed': {'kernel': _patch(t.get('embeddings.patch_embedding.weight', _conv(c)))},
    'cls': t.get('embeddings.class_embedding', (d,)),
    'pos': t.get('embeddings.position_embedding.weight', (c.positions, d)),
    'pre_norm': t.norm('pre_layrnorm', d),
    'norm': t.norm('post_layernorm', d),
  }
  for i in range(c.depth):
    params[f'block_{i}'] = _hf_block(t, c, f'encoder.layers.{i}', _HF_CLIP_BLOCK)
  return params


def _open_clip(t: _Tensors, c: ViTConfig) -> dict:
  d, pre = c.width, 'visual.'
  params = {
    'patch_embed': {'kernel': _patch(t.get(f'{pre}conv1.weight', _conv(c)))},
    'cls': t.get(f'{pre}class_embedding', (d,)),
    'pos': t.get(f'{pre}positional_embedding', (c.positions, d)),
    'pre_norm': t.norm(f'{pre}ln_pre', d),
    'norm': t.norm(f'{pre}ln_post', d),
  }
  if c.proj_dim and f'{pre}proj' in t.tensors:
    params['proj'] = {'kernel': t.get(f'{pre}proj', (d, c.proj_dim))}
  for i in range(c.depth):
    p = f'{pre}transformer.resblocks.{i}'
    params[f'block_{i}'] = {
      'ln1': t.norm(f'{p}.ln_1', d),
      'qkv': {
        'kernel': t.get(f'{p}.attn.in_proj_weight', (3 * d, d)).T,
        'bias': t.get(f'{p}.attn.in_proj_bias', (3 * d,)),
      },
      'out': t.linear(f'{p}.attn.out_proj', d, d),
      'ln2': t.norm(f'{p}.ln_2', d),
      'fc1': t.linear(f'{p}.mlp.c_fc', d, c.mlp),
      'fc2': t.linear(f'{p}.mlp.c_proj', c.mlp, d),
    }
  return params


def _hf_siglip(t: _Tensors, c: ViTConfig) -> dict:
  d = c.width
  params = {
    'patch_embed': {
      'kernel': _patch(t.get('embeddings.patch_embedding.weight', _conv(c))),
      'bias': t.get('embeddings.patch_embedding.bias', (d,)),
    },
    'pos': t.get('embeddings.position_embedding.weight', (c.positions, d)),
    'norm': t.norm('post_layernorm', d),
  }
  if 'head.probe' in t.tensors:  # SiglipVisionModel with vision_use_head=False has none
    in_w = t.get('head.attention.in_proj_weight', (3 * d, d))
    in_b = t.get('head.attention.in_proj_bias', (3 * d,))
    params['head'] = {
      'probe': t.get('head.probe', (1, 1, d)).reshape(d),
      'q': {'kernel': in_w[:d].T, 'bias': in_b[:d]},
      'kv': {'kernel': in_w[d:].T, 'bias': in_b[d:]},
      'out': t.linear('head.attention.out_proj', d, d),
      'ln': t.norm('head.layernorm', d),
      'fc1': t.linear('head.mlp.fc1', d, c.mlp),
      'fc2': t.linear('head.mlp.fc2', c.mlp, d),
    }
  for i in range(c.depth):
    params[f'block_{i}'] = _hf_block(t, c, f'encoder.layers.{i}', _HF_CLIP_BLOCK)
  return params


def _big_vision(t: _Tensors, c: ViTConfig) -> dict:
  d, h, pre = c.width, c.heads, 'params/img/'

  def dense(name: str, d_in: int, d_out: int) -> dict:
    return {
      'kernel': t.get(f'{name}/kernel', (d_in, d_out)),
      'bias': t.get(f'{name}/bias', (d_out,)),
    }

  def heads_in(name: str) -> dict:  # [D, H, hd] -> [D, D]
    return {
      'kernel': t.get(f'{name}/kernel', (d, h, d // h)).reshape(d, d),
      'bias': t.get(f'{name}/bias', (h, d // h)).reshape(d),
    }

  def attn_out(name: str) -> dict:
    return {
      'kernel': t.get(f'{name}/kernel', (h, d // h, d)).reshape(d, d),
      'bias': t.get(f'{name}/bias', (d,)),
    }

  def norm(name: str) -> dict:
    return {'scale': t.get(f'{name}/scale', (d,)), 'bias': t.get(f'{name}/bias', (d,))}

  m = f'{pre}MAPHead_0/'
  params = {
    'patch_embed': {
      'kernel': t.get(f'{pre}embedding/kernel', (c.patch, c.patch, 3, d)).reshape(-1, d),
      'bias': t.get(f'{pre}embedding/bias', (d,)),
    },
    'pos': t.get(f'{pre}pos_embedding', (1, c.positions, d)).reshape(c.positions, d),
    'norm': norm(f'{pre}Transformer/encoder_norm'),
    'head': {
      'probe': t.get(f'{m}probe', (1, 1, d)).reshape(d),
      'q': heads_in(f'{m}MultiHeadDotProductAttention_0/query'),
      'kv': _concat_dense(
        heads_in(f'{m}MultiHeadDotProductAttention_0/key'),
        heads_in(f'{m}MultiHeadDotProductAttention_0/value'),
      ),
      'out': attn_out(f'{m}MultiHeadDotProductAttention_0/out'),
      'ln': norm(f'{m}LayerNorm_0'),
      'fc1': dense(f'{m}MlpBlock_0/Dense_0', d, c.mlp),
      'fc2': dense(f'{m}MlpBlock_0/Dense_1', c.mlp, d),
    },
  }
  for i in range(c.depth):
    p = f'{pre}Transformer/encoderblock_{i}/'
    a = f'{p}MultiHeadDotProductAttention_0/'
    params[f'block_{i}'] = {
      'ln1': norm(f'{p}LayerNorm_0'),
      'qkv': _concat_dense(*(heads_in(f'{a}{n}') for n in ('query', 'key', 'value'))),
      'out': attn_out(f'{a}out'),
      'ln2': norm(f'{p}LayerNorm_1'),
      'fc1': dense(f'{p}MlpBlock_0/Dense_0', d, c.mlp),
      'fc2': dense(f'{p}MlpBlock_0/Dense_1', c.mlp, d),
    }
  return params


def _timm_blocks(t: _Tensors, c: ViTConfig, params: dict) -> None:
  """timm's `blocks.{i}` (fused qkv, proj, norm1/2, mlp.fc1/2) into `params`."""
  d = c.width
  for i in range(c.depth):
    p = f'blocks.{i}'
    params[f'block_{i}'] = {
      'ln1': t.norm(f'{p}.norm1', d),
      'qkv': t.linear(f'{p}.attn.qkv', d, 3 * d),
      'out': t.linear(f'{p}.attn.proj', d, d),
      'ln2': t.norm(f'{p}.norm2', d),
      'fc1': t.linear(f'{p}.mlp.fc1', d, c.mlp),
      'fc2': t.linear(f'{p}.mlp.fc2', c.mlp, d),
    }


def _timm_clip(t: _Tensors, c: ViTConfig) -> dict:
  """timm's CLIP ViT (`vit_base_patch16_clip_224.openai`, ...): `head` is the projection."""
  d = c.width
  params = {
    'patch_embed': {'kernel': _patch(t.get('patch_embed.proj.weight', _conv(c)))},
    'cls': t.get('cls_token', (1, 1, d)).reshape(d),
    'pos': t.get('pos_embed', (1, c.positions, d))[0],
    'pre_norm': t.norm('norm_pre', d),
    'norm': t.norm('norm', d),
  }
  if c.proj_dim and 'head.weight' in t.tensors:
    bias = t.tensors.get('head.bias')
    if bias is not None and np.any(np.asarray(bias) != 0):
      raise InputError(f'{t.where}: head.bias is not zero: not a CLIP projection (a classifier?).')
    params['proj'] = {'kernel': t.get('head.weight', (c.proj_dim, d)).T}
  _timm_blocks(t, c, params)
  return params


def _timm_siglip(t: _Tensors, c: ViTConfig) -> dict:
  """timm's SigLIP ViT (`vit_base_patch16_siglip_224`, OpenCLIP's `visual.trunk.*`)."""
  d = c.width
  params = {
    'patch_embed': {
      'kernel': _patch(t.get('patch_embed.proj.weight', _conv(c))),
      'bias': t.get('patch_embed.proj.bias', (d,)),
    },
    'pos': t.get('pos_embed', (1, c.positions, d))[0],
    'norm': t.norm('norm', d),
  }
  if 'attn_pool.latent' in t.tensors:
    params['head'] = {
      'probe': t.get('attn_pool.latent', (1, 1, d)).reshape(d),
      'q': t.linear('attn_pool.q', d, d),
      'kv': t.linear('attn_pool.kv', d, 2 * d),
      'out': t.linear('attn_pool.proj', d, d),
      'ln': t.norm('attn_pool.norm', d),
      'fc1': t.linear('attn_pool.mlp.fc1', d, c.mlp),
      'fc2': t.linear('attn_pool.mlp.fc2', c.mlp, d),
    }
  _timm_blocks(t, c, params)
  return params


def _hf_dinov2(t: _Tensors, c: ViTConfig) -> dict:
  d = c.width
  pos = t.tensors.get('embeddings.position_embeddings')
  stored = int(round(np.sqrt(pos.shape[1] - 1))) if pos is not None and pos.ndim == 3 else c.grid
  pos = t.get('embeddings.position_embeddings', (1, stored**2 + 1, d))[0]
  params = {
    'patch_embed': {
      'kernel': _patch(t.get('embeddings.patch_embeddings.projection.weight', _conv(c))),
      'bias': t.get('embeddings.patch_embeddings.projection.bias', (d,)),
    },
    'cls': t.get('embeddings.cls_token', (1, 1, d)).reshape(d),
    'pos': np.concatenate([pos[:1], resize_positions(pos[1:], stored, c)]),
    'norm': t.norm('layernorm', d),
  }
  if c.registers:
    params['registers'] = t.get('embeddings.register_tokens', (1, c.registers, d))[0]
  for i in range(c.depth):
    params[f'block_{i}'] = _hf_block(t, c, f'encoder.layer.{i}', _HF_DINO_BLOCK)
  return params


def _conv(c: ViTConfig) -> tuple[int, ...]:
  return (c.width, 3, c.patch, c.patch)


def _cubic_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of PyTorch's bicubic resize (a = -0.75, align_corners=False, edges
  clamped, no antialiasing)."""
  a, m = -0.75, np.zeros((n_out, n_in))
  for i in range(n_out):
    src = (i + 0.5) * n_in / n_out - 0.5
    x0 = int(np.floor(src))
    t = src - x0
    dist = np.array([1 + t, t, 1 - t, 2 - t])
    w = np.where(
      dist <= 1,
      ((a + 2) * dist - (a + 3)) * dist * dist + 1,
      ((a * dist - 5 * a) * dist + 8 * a) * dist - 4 * a,
    )
    for k in range(4):
      m[i, min(max(x0 - 1 + k, 0), n_in - 1)] += w[k]
  return m


def resize_positions(pos: np.ndarray, stored: int, c: ViTConfig) -> np.ndarray:
  """Patch position embeddings [stored^2, D] resized to the model's grid [grid^2, D]."""
  if stored == c.grid:
    return pos
  grid = pos.reshape(stored, stored, -1).astype(np.float32)
  if c.antialias_pos:
    out = jax.image.resize(grid, (c.grid, c.grid, grid.shape[-1]), 'cubic', antialias=True)
    return np.asarray(out).reshape(c.grid**2, -1)
  m = _cubic_matrix(stored, c.grid)
  return np.einsum('ia,jb,abd->ijd', m, m, grid.astype(np.float64)).reshape(c.grid**2, -1)


_LAYOUTS: dict[str, tuple[str, str, Callable]] = {
  # name: (family, a tensor only this layout has, converter)
  'hf_clip': ('clip', 'pre_layrnorm.weight', _hf_clip),
  'open_clip': ('clip', 'visual.conv1.weight', _open_clip),
  'hf_siglip': ('siglip', 'embeddings.patch_embedding.bias', _hf_siglip),
  'big_vision': ('siglip', 'params/img/embedding/kernel', _big_vision),
  'hf_dinov2': ('dinov2', 'embeddings.cls_token', _hf_dinov2),
  'timm_clip': ('clip', 'norm_pre.weight', _timm_clip),
  'timm_siglip': ('siglip', 'patch_embed.proj.bias', _timm_siglip),
}


def _unstack_scanned(tensors: dict[str, np.ndarray], depth: int) -> dict[str, np.ndarray]:
  """big_vision checkpoints trained with `scan=True` stack the blocks (`encoderblock/...` with a
  leading depth axis); they become `encoderblock_{i}/...`."""
  stacked = 'params/img/Transformer/encoderblock/'
  out = {k: v for k, v in tensors.items() if not k.startswith(stacked)}
  for k, v in tensors.items():
    if k.startswith(stacked) and v.shape[:1] == (depth,):
      for i in range(depth):
        out[k.replace('/encoderblock/', f'/encoderblock_{i}/')] = v[i]
  return out


def layout(family: str, tensors: Mapping[str, np.ndarray]) -> str | None:
  """The name of the file's layout for `family` (a key of `_LAYOUTS`), or None."""
  if family == 'siglip' and any(k.startswith('img/') or '/img/' in k for k in tensors):
    return 'big_vision'
  for name, (fam, marker, _) in _LAYOUTS.items():
    if fam == family and any(k.endswith(marker) for k in tensors):
      return name
  return None


def require_layout(family: str, tensors: Mapping[str, np.ndarray], where: str) -> str:
  """The file's layout for `family`.

  Raises:
    InputError: no layout of `family` recognised (another family's file, or another format).
  """
  tensors = {f'params/{k}' if k.startswith('img/') else k: v for k, v in tensors.items()}
  found = layout(family, tensors)
  if found is None:
    known = [m for f, m, _ in _LAYOUTS.values() if f == family]
    raise InputError(
      f'{where}: not a {family} image encoder: none of {known} is in the file (it has '
      f'{len(tensors)} tensors, e.g. {sorted(tensors)[:3]}).'
    )
  return found


_MISSING = {
  'proj': "CLIP's projection to the joint space ('visual_projection.weight', or OpenCLIP's "
  "'visual.proj') is not in the file: output='embedding' needs it (a CLIPModel or "
  "CLIPVisionModelWithProjection file); use output='pooled' with a vision tower alone.",
  'head': "SigLIP's attention-pooling head ('head.probe', ...) is not in the file: "
  "output='pooled' needs it (vision_use_head); use output='patch_mean'.",
}


def convert(
  cfg: ViTConfig, tensors: Mapping[str, np.ndarray], where: str, output: str | None = None
) -> dict:
  """The `vit.VisionTransformer` parameters of a file's tensors (layout recognised by name).

  A layout is recognised by one of its tensors, also under a wrapper prefix (`vision_model.` of
  a full CLIP / SigLIP model or of a transformers 4 vision tower, none for a transformers 5 one,
  `module.`, `dinov2.` of a classification model, big_vision's `params/` missing, ...): names
  are read below that prefix and the rest (text tower, classifier, buffers) is ignored. CLIP's
  projection (`visual_projection.weight`, outside the vision tower) is needed only for
  `output='embedding'`, SigLIP's attention-pooling head only for `output='pooled'`; None:
  both are required.

  Raises:
    InputError: no layout of `cfg.family` recognised, or a missing / mis-shaped tensor.
  """
  tensors = dict(tensors)
  if any(k.startswith('img/') for k in tensors):  # a big_vision npz saved without `params/`
    tensors = {f'params/{k}': v for k, v in tensors.items()}
  for layout, (family, marker, fn) in _LAYOUTS.items():
    prefixes = [k[: -len(marker)] for k in tensors if k.endswith(marker)]
    if family != cfg.family or not prefixes:
      continue
    prefix = min(prefixes, key=len)
    named = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if layout == 'big_vision':
      named = _unstack_scanned(named, cfg.depth)
    what = f'{cfg.family} ({layout}, width {cfg.width}, depth {cfg.depth}, patch {cfg.patch})'
    t = _Tensors(named, where, what, prefix)
    params = fn(t, cfg)
    if layout == 'hf_clip' and cfg.proj_dim:
      keys = sorted((k for k in tensors if k.endswith('visual_projection.weight')), key=len)
      if keys:
        proj = _Tensors(tensors, where, what).get(keys[0], (cfg.proj_dim, cfg.width))
        params['proj'] = {'kernel': proj.T}
    if output is None:
      needed = {'clip': ['proj'] if cfg.proj_dim else [], 'siglip': ['head']}.get(cfg.family, [])
    else:
      needed = {('clip', 'embedding'): ['proj'], ('siglip', 'pooled'): ['head']}.get(
        (cfg.family, output), []
      )
    for part in needed:
      if part not in params:
        raise InputError(f'{where}: {_MISSING[part]}')
    return params
  known = [m for f, m, _ in _LAYOUTS.values() if f == cfg.family]
  raise InputError(
    f'{where}: not a {cfg.family} image encoder: none of {known} is in the file (it has '
    f'{len(tensors)} tensors, e.g. {sorted(tensors)[:3]}).'
  )


def load(cfg: ViTConfig, path: str, output: str | None = None) -> tuple[dict, str]:
  """(parameters as float32 numpy, the file's sha256) of a local weight file.

  Raises:
    InputError: as `weight_files.read_tensors` and `convert`.
  """
  params = convert(cfg, weight_files.read_tensors(path), path, output)
  return params, weight_files.file_sha256(path)
