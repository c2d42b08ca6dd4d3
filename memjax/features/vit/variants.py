"""The ViT families' architectures: `ViTConfig` and the published sizes (`VARIANTS`).

CLIP, SigLIP, DINOv2 and DINOv3 differ only in `ViTConfig` fields; one network
(`model.py`) runs them all:

* CLIP (OpenAI ViT-B/32, B/16, L/14): class token + patches, LayerNorm after the embeddings
  (`ln_pre`), quick_gelu, eps 1e-5; final LN of the class token, linear projection. Outputs:
  `embedding` (default): the projected image embedding (512 / 768-d), what CLIP compares with
  text; `pooled`: the class token before the projection (width-d).
* SigLIP (B/16 at 224, So400m/14 at 384): patches only, tanh-gelu, eps 1e-6; final LN, then
  attention pooling (MAP: a learned probe attends to all tokens, + MLP). Outputs: `pooled`
  (default): the MAP output (768 / 1152-d), SigLIP's image embedding; `patch_mean`: the mean of
  the final tokens. SigLIP 2 (variants `v2_*`: B, L, So400m, g-opt at their published sizes) is
  the same network; only its Hugging Face processor's resize filter (bilinear) differs.
* DINOv2 (ViT-S/14, B/14, L/14, optionally with 4 registers: variants `*_reg`): class token
  (+ registers) + patches, layer scale, exact gelu, eps 1e-6; final LN. Outputs:
  `cls_patch_mean` (default): class token and mean patch token concatenated (2 x width),
  DINOv2's linear-probe feature; `cls`: the class token; `patch_mean`: the mean patch token.
* DINOv3 (ViT-S/16, S+/16, B/16, L/16, H+/16, 7B/16): as DINOv2 with 4 registers, patch 16, eps
  1e-5, no learned position embeddings: 2-D rotary embeddings of the patch tokens' queries and
  keys (`rope.py`); S+, H+ and 7B have a SwiGLU MLP. Outputs as DINOv2's.

`get_config` gives a variant's config, `add_variant` registers another size, and
`architecture.py` builds one from a weight file's config and shapes. `check_output` and
`feature_dim` say what each output is and how wide.
"""

import dataclasses
from collections.abc import Sequence

from memjax.errors import InputError

