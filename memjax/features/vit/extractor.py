"""Frozen CLIP / SigLIP / DINOv2 / DINOv3 extractors (`model.py`'s encoder with `weights.py`'s
weights).

`make_extractor` builds one from a local file; `share_geometry` lets fused ViTs take the image
geometry of the features they are fused with (the registry's `build_all` calls it).
"""

import dataclasses
import functools
from collections.abc import Sequence

import jax

from memjax.errors import InputError
from memjax.features.extractor import Extractor
from memjax.features.geometry import Geometry
from memjax.features.readers import weight_files
from memjax.features.vit import architecture, config_files
from memjax.features.vit import model as vit_model
from memjax.features.vit import variants as vit_variants
from memjax.features.vit import weights as vit_weights
from memjax.features.vit.variants import ViTConfig


@dataclasses.dataclass(frozen=True)
class ViTExtractor(Extractor):
  """An `Extractor` of this module; its geometry can follow a fused feature's (`share_geometry`).

  Attributes:
    config: the architecture, for `share_geometry` and the store.
  """

  config: ViTConfig | None = None


FITS = (None, 'crop', 'stretch')


def reference_geometry(
  cfg: ViTConfig, layout: str | None, fit: str | None = None, resample: str | None = None
) -> Geometry:
  """The reference processor's resize and crop for the family and the file's layout.

  HF CLIP and DINOv2: bicubic, longer side truncated, centre crop (offset floor); OpenCLIP CLIP
  (torchvision): the same with torchvision's rounded crop offset; SigLIP: bicubic stretch of the
  whole image (SigLIP 2's HF processor: bilinear); DINOv3: bilinear stretch in float32 (its
  processor resizes after the rescale to float). `fit='crop'` / `'stretch'` overrides the crop
  for any family. `resample`: the filter of a preprocessor_config.json beside the weights; None:
  `cfg.resample` for Hugging Face files, bicubic for OpenCLIP, timm and big_vision ones.

  Raises:
    InputError: an unknown `fit`.
  """
  if fit not in FITS:
    raise InputError(f"ViT fit must be one of {FITS} (None: the reference's), got {fit!r}.")
  stretched = cfg.family in ('siglip', 'dinov3')
  crop = 'center_round' if layout == 'open_clip' else 'center'
  if fit == 'stretch' or (fit is None and stretched):
    crop = 'stretch'
  resize_to = cfg.image_size if crop == 'stretch' or stretched else cfg.resize_to
  if resample is None:
    resample = cfg.resample if (layout or '').startswith('hf_') else 'bicubic'
  pixels = 'float32' if cfg.family == 'dinov3' else 'uint8'
  return Geometry(resize_to, cfg.image_size, resample, 'truncate', crop, pixels)


