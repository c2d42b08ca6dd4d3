"""ResMem as a frozen extractor (`kind='resmem'`) and as a scorer that needs no training.

ResMem (Needell & Bainbridge 2022; `pip install resmem`) is a ResNet-152 plus a small AlexNet-like
branch, fine-tuned on LaMem and MemCat to output a memorability score (`model.py`). Its weights
are under the ResMem Non-commercial License ((c) 2021 The University of Chicago): noncommercial
use only. memjax reads the package's `model.pt` (or a path the user gives) with its torch-free
reader and never depends on the package.

* `make_extractor(weights, output)`: `output='pooled'` (default) is the ResNet's 2048-d average
  pool, for training and fusion; `'score'` is ResMem's own score (1-d); `'pooled_score'` both.
* `score_images(paths, weights)`: ResMem's score per image file, with no trained workdir.

Preprocessing is ResMem's `transformer`: torchvision `Resize((256, 256))` (the whole image
stretched, PIL bilinear), `CenterCrop(227)` (offset round(14.5) = 14), `ToTensor()` (RGB / 255,
no mean or std).
"""

import functools
from collections.abc import Sequence

import jax
import numpy as np

from memjax.errors import InputError
from memjax.features import images
from memjax.features.extractor import Extractor
from memjax.features.geometry import Geometry
from memjax.features.readers import weight_files
from memjax.features.resmem import model as resmem_model
from memjax.features.resmem import weights as resmem_weights

GEOMETRY = Geometry(256, 227, 'bilinear', 'truncate', 'stretch')


def make_extractor(weights: str | None = None, output: str | None = None) -> Extractor:
  """The ResMem extractor from a local `model.pt` (None: the installed resmem package's).

  Raises:
    InputError: an unknown output, or as `resmem_weights.load`.
  """
  output = output or 'pooled'
  if output not in resmem_model.OUTPUTS:
    raise InputError(
      f'resmem output must be one of {resmem_model.OUTPUTS}, got {output!r} '
      '(config.extractors.<name>.output).'
    )
  cfg, params, path = resmem_weights.load(weights)
  dim = {'pooled': cfg.pooled_dim, 'score': 1, 'pooled_score': cfg.pooled_dim + 1}[output]
  return Extractor(
    name=f'resmem/{output}',
    feature_dim=dim,
    params=jax.device_put(params),
    forward=functools.partial(resmem_model.forward, cfg=cfg, output=output),
    image_size=GEOMETRY.image_size,
    resize_to=GEOMETRY.resize_to,
    resample=GEOMETRY.resample,
    rounding=GEOMETRY.rounding,
    crop=GEOMETRY.crop,
    preprocessing=f'RGB / 255 (no mean or std); feature: {output}; {resmem_weights.LICENCE}',
    weights_sha256=weight_files.file_sha256(path),
  )


def score_images(
  paths: Sequence[str], weights: str | None = None, batch_size: int = 16
) -> tuple[np.ndarray, list[str]]:
  """ResMem's memorability score of each image file: no training, no workdir.

  Args:
    paths: image files.
    weights: a ResMem `model.pt`; None: the installed resmem package's.
    batch_size: images per forward pass.

  Returns:
    (scores float64 [N], NaN for unreadable files; errors [N], '' where the file was read), the
    arrays `predict.write_csv(output, paths, scores, None, errors)` writes as predict's CSV.

  Raises:
    InputError: as `make_extractor`.
  """
  e = make_extractor(weights, 'score')
  fn = jax.jit(e.forward)
  scores, errors = np.full(len(paths), np.nan), [''] * len(paths)
  for batch in images.image_batches(
    list(paths),
    batch_size=batch_size,
    resize_to=e.resize_to,
    image_size=e.image_size,
    geometry=e.geometry,
  ):
    out = np.asarray(fn(e.params, batch['image']))[:, 0]
    for i, index in enumerate(batch['index']):
      if index < 0:
        continue
      if batch['ok'][i]:
        scores[index] = out[i]
      else:
        errors[index] = batch['error'][i].decode()
  return scores, errors
