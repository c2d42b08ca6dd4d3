"""ResMem's `model.pt` -> `model.ResMem` parameters, without torch; and where the file is.

The file is `resmem/model.pt` of the `resmem` package (PyPI, ~490 MB; ResMem Non-commercial
License, (c) 2021 The University of Chicago: noncommercial use only, research at for-profit
companies included; commercial rights from the Brain Bridge Lab). memjax never depends on the
package and never downloads it: `default_path` finds an installed copy without importing it
(importing it would import torch), or the user gives the path.

The file is a `torch.save` of the `ResMem` module's state_dict: `features.*` (torchvision's
ResNet-152: conv1, bn1, layer{1..4}.{j}.conv{1,2,3} / bn{1,2,3} / downsample.{0,1}, fc), the
branch's `conv1..conv5` (OIHW weights + biases) and `fc6..fc12`. The widths and block counts are
read from the shapes, so the converter also reads narrow test files. BatchNorm (eps 1e-5, the
running statistics) is folded into the preceding convolution: kernel * gamma / sqrt(var + eps),
bias beta - mean * gamma / sqrt(var + eps).
"""

import importlib.util
import os
import re
from collections.abc import Mapping

import numpy as np

from memjax.errors import InputError
from memjax.features.readers import torch_checkpoint
from memjax.features.resmem.model import ResMemConfig

BN_EPS = 1e-5
LICENCE = (
  'ResMem weights: ResMem Non-commercial License, (c) 2021 The University of Chicago '
  '(noncommercial use only)'
)


def default_path() -> str:
  """`model.pt` of an installed `resmem` package (found without importing it).

  Raises:
    InputError: the package is not installed, or its model.pt is missing or a git-lfs pointer.
  """
  spec = importlib.util.find_spec('resmem')
  if spec is None or not spec.origin:
    raise InputError(
      'no ResMem weights: give config.extractors.<name>.weights (a ResMem model.pt), or '
      '`pip install resmem` (about 490 MB; non-commercial licence) so memjax finds its model.pt.'
    )
  path = os.path.join(os.path.dirname(spec.origin), 'model.pt')
  if not os.path.isfile(path):
    raise InputError(f'the installed resmem package has no {path}; reinstall it.')
  return path


def _check_not_pointer(path: str) -> None:
  with open(path, 'rb') as f:
    head = f.read(40)
  if head.startswith(b'version https://git-lfs'):
    raise InputError(f'{path} is a git-lfs pointer, not the weights: run `git lfs pull` there.')


class _Named:
  """The file's tensors, taken with shape checks; errors name the file and the tensor."""

  def __init__(self, tensors: Mapping[str, np.ndarray], path: str):
    self.tensors, self.path = tensors, path

  def get(self, name: str, ndim: int | None = None) -> np.ndarray:
    if name not in self.tensors:
      raise InputError(
        f'{self.path}: tensor {name!r} is missing; expected a ResMem model.pt (a state_dict '
        'of resmem.ResMem: features.* ResNet, conv1..conv5, fc6..fc12).'
      )
    value = np.asarray(self.tensors[name], np.float32)
    if ndim is not None and value.ndim != ndim:
      raise InputError(f'{self.path}: tensor {name!r} has shape {value.shape}, expected {ndim}-d.')
    return value

  def conv(self, name: str, bias: bool = True) -> dict:
    out = {'kernel': self.get(f'{name}.weight', 4).transpose(2, 3, 1, 0)}
    out['bias'] = (
      self.get(f'{name}.bias', 1) if bias else np.zeros(out['kernel'].shape[-1], np.float32)
    )
    return out

  def conv_bn(self, conv: str, bn: str) -> dict:
    kernel = self.get(f'{conv}.weight', 4).transpose(2, 3, 1, 0)
    gamma, beta = self.get(f'{bn}.weight', 1), self.get(f'{bn}.bias', 1)
    mean, var = self.get(f'{bn}.running_mean', 1), self.get(f'{bn}.running_var', 1)
    if not gamma.shape == beta.shape == mean.shape == var.shape == kernel.shape[-1:]:
      raise InputError(f"{self.path}: {bn} does not match {conv}'s {kernel.shape[-1]} channels.")
    scale = gamma / np.sqrt(var.astype(np.float64) + BN_EPS)
    return {
      'kernel': (kernel * scale).astype(np.float32),
      'bias': (beta - mean * scale).astype(np.float32),
    }

  def dense(self, name: str) -> dict:
    return {'kernel': self.get(f'{name}.weight', 2).T, 'bias': self.get(f'{name}.bias', 1)}


