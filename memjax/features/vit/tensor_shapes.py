"""What a ViT weight file's tensor shapes show of its architecture (HF, OpenCLIP, timm and
big_vision names): width, depth, patch, MLP width, position grid, registers, projection.
"""

import re
from collections.abc import Mapping

import numpy as np

from memjax.features.vit.file_arch import FileArch


def _layers(tensors: Mapping[str, np.ndarray], pattern: str) -> int:
  found = {int(m.group(1)) for k in tensors if (m := re.search(pattern, k))}
  return max(found) + 1 if found else 0


def _find(tensors: Mapping[str, np.ndarray], suffix: str) -> np.ndarray | None:
  keys = sorted((k for k in tensors if k == suffix or k.endswith('.' + suffix)), key=len)
  return tensors[keys[0]] if keys else None


def _vision_only(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The image tower's tensors (OpenCLIP's `visual.*`; else all but HF's `text_model.*`)."""
  if any(k.startswith('visual.') or '.visual.' in k for k in tensors):
    return {k: v for k, v in tensors.items() if k.startswith('visual.') or '.visual.' in k}
  return {k: v for k, v in tensors.items() if 'text_model.' not in k}


def _big_vision_shapes(t: Mapping[str, np.ndarray]) -> dict:
  """Width, patch, depth, MLP width and image size of big_vision's `img/...` names."""
  f = {}
  emb = _find_bv(t, 'img/embedding/kernel')
  if emb is not None and emb.ndim == 4:
    f['patch'], f['width'] = int(emb.shape[0]), int(emb.shape[-1])
  depth = _layers(t, r'img/Transformer/encoderblock_(\d+)/')
  stacked = _find_bv(t, 'img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel')
  fc1 = _find_bv(t, 'img/Transformer/encoderblock_0/MlpBlock_0/Dense_0/kernel')
  if stacked is not None and stacked.ndim == 3:
    depth, fc1 = int(stacked.shape[0]), stacked[0]
  if depth:
    f['depth'] = depth
  if fc1 is not None:
    f['mlp'] = int(fc1.shape[-1])
  pos = _find_bv(t, 'img/pos_embedding')
  if pos is not None and 'patch' in f:
    f['image_size'] = int(round(np.sqrt(pos.shape[-2]))) * f['patch']
  return f


def _find_bv(tensors: Mapping[str, np.ndarray], suffix: str) -> np.ndarray | None:
  keys = sorted((k for k in tensors if k.endswith(suffix)), key=len)
  return tensors[keys[0]] if keys else None


def shape_arch(tensors: Mapping[str, np.ndarray], family: str) -> FileArch:
  """What the tensors' shapes show (HF, OpenCLIP and big_vision names)."""
  if family == 'siglip' and any('img/embedding/kernel' in k for k in tensors):
    return FileArch(_big_vision_shapes(tensors), 'its tensor shapes show', True)
  t, f, defaults = _vision_only(tensors), {}, {}
  conv = _find(t, 'patch_embedding.weight')
  if conv is None:
    conv = _find(t, 'patch_embeddings.projection.weight')
  if conv is None:
    conv = _find(t, 'patch_embeddings.weight')  # DINOv3
  if conv is None:
    conv = _find(t, 'patch_embed.proj.weight')  # timm
  if conv is None:
    conv = _find(t, 'conv1.weight') if family == 'clip' else None
  if conv is not None and conv.ndim == 4:
    f['width'], f['patch'] = int(conv.shape[0]), int(conv.shape[-1])
  naflex = conv is not None and conv.ndim == 2  # SigLIP 2 NaFlex: a Linear on p * p * 3 pixels
  if naflex:
    f['width'], f['patch'] = int(conv.shape[0]), int(round(np.sqrt(conv.shape[1] // 3)))
  depth = _layers(t, r'encoder\.layers?\.(\d+)\.') or _layers(t, r'resblocks\.(\d+)\.')
  depth = depth or _layers(t, r'(?:^|\.)blocks\.(\d+)\.')  # timm
  depth = depth or _layers(t, r'(?:^|\.)model\.layer\.(\d+)\.')  # DINOv3
  if depth:
    f['depth'] = depth
  up = _find(t, 'layer.0.mlp.up_proj.weight')  # DINOv3 (gated: also gate_proj)
  if up is not None:
    f['mlp'] = int(up.shape[0])
    if _find(t, 'layer.0.mlp.gate_proj.weight') is not None:
      f['act'] = 'swiglu'
  fc1 = _find(t, 'layers.0.mlp.fc1.weight')
  if fc1 is None:
    fc1 = _find(t, 'layer.0.mlp.fc1.weight')
  if fc1 is None:
    fc1 = _find(t, 'resblocks.0.mlp.c_fc.weight')
  if fc1 is None:
    fc1 = _find(t, 'blocks.0.mlp.fc1.weight')
  if fc1 is not None:
    f['mlp'] = int(fc1.shape[0])
  swiglu = _find(t, 'layer.0.mlp.weights_out.weight')
  if swiglu is not None:
    f['act'], f['mlp'] = 'swiglu', int(swiglu.shape[1])
  pos = _find(t, 'position_embedding.weight')
  if pos is None and family == 'clip':
    pos = _find(t, 'positional_embedding')
  if pos is None and family != 'dinov2':
    pos = _find(t, 'pos_embed')  # timm
  if pos is not None and 'patch' in f:
    grid = int(round(np.sqrt(pos.shape[-2] - int(family == 'clip'))))
    (defaults if naflex else f)['image_size'] = grid * f['patch']
  if family in ('dinov2', 'dinov3') and 'width' in f:
    reg = _find(t, 'register_tokens')
    f['registers'] = 0 if reg is None else int(reg.shape[1])
  if family == 'clip':
    proj = _find(t, 'visual_projection.weight')
    if proj is not None:
      f['proj_dim'] = int(proj.shape[0])
    elif (oc := _find(t, 'proj')) is not None and oc.ndim == 2:
      f['proj_dim'] = int(oc.shape[1])
    elif _find(t, 'norm_pre.weight') is not None and (head := _find(t, 'head.weight')) is not None:
      f['proj_dim'] = int(head.shape[0])  # timm's CLIP: the projection is `head`
  head = None
  if family == 'siglip' and 'width' in f:
    head = _find(t, 'head.probe') is not None or any('MAPHead_0' in k for k in t)
  return FileArch(f, 'its tensor shapes show', head, defaults=defaults)
