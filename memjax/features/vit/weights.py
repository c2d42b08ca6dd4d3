"""Weights of the CLIP / SigLIP / DINOv2 / DINOv3 encoders (`model.py`) from the files users have.

Layouts read (the family is the extractor's; the layout is recognised from the tensor names;
each has its module: `from_hf`, `from_open_clip`, `from_big_vision`, `from_timm`):

* Hugging Face `transformers` 4 and 5 (all families): `model.safetensors` or `pytorch_model.bin`
  of `openai/clip-vit-*`, `google/siglip-*` (and fixed-resolution `google/siglip2-*`, the same
  layout; and the NaFlex `google/siglip2-*-naflex`: `Siglip2Model` / `Siglip2VisionModel`, a
  Linear patch embedding), `facebook/dinov2-*` (and `-with-registers-`, and giant's SwiGLU),
  `facebook/dinov3-vit*16-pretrain-*` (`DINOv3ViTModel`), of the full model
  (`vision_model.*`) or of the vision tower alone (`vision_model.*` as transformers 4 saves it,
  no prefix as transformers 5 does); CLIP's projection (`visual_projection.weight`, in
  `CLIPModel` and `CLIPVisionModelWithProjection`) only for `output='embedding'`, SigLIP's
  attention-pooling head only for `output='pooled'`;
* OpenCLIP (CLIP): `open_clip_model.safetensors` / `open_clip_pytorch_model.bin`, `visual.*`;
* big_vision (SigLIP): the released `.npz`, `params/img/...` names;
* timm (CLIP, SigLIP): `vit_*_clip_*` (`norm_pre`, fused `attn.qkv`, the projection as a
  zero-bias `head`) and `vit_*_siglip_*` (`attn_pool.*`: the MAP head), also as OpenCLIP's
  `visual.trunk.*`. timm's DINOv2 names are not read (refused: no dinov2 layout recognised).

Files are read by `readers.weight_files.read_tensors` (`.safetensors`, `.bin` / `.pth` / `.pt`
and `.npz`, none needing torch or safetensors). Anything else in the file (the text tower,
buffers) is ignored; a missing or mis-shaped tensor of the image tower fails in one line naming
it. The architecture comes from the `config.json` beside the file when there is one
(`architecture.py`), which a given variant must agree with. Position embeddings stored for another
grid are resized as the reference does: DINOv2 (518 px, 37 x 37) with PyTorch's bicubic
(a = -0.75, no antialiasing), DINOv2 with registers with antialiasing, SigLIP 2 NaFlex with
PyTorch's antialiased bilinear; CLIP and (fixed-resolution) SigLIP must match the variant's
grid. DINOv3 has none (rotary embeddings).
"""

from collections.abc import Callable, Mapping

import numpy as np

from memjax.errors import InputError
from memjax.features.vit import from_big_vision, from_hf, from_open_clip, from_timm
from memjax.features.vit.tensors import Tensors
from memjax.features.vit.variants import ViTConfig

_LAYOUTS: dict[str, tuple[str, str, Callable]] = {
  # name: (family, a tensor only this layout has, converter)
  'hf_clip': ('clip', 'pre_layrnorm.weight', from_hf.clip),
  'open_clip': ('clip', 'visual.conv1.weight', from_open_clip.clip),
  'hf_siglip': ('siglip', 'embeddings.patch_embedding.bias', from_hf.siglip),
  'big_vision': ('siglip', 'params/img/embedding/kernel', from_big_vision.siglip),
  'hf_dinov2': ('dinov2', 'embeddings.cls_token', from_hf.dinov2),
  'hf_dinov3': ('dinov3', 'embeddings.patch_embeddings.weight', from_hf.dinov3),
  'timm_clip': ('clip', 'norm_pre.weight', from_timm.clip),
  'timm_siglip': ('siglip', 'patch_embed.proj.bias', from_timm.siglip),
}