def make_extractor(
  family: str,
  variant: str | None,
  weights: str,
  output: str | None = None,
  dtype: str = 'float32',
  pool_depths: Sequence[int] = (),
  remat: bool = False,
  fit: str | None = None,
) -> ViTExtractor:
  """A frozen CLIP / SigLIP / DINOv2 / DINOv3 extractor from a local weight file.

  Args:
    family: 'clip', 'siglip', 'dinov2' or 'dinov3'.
    variant: a key of `variants.VARIANTS[family]`, checked against the file and the model config
      beside it; None: the architecture of that config (`config.json`, `open_clip_config.json`),
      else the built-in variant the tensor shapes fit (`architecture.resolve`).
    weights: path of the file (`weights.py` lists the layouts read).
    output: which output is the feature (`variants.OUTPUTS[family]`); None: the family's default.
    dtype: compute dtype, 'float32' or 'bfloat16'.
    pool_depths: blocks (1-based) whose token means are appended to the feature.
    remat: gradient checkpointing of each transformer block (fine-tuning; same outputs).
    fit: None: the reference processor's geometry for the family and file layout
      (`reference_geometry`: CLIP and DINOv2 crop the centre, SigLIP and DINOv3 stretch the
      whole image to a square, with the resize filter of a preprocessor_config.json beside the
      weights); 'crop': the centre crop, after the family's resize, for every family (SigLIP
      included); 'stretch': the whole image stretched to the model's square for every family.

  Returns:
    A `ViTExtractor` whose `weights_sha256` is the file's.

  Raises:
    InputError: a bad variant / output / dtype, or as `weight_files.read_tensors`,
      `architecture.resolve` and `vit_weights.convert`.
  """
  if family not in vit_variants.VARIANTS:
    raise InputError(f'ViT family must be one of {vit_variants.FAMILIES}, got {family!r}.')
  tensors = weight_files.read_tensors(weights)
  sha = weight_files.file_sha256(weights)
  layout = vit_weights.require_layout(family, tensors, weights)
  cfg, variant = architecture.resolve(family, variant, weights, tensors, dtype)
  resample = config_files.processor_resample(weights)
  output, depths = vit_variants.check_output(cfg, output, pool_depths)
  params = vit_weights.convert(cfg, layout, tensors, weights, output)
  del tensors
  geometry = reference_geometry(cfg, layout, fit, resample)
  name = f'{family}_{variant}/{output}' + (f'+pool{",".join(map(str, depths))}' if depths else '')
  pools = f'; then the token means of blocks {list(depths)}' if depths else ''
  return ViTExtractor(
    name=name,
    feature_dim=vit_variants.feature_dim(cfg, output, depths),
    params=jax.device_put(params),
    forward=functools.partial(
      vit_model.forward, model=vit_model.VisionTransformer(cfg, output, depths, remat)
    ),
    image_size=geometry.image_size,
    resize_to=geometry.resize_to,
    preprocessing=f'RGB / 255, mean {cfg.mean}, std {cfg.std}; {dtype} compute; feature: '
    f'{output}{pools}',
    weights_sha256=sha,
    resample=geometry.resample,
    rounding=geometry.rounding,
    crop=geometry.crop,
    pixels=geometry.pixels,
    config=cfg,
  )


def share_geometry(extractors: dict[str, Extractor]) -> dict[str, Extractor]:
  """Fused features with one image geometry: ViTs follow the others' (or the largest ViT's).

  The image pipeline decodes every image once, at one `geometry.Geometry`. When the fused
  extractors want different ones, the ViT extractors take the geometry of the other extractors
  (which must agree), or, when all are ViTs, that of the ViT with the largest input (the first
  of those), and resize that square to their model size inside the jit (bicubic, antialiased);
  their store entry says so.

  Raises:
    InputError: the non-ViT extractors disagree among themselves.
  """
  fixed = {e.geometry for e in extractors.values() if not _is_vit(e)}
  if len(fixed) > 1:
    shown = sorted(e.geometry.describe() for e in extractors.values())
    raise InputError(
      f'extractors of {list(extractors)} want different inputs {shown}: features computed on the '
      'fly must share one; extract them into a store instead (--mode=extract cuts each image '
      'once per geometry).'
    )
  largest = max(extractors.values(), key=lambda e: e.image_size)
  target = fixed.pop() if fixed else largest.geometry
  out = {}
  for name, e in extractors.items():
    if _is_vit(e) and e.geometry != target:
      inside = (
        f'resized to {e.config.image_size} inside the model (bicubic, antialiased)'
        if target.image_size != e.config.image_size
        else 'used at that size'
      )
      note = (
        f'; images arrive as the fused features decode them ({target.describe()}), not as '
        f"this model's reference does ({e.geometry.describe()}), and are {inside}"
      )
      e = dataclasses.replace(
        e,
        resize_to=target.resize_to,
        image_size=target.image_size,
        resample=target.resample,
        rounding=target.rounding,
        crop=target.crop,
        pixels=target.pixels,
        preprocessing=e.preprocessing + note,
      )
    out[name] = e
  return out


def _is_vit(e: Extractor) -> bool:
  return isinstance(e, ViTExtractor)
