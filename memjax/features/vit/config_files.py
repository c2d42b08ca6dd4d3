"""The model config beside a ViT weight file: Hugging Face `config.json` (and the processor's
`preprocessor_config.json`) or OpenCLIP's `open_clip_config.json`.

When one is there, memjax takes the architecture from it (width, depth, heads, MLP width, patch
and image size, activation incl. quick_gelu vs gelu, LayerNorm eps, registers, projection width),
so any size loads with no `variant`.

SigLIP 2 (`google/siglip2-*`): the fixed-resolution files are SigLIP's (`model_type` 'siglip');
a full model's `text_config.vocab_size` 256000 (Gemma's tokenizer) names them SigLIP 2 (variants
`v2_*`, which differ from SigLIP's in the processor's resize filter only). NaFlex files
(`model_type` 'siglip2') run at one square size: the config's position grid, or a variant's.
DINOv3 (`model_type` 'dinov3_vit') has rotary position embeddings: any image size runs; the
config's `image_size` is the default. A preprocessor_config.json beside the weights gives the
reference processor's resize filter (`processor_resample`).
"""

import json
import os

import numpy as np

from memjax.errors import InputError
from memjax.features.vit.file_arch import FileArch

# transformers' `hidden_act` -> memjax's `act` (gelu_new / gelu_fast / gelu_pytorch_tanh are all
# the tanh approximation).
_HF_ACT = {
  'quick_gelu': 'quick_gelu',
  'gelu': 'gelu',
  'gelu_python': 'gelu',
  'gelu_pytorch_tanh': 'gelu_tanh',
  'gelu_new': 'gelu_tanh',
  'gelu_fast': 'gelu_tanh',
}

# transformers 5.18's defaults of each vision config (what `config.json` leaves out when it was
# saved as a diff against the defaults).
_HF_DEFAULTS = {
  'clip_vision_model': dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    image_size=224, patch_size=32, hidden_act='quick_gelu', layer_norm_eps=1e-5,
    projection_dim=512,
  ),
  'siglip_vision_model': dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    image_size=224, patch_size=16, hidden_act='gelu_pytorch_tanh', layer_norm_eps=1e-6,
  ),
  'dinov2': dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
    hidden_act='gelu', layer_norm_eps=1e-6, image_size=224, patch_size=14,
    use_swiglu_ffn=False, num_register_tokens=0,
  ),
  'dinov2_with_registers': dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
    hidden_act='gelu', layer_norm_eps=1e-6, image_size=224, patch_size=16,
    use_swiglu_ffn=False, num_register_tokens=4,
  ),
  'siglip2_vision_model': dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    patch_size=16, hidden_act='gelu_pytorch_tanh', layer_norm_eps=1e-6, num_patches=256,
  ),
  'dinov3_vit': dict(
    hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=6,
    hidden_act='gelu', layer_norm_eps=1e-5, rope_theta=100.0, image_size=224, patch_size=16,
    use_gated_mlp=False, num_register_tokens=0,
  ),
}  # fmt: skip
_HF_VISION_TYPE = {
  'clip': 'clip_vision_model',
  'siglip': 'siglip_vision_model',
  'siglip2': 'siglip2_vision_model',
}
_GEMMA_VOCAB = 256000  # SigLIP 2's text tower (Gemma's tokenizer); SigLIP's has 32000 or 250000
# A reference processor's `resample` (PIL's numbering) -> memjax's resize filter.
_PIL_RESAMPLE = {2: 'bilinear', 3: 'bicubic'}


def _family_of_model_type(model_type: str) -> str | None:
  for family in ('clip', 'siglip', 'dinov2', 'dinov3'):
    if model_type.startswith(family):
      return family
  return None