def layout(family: str, tensors: Mapping[str, np.ndarray]) -> str | None:
  """The name of the file's layout for `family` (a key of `_LAYOUTS`), or None."""
  if family == 'siglip' and any(k.startswith('img/') or '/img/' in k for k in tensors):
    return 'big_vision'
  for name, (fam, marker, _) in _LAYOUTS.items():
    if fam == family and any(k.endswith(marker) for k in tensors):
      return name
  return None


def require_layout(family: str, tensors: Mapping[str, np.ndarray], where: str) -> str:
  """The file's layout for `family`.

  Raises:
    InputError: no layout of `family` recognised (another family's file, or another format).
  """
  tensors = {f'params/{k}' if k.startswith('img/') else k: v for k, v in tensors.items()}
  found = layout(family, tensors)
  if found is None:
    raise _not_an_encoder(family, tensors, where)
  return found


def _not_an_encoder(family: str, tensors: Mapping[str, np.ndarray], where: str) -> InputError:
  known = [m for f, m, _ in _LAYOUTS.values() if f == family]
  return InputError(
    f'{where}: not a {family} image encoder: none of {known} is in the file (it has '
    f'{len(tensors)} tensors, e.g. {sorted(tensors)[:3]}).'
  )


_MISSING = {
  'proj': "CLIP's projection to the joint space ('visual_projection.weight', or OpenCLIP's "
  "'visual.proj') is not in the file: output='embedding' needs it (a CLIPModel or "
  "CLIPVisionModelWithProjection file); use output='pooled' with a vision tower alone.",
  'head': "SigLIP's attention-pooling head ('head.probe', ...) is not in the file: "
  "output='pooled' needs it (vision_use_head); use output='patch_mean'.",
}


def convert(
  cfg: ViTConfig,
  layout: str,
  tensors: Mapping[str, np.ndarray],
  where: str,
  output: str | None = None,
) -> dict:
  """The `vit.VisionTransformer` parameters of a file's tensors in `layout` (`require_layout`).

  The layout's tensors are found also under a wrapper prefix (`vision_model.` of a full CLIP /
  SigLIP model or of a transformers 4 vision tower, none for a transformers 5 one, `module.`,
  `dinov2.` of a classification model, big_vision's `params/` missing, ...): names are read
  below that prefix and the rest (text tower, classifier, buffers) is ignored. CLIP's projection
  (`visual_projection.weight`, outside the vision tower) is needed only for
  `output='embedding'`, SigLIP's attention-pooling head only for `output='pooled'`; None: both
  are required.

  Raises:
    InputError: the layout's tensors are not in the file, or one is missing or mis-shaped.
  """
  tensors = dict(tensors)
  if any(k.startswith('img/') for k in tensors):  # a big_vision npz saved without `params/`
    tensors = {f'params/{k}': v for k, v in tensors.items()}
  _, marker, fn = _LAYOUTS[layout]
  prefixes = [k[: -len(marker)] for k in tensors if k.endswith(marker)]
  if not prefixes:
    raise _not_an_encoder(cfg.family, tensors, where)
  prefix = min(prefixes, key=len)
  named = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
  if layout == 'big_vision':
    named = from_big_vision.unstack_scanned(named, cfg.depth)
  what = f'{cfg.family} ({layout}, width {cfg.width}, depth {cfg.depth}, patch {cfg.patch})'
  params = fn(Tensors(named, where, what, prefix), cfg)
  if layout == 'hf_clip' and cfg.proj_dim:
    keys = sorted((k for k in tensors if k.endswith('visual_projection.weight')), key=len)
    if keys:
      proj = Tensors(tensors, where, what).get(keys[0], (cfg.proj_dim, cfg.width))
      params['proj'] = {'kernel': proj.T}
  if output is None:
    needed = {'clip': ['proj'] if cfg.proj_dim else [], 'siglip': ['head']}.get(cfg.family, [])
  else:
    needed = {('clip', 'embedding'): ['proj'], ('siglip', 'pooled'): ['head']}.get(
      (cfg.family, output), []
    )
  for part in needed:
    if part not in params:
      raise InputError(f'{where}: {_MISSING[part]}')
  return params
