"""timm's layouts of CLIP and SigLIP image towers (also OpenCLIP's `visual.trunk.*`).

`vit_*_clip_*`: `norm_pre`, fused `attn.qkv`, the projection as a zero-bias `head`;
`vit_*_siglip_*`: `attn_pool.*`, the MAP head. timm's DINOv2 names are not read.
"""

import numpy as np

from memjax.errors import InputError
from memjax.features.vit.tensors import Tensors
from memjax.features.vit.variants import ViTConfig


def _blocks(t: Tensors, c: ViTConfig, params: dict) -> None:
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


def clip(t: Tensors, c: ViTConfig) -> dict:
  """timm's CLIP ViT (`vit_base_patch16_clip_224.openai`, ...): `head` is the projection."""
  d = c.width
  params = {
    'patch_embed': t.patch_embed('patch_embed.proj', c, bias=False),
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
  _blocks(t, c, params)
  return params


def siglip(t: Tensors, c: ViTConfig) -> dict:
  """timm's SigLIP ViT (`vit_base_patch16_siglip_224`, OpenCLIP's `visual.trunk.*`)."""
  d = c.width
  params = {
    'patch_embed': t.patch_embed('patch_embed.proj', c),
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
  _blocks(t, c, params)
  return params
