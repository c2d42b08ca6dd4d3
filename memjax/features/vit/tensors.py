"""A ViT weight file's tensors, taken by name with shape checks, for every source layout.

The layouts (`from_hf`, `from_open_clip`, `from_big_vision`, `from_timm`) read a file through
`Tensors`: a missing or mis-shaped tensor fails in one line naming the file, the tensor and the
variant. PyTorch weights are converted here to the Flax layout of `model.VisionTransformer`.
"""

from collections.abc import Mapping

import numpy as np

from memjax.errors import InputError
from memjax.features.vit.variants import ViTConfig


class Tensors:
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

  def patch_embed(self, name: str, c: ViTConfig, bias: bool = True) -> dict:
    """A PyTorch patch Conv2d `name` ([D, 3, p, p] weight) as the patch Dense
    {kernel [p * p * 3, D], bias}."""
    w = self.get(f'{name}.weight', (c.width, 3, c.patch, c.patch))
    out = {'kernel': w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])}
    if bias:
      out['bias'] = self.get(f'{name}.bias', (c.width,))
    return out


def concat_dense(*parts: dict) -> dict:
  """Dense parameters side by side along the output axis (separate q, k, v -> one qkv)."""
  return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}
