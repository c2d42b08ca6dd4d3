"""The architecture of a ViT weight file: from its `config.json` and its tensor shapes.

A Hugging Face directory holds `config.json` beside the weights; an OpenCLIP one holds
`open_clip_config.json`. When one is there, memjax takes the architecture from it (width, depth,
heads, MLP width, patch and image size, activation incl. quick_gelu vs gelu, LayerNorm eps,
registers, projection width), so any size loads with no `variant`. Without one, what the tensors'
shapes show (width, depth, patch, MLP width, position grid, registers, projection) is used.

SigLIP 2 (`google/siglip2-*`): the fixed-resolution files are SigLIP's (`model_type` 'siglip');
a full model's `text_config.vocab_size` 256000 (Gemma's tokenizer) names them SigLIP 2 (variants
`v2_*`, which differ from SigLIP's in the processor's resize filter only). NaFlex files
(`model_type` 'siglip2') run at one square size: the config's position grid, or a variant's.
DINOv3 (`model_type` 'dinov3_vit') has rotary position embeddings: any image size runs; the
config's `image_size` is the default. A preprocessor_config.json beside the weights gives the
reference processor's resize filter (`processor_resample`).

A `variant` the user gives must agree with both, or the run stops with one line naming the first
difference (e.g. a GELU file given as the quick-GELU variant, a registers file given as a
no-register variant). Without a `variant` and without a config file, the built-in variant whose
shapes match is used (the family's default first; an exact-GELU and a quick-GELU CLIP of one size
have the same shapes, so the built-in list's order decides and the log says so).
"""

import dataclasses
import json
import os
import re
from collections.abc import Mapping

import numpy as np
from absl import logging

from memjax.errors import InputError
from memjax.features.vit import model as vit_model
from memjax.features.vit.model import ViTConfig

# Field -> words for messages.
FIELD_WORDS = {
  'width': 'width',
  'depth': 'depth',
  'heads': 'attention heads',
  'mlp': 'MLP width',
  'patch': 'patch size',
  'image_size': 'image size',
  'act': 'activation',
  'eps': 'LayerNorm eps',
  'registers': 'register tokens',
  'proj_dim': 'projection width',
  'rope_theta': 'RoPE base period',
}

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


@dataclasses.dataclass(frozen=True)
class FileArch:
  """What a weight file says about its architecture.

  Attributes:
    fields: ViTConfig fields known from the file (a subset of `FIELD_WORDS`, plus `eps`).
    source: where they come from, as the start of a message ('/x/config.json says', ...).
    head: SigLIP: whether the file has the attention-pooling head (None: unknown).
    base: the built-in variant whose other fields (preprocessing) a file of this architecture
      takes (SigLIP 2's `v2_b16_224`; None: the family's default).
    defaults: fields the file gives that a variant may change, unchecked: the image size of
      DINOv3 (rotary embeddings) and of SigLIP 2 NaFlex (position embeddings resized).
  """

  fields: dict
  source: str
  head: bool | None = None
  base: str | None = None
  defaults: dict = dataclasses.field(default_factory=dict)


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


def hf_arch(path: str, family: str) -> FileArch:
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


def open_clip_arch(path: str, family: str) -> FileArch:
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


def config_file(weights: str) -> tuple[str, str] | None:
  """(kind, path) of the model config beside `weights`: ('hf', config.json) or
  ('open_clip', open_clip_config.json); None when there is none."""
  folder = os.path.dirname(os.path.abspath(weights))
  for kind, name in (('hf', 'config.json'), ('open_clip', 'open_clip_config.json')):
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      return kind, path
  return None


def file_arch(family: str, weights: str, tensors: Mapping[str, np.ndarray]) -> list[FileArch]:
  """What the model config beside `weights` (if any) and the tensors say, config first."""
  found = []
  if (config := config_file(weights)) is not None:
    kind, path = config
    found.append(hf_arch(path, family) if kind == 'hf' else open_clip_arch(path, family))
  found.append(shape_arch(tensors, family))
  return found


def _differs(a, b) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return not np.isclose(float(a), float(b), rtol=1e-6, atol=0)
  return a != b