def _read_json(path: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      out = json.load(f)
  except (OSError, ValueError) as e:
    raise InputError(f'{path}: not a readable JSON model config ({e}).') from e
  if not isinstance(out, dict):
    raise InputError(f'{path}: expected a JSON object (a model config), got {type(out).__name__}.')
  return out


def _int(value, path: str, key: str) -> int:
  if isinstance(value, list | tuple) and len(set(value)) == 1:
    value = value[0]  # image_size / patch_size may be [n, n]
  if not isinstance(value, int) or isinstance(value, bool):
    raise InputError(f'{path}: {key} must be an integer, got {value!r}.')
  return value


def read(family: str, weights: str) -> FileArch | None:
  """What the model config beside `weights` says (`config.json` first, then
  `open_clip_config.json`); None when there is none.

  Raises:
    InputError: unreadable, another family, or an activation memjax does not implement.
  """
  folder = os.path.dirname(os.path.abspath(weights))
  hf, open_clip = (os.path.join(folder, n) for n in ('config.json', 'open_clip_config.json'))
  if os.path.isfile(hf):
    return _hf_arch(hf, family)
  if os.path.isfile(open_clip):
    return _open_clip_arch(open_clip, family)
  return None


def _hf_arch(path: str, family: str) -> FileArch:
  """The architecture in a Hugging Face `config.json` (full model or vision tower).

  Raises:
    InputError: unreadable, another family, or an activation memjax does not implement.
  """
  j = _read_json(path)
  model_type = str(j.get('model_type', ''))
  if _family_of_model_type(model_type) != family:
    raise InputError(
      f'{path}: model_type {model_type!r} is not a {family} model (the extractor kind is '
      f'{family!r}).'
    )
  proj = j.get('projection_dim')
  if isinstance(j.get('vision_config'), dict) or model_type in _HF_VISION_TYPE:
    v = j.get('vision_config') or {}
    v_type = v.get('model_type') or _HF_VISION_TYPE.get(model_type, model_type)
    proj = j.get('projection_dim', 512 if family == 'clip' else None)
  else:
    v, v_type = j, model_type
  if v_type not in _HF_DEFAULTS:
    raise InputError(f'{path}: vision model_type {v_type!r} is not one memjax reads.')
  nested = v is not j
  text = j.get('text_config') if isinstance(j.get('text_config'), dict) else {}
  v = {**_HF_DEFAULTS[v_type], **v}
  if not nested:
    proj = v.get('projection_dim')
  act = str(v['hidden_act'])
  gated = family == 'dinov3' and bool(v['use_gated_mlp'])
  if gated and act != 'silu':
    raise InputError(f'{path}: a gated MLP with hidden_act {act!r}; memjax has SwiGLU (silu).')
  if act not in _HF_ACT and not gated:
    raise InputError(f'{path}: hidden_act {act!r} is not one memjax has: {sorted(_HF_ACT)}.')
  width = _int(v['hidden_size'], path, 'hidden_size')
  fields = {
    'width': width,
    'depth': _int(v['num_hidden_layers'], path, 'num_hidden_layers'),
    'heads': _int(v['num_attention_heads'], path, 'num_attention_heads'),
    'patch': _int(v['patch_size'], path, 'patch_size'),
    'act': 'swiglu' if gated else _HF_ACT[act],
    'eps': float(v['layer_norm_eps']),
  }
  base, defaults = None, {}
  if family == 'dinov3':
    fields['mlp'] = _int(v['intermediate_size'], path, 'intermediate_size')
    fields['registers'] = _int(v['num_register_tokens'], path, 'num_register_tokens')
    fields['rope_theta'] = float(v['rope_theta'])
    defaults['image_size'] = _int(v['image_size'], path, 'image_size')
  elif v_type == 'siglip2_vision_model':  # NaFlex: the position grid is the default size
    fields['mlp'] = _int(v['intermediate_size'], path, 'intermediate_size')
    grid = int(round(np.sqrt(_int(v['num_patches'], path, 'num_patches'))))
    if grid * grid != v['num_patches']:
      raise InputError(f'{path}: num_patches {v["num_patches"]} is not a square grid.')
    base, defaults['image_size'] = 'v2_b16_224', grid * fields['patch']
  elif family == 'dinov2':
    mlp = int(width * float(v['mlp_ratio']))
    if v['use_swiglu_ffn']:
      fields['act'], mlp = 'swiglu', (int(mlp * 2 / 3) + 7) // 8 * 8  # HF Dinov2SwiGLUFFN
    fields['mlp'] = mlp
    fields['registers'] = _int(v['num_register_tokens'], path, 'num_register_tokens')
  else:  # DINOv2's image_size is its position grid, not the size it runs at (224)
    fields['mlp'] = _int(v['intermediate_size'], path, 'intermediate_size')
    fields['image_size'] = _int(v['image_size'], path, 'image_size')
    if family == 'siglip' and text.get('vocab_size') == _GEMMA_VOCAB:
      base = 'v2_b16_224'
  if family == 'clip' and proj is not None:
    fields['proj_dim'] = _int(proj, path, 'projection_dim')
  head = bool(v.get('vision_use_head', True)) if family == 'siglip' else None
  return FileArch(fields, f'{path} says', head, base, defaults)


def _open_clip_arch(path: str, family: str) -> FileArch:
  """The architecture in an OpenCLIP `open_clip_config.json` (`model_cfg.vision_cfg`).

  Raises:
    InputError: unreadable, or another family than the tower's.
  """
  j = _read_json(path)
  model = j.get('model_cfg', j)
  v = model.get('vision_cfg', {}) if isinstance(model, dict) else {}
  timm_name = v.get('timm_model_name')
  if timm_name:  # a timm tower (`visual.trunk.*`): its sizes come from the tensor shapes
    if ('siglip' if 'siglip' in str(timm_name) else 'clip') != family:
      raise InputError(f"{path}: the image tower is timm's {timm_name!r}, not a {family} model.")
    return FileArch(
      {'image_size': _int(v.get('image_size', 224), path, 'image_size')}, f'{path} says'
    )
  if family != 'clip':
    raise InputError(f'{path}: an OpenCLIP ViT config; memjax reads those as clip only.')
  width = _int(v.get('width', 768), path, 'vision_cfg.width')
  fields = {
    'width': width,
    'depth': _int(v.get('layers', 12), path, 'vision_cfg.layers'),
    'heads': width // _int(v.get('head_width', 64), path, 'vision_cfg.head_width'),
    'mlp': int(width * float(v.get('mlp_ratio', 4.0))),
    'patch': _int(v.get('patch_size', 16), path, 'vision_cfg.patch_size'),
    'image_size': _int(v.get('image_size', 224), path, 'vision_cfg.image_size'),
    'act': 'quick_gelu' if model.get('quick_gelu') else 'gelu',
  }
  if 'embed_dim' in model:
    fields['proj_dim'] = _int(model['embed_dim'], path, 'embed_dim')
  return FileArch(fields, f'{path} says')


def processor_resample(weights: str) -> str | None:
  """The resize filter of the reference processor in the preprocessor_config.json beside
  `weights` ('bilinear' or 'bicubic'); None when there is none or it names no filter.

  Raises:
    InputError: unreadable, or a filter memjax does not have.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(weights)), 'preprocessor_config.json')
  if not os.path.isfile(path):
    return None
  resample = _read_json(path).get('resample')
  if resample is None:
    return None
  if resample not in _PIL_RESAMPLE:
    raise InputError(
      f'{path}: resample {resample!r} is not a filter memjax has: {_PIL_RESAMPLE} (PIL numbers).'
    )
  return _PIL_RESAMPLE[resample]
