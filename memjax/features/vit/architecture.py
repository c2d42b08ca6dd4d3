"""The `ViTConfig` of a weight file, resolved in one pass from the variant a user gives, the model
config beside the file (`config_files`) and its tensor shapes (`tensor_shapes`).

* A `variant` the user gives must agree with both, or the run stops with one line naming the
  first difference (e.g. a GELU file given as the quick-GELU variant, a registers file given as
  a no-register variant).
* Without one, a config file that gives the sizes defines the architecture (on the preprocessing
  of the family's default variant, or SigLIP 2's), and the tensor shapes must agree with it.
* Without either, the built-in variant whose shapes match is used (the family's default first;
  an exact-GELU and a quick-GELU CLIP of one size have the same shapes, so the built-in list's
  order decides and the log says so).
"""

import dataclasses
from collections.abc import Mapping

import numpy as np
from absl import logging

from memjax.errors import InputError
from memjax.features.vit import config_files, tensor_shapes
from memjax.features.vit.file_arch import FIELD_WORDS, FileArch
from memjax.features.vit.variants import DEFAULT_VARIANT, VARIANTS, ViTConfig, get_config


def resolve(
  family: str, variant: str | None, weights: str, tensors: Mapping[str, np.ndarray], dtype: str
) -> tuple[ViTConfig, str]:
  """(config with compute `dtype`, variant name) of the file `weights` holding `tensors`.

  Raises:
    InputError: an unknown family, variant or dtype (`variants.get_config`), an unreadable model
      config, a variant (or config) that disagrees with the file, or no built-in variant that
      fits a file without a config.
  """
  told = config_files.read(family, weights)
  shown = tensor_shapes.shape_arch(tensors, family)
  from_config = variant is None and told is not None and 'heads' in told.fields
  base = get_config(family, told.base if from_config else variant, dtype)
  if variant is not None:
    _check_agrees(base, f'variant {family}/{variant}', [told, shown], weights)
    return base, variant
  if from_config:
    cfg = _from_config(base, told, shown)
    _check_agrees(cfg, told.source.removesuffix(' says'), [shown], weights)
    return cfg, _name_of(cfg)
  return _matching_variant(base, [a for a in (told, shown) if a is not None], weights)


def _check_agrees(cfg: ViTConfig, what: str, archs: list[FileArch | None], weights: str) -> None:
  """Stops at the first field a file arch knows that differs from `cfg` (`what`: its name)."""
  for arch in filter(None, archs):
    for field, value in arch.fields.items():
      if _differs(value, getattr(cfg, field)):
        raise InputError(
          f'{weights}: {arch.source} {FIELD_WORDS[field]} {value!r}, but {what} has '
          f'{getattr(cfg, field)!r} (give the variant that matches, or none to take the '
          'architecture from the file).'
        )


def _from_config(base: ViTConfig, told: FileArch, shown: FileArch) -> ViTConfig:
  """`base` with the sizes of the config file (and CLIP's projection width from the shapes when
  the config has none)."""
  fields = {**told.defaults, **told.fields}
  if base.family != 'dinov2':
    fields['resize_to'] = fields['image_size']
  else:
    fields['antialias_pos'] = fields.get('registers', 0) > 0
  if base.family == 'clip' and 'proj_dim' not in fields:
    fields['proj_dim'] = shown.fields.get('proj_dim', 0)
  return dataclasses.replace(base, **fields)


def _matching_variant(
  default: ViTConfig, said: list[FileArch], weights: str
) -> tuple[ViTConfig, str]:
  """The first built-in variant (the family's `default` first) with every field the file shows,
  with the default's compute dtype."""
  family = default.family
  shapes = {k: v for a in said for k, v in {**a.defaults, **a.fields}.items()}
  for name in [DEFAULT_VARIANT[family], *VARIANTS[family]]:
    cfg = dataclasses.replace(VARIANTS[family][name], dtype=default.dtype)
    if not any(_differs(v, getattr(cfg, k)) for k, v in shapes.items()):
      same = [n for n, c in VARIANTS[family].items() if n != name and _same_shapes(c, cfg)]
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
      return cfg, name
  shown = ', '.join(f'{FIELD_WORDS[k]} {v}' for k, v in shapes.items())
  raise InputError(
    f"{weights}: no built-in {family} variant has {shown}; put the model's config.json beside "
    f'the weights (memjax reads the architecture from it) or give a variant of '
    f'{sorted(VARIANTS[family])}.'
  )


def _differs(a, b) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return not np.isclose(float(a), float(b), rtol=1e-6, atol=0)
  return a != b


def _same_shapes(a: ViTConfig, b: ViTConfig) -> bool:
  keys = ('width', 'depth', 'mlp', 'patch', 'image_size', 'registers', 'proj_dim')
  return all(getattr(a, k) == getattr(b, k) for k in keys)


def _name_of(cfg: ViTConfig) -> str:
  """A built-in variant's name when `cfg` is one, else a name that spells the architecture."""
  for name, known in VARIANTS[cfg.family].items():
    if dataclasses.replace(known, dtype=cfg.dtype) == cfg:
      return name
  name = f'w{cfg.width}d{cfg.depth}h{cfg.heads}m{cfg.mlp}p{cfg.patch}s{cfg.image_size}_{cfg.act}'
  return name + (f'_reg{cfg.registers}' if cfg.registers else '')