def check_agrees(cfg: ViTConfig, name: str, archs: list[FileArch], weights: str) -> None:
  """Stops when a field the file knows differs from the variant's.

  Raises:
    InputError: one line naming the field, both values, and where the file's value is from.
  """
  for arch in archs:
    for field, value in arch.fields.items():
      mine = getattr(cfg, field)
      if _differs(value, mine):
        raise InputError(
          f'{weights}: {arch.source} {FIELD_WORDS[field]} {value!r}, but variant '
          f'{cfg.family}/{name} has {mine!r} (give the variant that matches, or none to take '
          'the architecture from the file).'
        )


def resolve(
  family: str, variant: str | None, weights: str, tensors: Mapping[str, np.ndarray], dtype: str
) -> tuple[ViTConfig, str, FileArch | None]:
  """(config, variant name, the config file's arch or None) for `weights`.

  A given `variant` is checked against the file; without one, a config file beside the weights
  defines the architecture, else the built-in variant whose shapes match.

  Raises:
    InputError: an unknown variant, a variant that disagrees with the file, or no variant that
      fits a file without a config.
  """
  archs = file_arch(family, weights, tensors)
  from_config = archs[0] if len(archs) == 2 else None
  if variant is not None:
    cfg = vit_model.get_config(family, variant, dtype)
    check_agrees(cfg, variant, archs, weights)
    return cfg, variant, from_config
  if from_config is not None and 'heads' in from_config.fields:
    base = vit_model.get_config(family, from_config.base, dtype)
    fields = {**from_config.defaults, **from_config.fields}
    if family != 'dinov2':
      fields['resize_to'] = fields['image_size']
    else:
      fields['antialias_pos'] = fields.get('registers', 0) > 0
    if family == 'clip' and 'proj_dim' not in fields:
      fields['proj_dim'] = archs[1].fields.get('proj_dim', 0)
    cfg = dataclasses.replace(base, **fields)
    check_agrees(cfg, 'from config', archs[1:], weights)
    return cfg, _name_of(cfg), from_config
  shapes = {k: v for a in archs for k, v in {**a.defaults, **a.fields}.items()}
  shapes = FileArch(shapes, archs[-1].source)
  order = [vit_model.DEFAULT_VARIANT[family]] + [v for v in vit_model.VARIANTS[family]]
  for name in order:
    cfg = vit_model.get_config(family, name, dtype)
    if not any(_differs(v, getattr(cfg, k)) for k, v in shapes.fields.items()):
      same = [
        n
        for n in vit_model.VARIANTS[family]
        if n != name and _same_shapes(vit_model.VARIANTS[family][n], cfg)
      ]
      if same:
        logging.warning(
          '%s: no config.json beside it; its shapes fit %s/%s and also %s (they differ in what '
          'shapes do not show, e.g. the activation): using %s; give `variant` to choose.',
          weights,
          family,
          name,
          same,
          name,
        )
      return cfg, name, from_config
  shown = ', '.join(f'{FIELD_WORDS[k]} {v}' for k, v in shapes.fields.items())
  raise InputError(
    f"{weights}: no built-in {family} variant has {shown}; put the model's config.json beside "
    f'the weights (memjax reads the architecture from it) or give a variant of '
    f'{sorted(vit_model.VARIANTS[family])}.'
  )


def _same_shapes(a: ViTConfig, b: ViTConfig) -> bool:
  keys = ('width', 'depth', 'mlp', 'patch', 'image_size', 'registers', 'proj_dim')
  return all(getattr(a, k) == getattr(b, k) for k in keys)


def _name_of(cfg: ViTConfig) -> str:
  """A built-in variant's name when `cfg` is one, else a name that spells the architecture."""
  for name, known in vit_model.VARIANTS[cfg.family].items():
    if dataclasses.replace(known, dtype=cfg.dtype) == cfg:
      return name
  name = f'w{cfg.width}d{cfg.depth}h{cfg.heads}m{cfg.mlp}p{cfg.patch}s{cfg.image_size}_{cfg.act}'
  return name + (f'_reg{cfg.registers}' if cfg.registers else '')
