"""big_vision's layout of a SigLIP image tower: the released `.npz`, `params/img/...` names
(Flax kernels, attention weights split by head), blocks stacked when trained with `scan=True`.
"""

import numpy as np

from memjax.features.vit.tensors import Tensors, concat_dense
from memjax.features.vit.variants import ViTConfig


def siglip(t: Tensors, c: ViTConfig) -> dict:
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
      'kv': concat_dense(
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
      'qkv': concat_dense(*(heads_in(f'{a}{n}') for n in ('query', 'key', 'value'))),
      'out': attn_out(f'{a}out'),
      'ln2': norm(f'{p}LayerNorm_1'),
      'fc1': dense(f'{p}MlpBlock_0/Dense_0', d, c.mlp),
      'fc2': dense(f'{p}MlpBlock_0/Dense_1', c.mlp, d),
    }
  return params


def unstack_scanned(tensors: dict[str, np.ndarray], depth: int) -> dict[str, np.ndarray]:
  """big_vision checkpoints trained with `scan=True` stack the blocks (`encoderblock/...` with a
  leading depth axis); they become `encoderblock_{i}/...`."""
  stacked = 'params/img/Transformer/encoderblock/'
  out = {k: v for k, v in tensors.items() if not k.startswith(stacked)}
  for k, v in tensors.items():
    if k.startswith(stacked) and v.shape[:1] == (depth,):
      for i in range(depth):
        out[k.replace('/encoderblock/', f'/encoderblock_{i}/')] = v[i]
  return out