FAMILIES = ('clip', 'siglip', 'dinov2', 'dinov3')
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Architecture hyper-parameters of one variant.

  Attributes:
    family: 'clip', 'siglip', 'dinov2' or 'dinov3' (selects the weight-file layouts and outputs).
    patch: patch side in pixels.
    width: token width D.
    depth: number of blocks.
    heads: attention heads.
    mlp: hidden width of the block MLPs.
    image_size: the model's input side S (the grid is S // patch; trailing pixels are ignored).
    resize_to: the shorter image side before the centre crop (the family's recipe).
    mean: per-channel mean of RGB / 255.
    std: per-channel std of RGB / 255.
    act: 'quick_gelu', 'gelu_tanh', 'gelu' (exact) or 'swiglu' (the block MLP is SwiGLU with
      hidden width `mlp`, as DINOv2-giant's and DINOv3's gated MLP; SigLIP's attention-pooling
      head has no MLP to change).
    eps: LayerNorm epsilon.
    class_token: a learned class token precedes the patches.
    pre_norm: LayerNorm after the embeddings (CLIP's `ln_pre`).
    patch_bias: the patch embedding has a bias (not CLIP's).
    layer_scale: per-channel scales on both residual branches (DINOv2).
    registers: register tokens after the class token, without position embeddings (DINOv2).
    map_head: attention-pooling head (SigLIP).
    proj_dim: width of CLIP's projection to the joint space (0: none).
    resample: the Hugging Face processor's resize filter, 'bicubic' (CLIP, SigLIP, DINOv2) or
      'bilinear' (SigLIP 2, DINOv3); a preprocessor_config.json beside the weights overrides it,
      and OpenCLIP, timm and big_vision files are resized bicubically (`extractor.py`).
    antialias_pos: position embeddings of another grid are resized bicubically with
      antialiasing (DINOv2 with registers) rather than without (plain DINOv2, PyTorch's bicubic).
    rope_theta: DINOv3: the patch tokens' queries and keys are rotated (`rope.py`, this base
      period) and there are no learned position embeddings; 0: none.
    dtype: compute dtype, 'float32' or 'bfloat16'.
  """

  family: str
  patch: int
  width: int
  depth: int
  heads: int
  mlp: int
  image_size: int
  resize_to: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  act: str
  eps: float
  class_token: bool = True
  pre_norm: bool = False
  patch_bias: bool = True
  layer_scale: bool = False
  registers: int = 0
  map_head: bool = False
  proj_dim: int = 0
  resample: str = 'bicubic'
  antialias_pos: bool = False
  rope_theta: float = 0.0
  dtype: str = 'float32'

  @property
  def grid(self) -> int:
    return self.image_size // self.patch

  @property
  def positions(self) -> int:
    """Rows of the position embedding: the patches, plus the class token."""
    return self.grid**2 + int(self.class_token)


def _clip(patch: int, width: int, depth: int, heads: int, proj: int, act: str) -> ViTConfig:
  return ViTConfig(
    'clip', patch, width, depth, heads, 4 * width, 224, 224, CLIP_MEAN, CLIP_STD, act, 1e-5,
    pre_norm=True, patch_bias=False, proj_dim=proj,
  )  # fmt: skip


def _siglip(
  patch: int, width: int, depth: int, heads: int, mlp: int, size: int, resample: str = 'bicubic'
) -> ViTConfig:
  return ViTConfig(
    'siglip', patch, width, depth, heads, mlp, size, size, HALF, HALF, 'gelu_tanh', 1e-6,
    class_token=False, map_head=True, resample=resample,
  )  # fmt: skip


def _siglip2(size: str, patch: int, image_size: int) -> ViTConfig:
  """SigLIP 2 `size` ('b', 'l', 'so400m', 'g' (giant-opt)) at `image_size`."""
  width, depth, heads, mlp = {
    'b': (768, 12, 12, 3072), 'l': (1024, 24, 16, 4096), 'so400m': (1152, 27, 16, 4304),
    'g': (1536, 40, 16, 6144),
  }[size]  # fmt: skip
  return _siglip(patch, width, depth, heads, mlp, image_size, 'bilinear')


def _dinov2(width: int, depth: int, heads: int, registers: int = 0) -> ViTConfig:
  return ViTConfig(
    'dinov2', 14, width, depth, heads, 4 * width, 224, 256, IMAGENET_MEAN, IMAGENET_STD, 'gelu',
    1e-6, layer_scale=True, registers=registers, antialias_pos=registers > 0,
  )  # fmt: skip


def _dinov3(width: int, depth: int, heads: int, mlp: int, act: str = 'gelu') -> ViTConfig:
  return ViTConfig(
    'dinov3', 16, width, depth, heads, mlp, 224, 224, IMAGENET_MEAN, IMAGENET_STD, act, 1e-5,
    layer_scale=True, registers=4, resample='bilinear', rope_theta=100.0,
  )  # fmt: skip


# family -> variant -> config. `_gelu` CLIP variants: OpenCLIP models trained with exact GELU
# (e.g. the LAION-2B ones; OpenAI's weights use quick_gelu). `_reg` DINOv2: with 4 registers.
VARIANTS: dict[str, dict[str, ViTConfig]] = {
  'clip': {
    'b32': _clip(32, 768, 12, 12, 512, 'quick_gelu'),
    'b16': _clip(16, 768, 12, 12, 512, 'quick_gelu'),
    'l14': _clip(14, 1024, 24, 16, 768, 'quick_gelu'),
    'b32_gelu': _clip(32, 768, 12, 12, 512, 'gelu'),
    'b16_gelu': _clip(16, 768, 12, 12, 512, 'gelu'),
    'l14_gelu': _clip(14, 1024, 24, 16, 768, 'gelu'),
  },
  'siglip': {
    'b16_224': _siglip(16, 768, 12, 12, 3072, 224),
    'so400m14_384': _siglip(14, 1152, 27, 16, 4304, 384),
    # SigLIP 2's fixed-resolution google/siglip2-{base,large,so400m,giant-opt}-patchP-S; its
    # NaFlex files (-naflex) load as the `v2_*_256` of their size.
    **{
      f'v2_{size}{patch}_{s}': _siglip2(size, patch, s)
      for size, patch, sizes in (
        ('b', 16, (224, 256, 384, 512)),
        ('b', 32, (256,)),
        ('l', 16, (256, 384, 512)),
        ('so400m', 14, (224, 384)),
        ('so400m', 16, (256, 384, 512)),
        ('g', 16, (256, 384)),
      )
      for s in sizes
    },  # fmt: skip
  },
  'dinov2': {
    's14': _dinov2(384, 12, 6),
    'b14': _dinov2(768, 12, 12),
    'l14': _dinov2(1024, 24, 16),
    's14_reg': _dinov2(384, 12, 6, 4),
    'b14_reg': _dinov2(768, 12, 12, 4),
    'l14_reg': _dinov2(1024, 24, 16, 4),
  },
  'dinov3': {  # facebook/dinov3-vit*16-pretrain-lvd1689m
    's16': _dinov3(384, 12, 6, 1536),
    's16plus': _dinov3(384, 12, 6, 1536, 'swiglu'),
    'b16': _dinov3(768, 12, 12, 3072),
    'l16': _dinov3(1024, 24, 16, 4096),
    'h16plus': _dinov3(1280, 32, 20, 5120, 'swiglu'),
    '7b16': _dinov3(4096, 40, 32, 8192, 'swiglu'),
  },
}
DEFAULT_VARIANT = {'clip': 'b16', 'siglip': 'b16_224', 'dinov2': 'b14', 'dinov3': 'b16'}
OUTPUTS = {
  'clip': ('embedding', 'pooled'),
  'siglip': ('pooled', 'patch_mean'),
  'dinov2': ('cls_patch_mean', 'cls', 'patch_mean'),
  'dinov3': ('cls_patch_mean', 'cls', 'patch_mean'),
}


def add_variant(family: str, name: str, config: ViTConfig) -> None:
  """Registers another size of a family (a custom model, or a reduced one in tests)."""
  if config.family != family:
    raise ValueError(f'config.family {config.family!r} is not {family!r}')
  VARIANTS[family][name] = config


def get_config(family: str, variant: str | None, dtype: str = 'float32') -> ViTConfig:
  """The variant's `ViTConfig` with compute `dtype`.

  Raises:
    InputError: unknown family, variant or dtype.
  """
  if family not in VARIANTS:
    raise InputError(f'ViT family must be one of {FAMILIES}, got {family!r}.')
  variant = variant or DEFAULT_VARIANT[family]
  if variant not in VARIANTS[family]:
    raise InputError(
      f'{family} variant must be one of {sorted(VARIANTS[family])}, got {variant!r} '
      '(config.extractors.<name>.variant).'
    )
  if dtype not in ('float32', 'bfloat16'):
    raise InputError(f"ViT dtype must be 'float32' or 'bfloat16', got {dtype!r}.")
  return dataclasses.replace(VARIANTS[family][variant], dtype=dtype)


def feature_dim(cfg: ViTConfig, output: str, pool_depths: Sequence[int] = ()) -> int:
  base = {'embedding': cfg.proj_dim, 'cls_patch_mean': 2 * cfg.width}.get(output, cfg.width)
  return base + cfg.width * len(pool_depths)


def check_output(cfg: ViTConfig, output: str | None, pool_depths: Sequence[int]) -> tuple:
  """(output, pool_depths) validated for the family; None output: the family's default.

  Raises:
    InputError: an output the family does not have, or blocks outside 1..depth.
  """
  output = output or OUTPUTS[cfg.family][0]
  if output not in OUTPUTS[cfg.family]:
    raise InputError(
      f'{cfg.family} output must be one of {OUTPUTS[cfg.family]}, got {output!r} '
      '(config.extractors.<name>.output).'
    )
  depths = tuple(sorted({int(d) for d in pool_depths}))
  if any(not 1 <= d <= cfg.depth for d in depths):
    raise InputError(
      f'config.extractors.<name>.pool_depths must be blocks 1..{cfg.depth} of {cfg.family}, got '
      f'{list(pool_depths)}.'
    )
  return output, depths
