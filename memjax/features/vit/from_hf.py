"""Hugging Face `transformers` 4 and 5 layouts: CLIP, SigLIP (and SigLIP 2: fixed-resolution,
and NaFlex with its Linear patch embedding), DINOv2 (with registers, and giant's SwiGLU) and
DINOv3 image towers, names below the tower's prefix.

DINOv2 position embeddings stored for another grid (518 px, 37 x 37) are resized as the
reference does: with PyTorch's bicubic (a = -0.75, no antialiasing), with antialiasing for
DINOv2 with registers; SigLIP 2 NaFlex's with PyTorch's antialiased bilinear
(`Siglip2VisionEmbeddings`). DINOv3 has none (rotary embeddings).
"""

import jax
import numpy as np

from memjax.features.vit.tensors import Tensors, concat_dense
from memjax.features.vit.variants import ViTConfig


def _block(t: Tensors, c: ViTConfig, p: str, names: dict) -> dict:
  d = c.width
  block = {
    'ln1': t.norm(f'{p}.{names["ln1"]}', d),
    'qkv': concat_dense(*(t.linear(f'{p}.{names[n]}', d, d) for n in ('q', 'k', 'v'))),
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


_CLIP_BLOCK = {
  'ln1': 'layer_norm1',
  'q': 'self_attn.q_proj',
  'k': 'self_attn.k_proj',
  'v': 'self_attn.v_proj',
  'out': 'self_attn.out_proj',
  'ln2': 'layer_norm2',
  'fc1': 'mlp.fc1',
  'fc2': 'mlp.fc2',
}
_DINO_BLOCK = {
  'ln1': 'norm1',
  'q': 'attention.attention.query',
  'k': 'attention.attention.key',
  'v': 'attention.attention.value',
  'out': 'attention.output.dense',
  'ln2': 'norm2',
  'fc1': 'mlp.fc1',
  'fc2': 'mlp.fc2',
}


def clip(t: Tensors, c: ViTConfig) -> dict:
  d = c.width
  params = {
    'patch_embed': t.patch_embed('embeddings.patch_embedding', c, bias=False),
    'cls': t.get('embeddings.class_embedding', (d,)),
    'pos': t.get('embeddings.position_embedding.weight', (c.positions, d)),
    'pre_norm': t.norm('pre_layrnorm', d),
    'norm': t.norm('post_layernorm', d),
  }
  for i in range(c.depth):
    params[f'block_{i}'] = _block(t, c, f'encoder.layers.{i}', _CLIP_BLOCK)
  return params


def siglip(t: Tensors, c: ViTConfig) -> dict:
  d, embed = c.width, t.tensors.get('embeddings.patch_embedding.weight')
  if embed is not None and embed.ndim == 2:  # SigLIP 2 NaFlex: a Linear on (p, p, 3) pixels
    patch_embed = {
      'kernel': t.get('embeddings.patch_embedding.weight', (d, c.patch * c.patch * 3)).T,
      'bias': t.get('embeddings.patch_embedding.bias', (d,)),
    }
    pos = t.tensors.get('embeddings.position_embedding.weight')
    stored = int(round(np.sqrt(pos.shape[0]))) if pos is not None and pos.ndim == 2 else c.grid
    pos = t.get('embeddings.position_embedding.weight', (stored**2, d))
    m = _linear_aa_matrix(stored, c.grid)
    pos = np.einsum('ia,jb,abd->ijd', m, m, pos.reshape(stored, stored, d).astype(np.float64))
    pos = pos.reshape(c.grid**2, d).astype(np.float32)
  else:
    patch_embed = t.patch_embed('embeddings.patch_embedding', c)
    pos = t.get('embeddings.position_embedding.weight', (c.positions, d))
  params = {'patch_embed': patch_embed, 'pos': pos, 'norm': t.norm('post_layernorm', d)}
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
    params[f'block_{i}'] = _block(t, c, f'encoder.layers.{i}', _CLIP_BLOCK)
  return params


def dinov2(t: Tensors, c: ViTConfig) -> dict:
  d = c.width
  pos = t.tensors.get('embeddings.position_embeddings')
  stored = int(round(np.sqrt(pos.shape[1] - 1))) if pos is not None and pos.ndim == 3 else c.grid
  pos = t.get('embeddings.position_embeddings', (1, stored**2 + 1, d))[0]
  params = {
    'patch_embed': t.patch_embed('embeddings.patch_embeddings.projection', c),
    'cls': t.get('embeddings.cls_token', (1, 1, d)).reshape(d),
    'pos': np.concatenate([pos[:1], resize_positions(pos[1:], stored, c)]),
    'norm': t.norm('layernorm', d),
  }
  if c.registers:
    params['registers'] = t.get('embeddings.register_tokens', (1, c.registers, d))[0]
  for i in range(c.depth):
    params[f'block_{i}'] = _block(t, c, f'encoder.layer.{i}', _DINO_BLOCK)
  return params


def dinov3(t: Tensors, c: ViTConfig) -> dict:
  """transformers' DINOv3ViTModel: q/k/v/o projections whose biases the config may leave out
  (key_bias False as published: zeros here), gate/up/down MLP, no position embeddings; blocks
  `layer.{i}` as saved, `model.layer.{i}` as transformers 5 holds them."""
  d = c.width
  params = {
    'patch_embed': t.patch_embed('embeddings.patch_embeddings', c),
    'cls': t.get('embeddings.cls_token', (1, 1, d)).reshape(d),
    'norm': t.norm('norm', d),
  }
  if c.registers:
    params['registers'] = t.get('embeddings.register_tokens', (1, c.registers, d))[0]
  stack = 'model.layer' if any(k.startswith('model.layer.') for k in t.tensors) else 'layer'

  def linear(name: str, d_in: int, d_out: int) -> dict:  # a bias the file leaves out is zero
    out = t.linear(name, d_in, d_out, bias=f'{name}.bias' in t.tensors)
    return {'kernel': out['kernel'], 'bias': out.get('bias', np.zeros(d_out, np.float32))}

  for i in range(c.depth):
    p = f'{stack}.{i}'
    mlp = ('gate_proj', 'up_proj') if c.act == 'swiglu' else ('up_proj',)
    params[f'block_{i}'] = {
      'ln1': t.norm(f'{p}.norm1', d),
      'qkv': concat_dense(*(linear(f'{p}.attention.{n}_proj', d, d) for n in 'qkv')),
      'out': linear(f'{p}.attention.o_proj', d, d),
      'ls1': t.get(f'{p}.layer_scale1.lambda1', (d,)),
      'ln2': t.norm(f'{p}.norm2', d),
      'fc1': concat_dense(*(linear(f'{p}.mlp.{n}', d, c.mlp) for n in mlp)),
      'fc2': linear(f'{p}.mlp.down_proj', c.mlp, d),
      'ls2': t.get(f'{p}.layer_scale2.lambda1', (d,)),
    }
  return params


def _linear_aa_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] weights of PyTorch's antialiased bilinear resize (align_corners=False; PIL's
  filter: a triangle widened by the scale when shrinking, weights renormalised at the edges)."""
  scale = n_in / n_out
  support, inv = max(scale, 1.0), 1 / max(scale, 1.0)
  m = np.zeros((n_out, n_in))
  for i in range(n_out):
    centre = scale * (i + 0.5)
    lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
    w = np.maximum(0.0, 1 - np.abs((np.arange(lo, hi) - centre + 0.5) * inv))
    m[i, lo:hi] = w / w.sum()
  return m


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