def config_of(tensors: Mapping[str, np.ndarray], path: str) -> ResMemConfig:
  """The widths and block counts of a ResMem state_dict.

  Raises:
    InputError: not a ResMem file, or widths that do not fit together.
  """
  t = _Named(tensors, path)
  blocks = []
  for i in range(1, 5):
    found = {
      int(m.group(1)) for k in tensors if (m := re.match(rf'features\.layer{i}\.(\d+)\.', k))
    }
    if not found:
      break
    blocks.append(max(found) + 1)
  if not blocks:
    raise InputError(
      f'{path}: no features.layer1.* tensors; expected a ResMem model.pt (a state_dict of '
      f'resmem.ResMem), found e.g. {sorted(tensors)[:3]}.'
    )
  heads = []
  i = 6
  while f'fc{i + 1}.weight' in tensors:
    heads.append(int(t.get(f'fc{i}.weight', 2).shape[0]))
    i += 1
  cfg = ResMemConfig(
    blocks=tuple(blocks),
    width=int(t.get('features.conv1.weight', 4).shape[0]),
    classes=int(t.get('features.fc.weight', 2).shape[0]),
    alex=tuple(int(t.get(f'conv{k}.weight', 4).shape[0]) for k in range(1, 6)),
    head=tuple(heads),
  )
  want = cfg.alex[4] * 36 + cfg.classes
  got = t.get('fc6.weight', 2).shape[1]
  if got != want:
    raise InputError(
      f"{path}: fc6 takes {got} inputs, expected {want} (conv5's {cfg.alex[4]} x 6 x 6 at 227 "
      f"px + the ResNet's {cfg.classes} logits)."
    )
  return cfg


def convert(tensors: Mapping[str, np.ndarray], path: str) -> tuple[ResMemConfig, dict]:
  """(config, `model.ResMem` parameters) of a ResMem state_dict.

  Raises:
    InputError: as `config_of`, or a missing / mis-shaped tensor (named).
  """
  cfg = config_of(tensors, path)
  t = _Named(tensors, path)
  resnet = {'conv1': t.conv_bn('features.conv1', 'features.bn1'), 'fc': t.dense('features.fc')}
  for i, n in enumerate(cfg.blocks):
    for j in range(n):
      p = f'features.layer{i + 1}.{j}'
      block = {f'conv{k}': t.conv_bn(f'{p}.conv{k}', f'{p}.bn{k}') for k in (1, 2, 3)}
      if j == 0:
        block['downsample'] = t.conv_bn(f'{p}.downsample.0', f'{p}.downsample.1')
      resnet[f'layer{i + 1}_{j}'] = block
  params = {'resnet': resnet}
  for k in range(1, 6):
    params[f'conv{k}'] = t.conv(f'conv{k}')
  for k in range(6, 7 + len(cfg.head)):
    params[f'fc{k}'] = t.dense(f'fc{k}')
  return cfg, params


def load(path: str | None) -> tuple[ResMemConfig, dict, str]:
  """(config, parameters, the path read) of a ResMem `model.pt`; None: the installed package's.

  Raises:
    InputError: as `default_path`, `torch_checkpoint.load_state_dict` and `convert`.
  """
  path = path or default_path()
  if not os.path.isfile(path):
    raise InputError(f'ResMem weight file {path} does not exist (memjax never downloads weights).')
  _check_not_pointer(path)
  cfg, params = convert(torch_checkpoint.load_state_dict(path), path)
  return cfg, params, path
