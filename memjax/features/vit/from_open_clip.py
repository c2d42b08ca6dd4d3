"""OpenCLIP's layout of a CLIP image tower (`visual.*`: `conv1`, fused `in_proj`, `resblocks`).

OpenCLIP towers built on timm (`visual.trunk.*`) are read by `from_timm`.
"""

from memjax.features.vit.tensors import Tensors
from memjax.features.vit.variants import ViTConfig


def clip(t: Tensors, c: ViTConfig) -> dict:
  d, pre = c.width, 'visual.'
  params = {
    'patch_embed': t.patch_embed(f'{pre}conv1', c, bias=False),
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
