"""memjax from Python: train from a config, extract features, load a trained workdir, score images.

Each call is the library function the command line runs for that mode (`memjax MODE`), so a
notebook and the command give the same results:

  >>> from configs import photos
  >>> from memjax import api
  >>> config = photos.get_config()
  >>> config.data.dir, config.data.features_dir = '/data/photos', '/data/photos_features'
  >>> api.extract(config, '/tmp/memjax/photos')           # features, once
  >>> summary = api.train(config, '/tmp/memjax/photos')   # every fold; summary.json's content
  >>> model = api.load('/tmp/memjax/photos')              # the trained fold ensemble
  >>> for row in model.score(['/data/new/a.jpg', '/data/new/b.png']):
  ...   print(row.path, row.score, row.error)
"""

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import ml_collections
import numpy as np
from PIL import Image

from memjax.errors import InputError
from memjax.features import image_decode


class Scored(NamedTuple):
  """One scored input: its `path` (None for an array), its `score` (NaN when it could not be
  read) and the `error` that explains a NaN ('' otherwise)."""

  path: str | None
  score: float
  error: str


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and tests every fold of `config` in `workdir` (`memjax train`); resumes a stopped run.

  Returns:
    The run's summary (what `WORKDIR/summary.json` holds): per-fold metrics, mean and SD.

  Raises:
    InputError: the config breaks a rule of the train mode (`schema.validate`), before any work.

  Example:
    >>> from configs import test
    >>> api.train(test.get_config(), '/tmp/memjax/test')['spearman_mean']
  """
  from memjax import schema
  from memjax import train as train_lib

  schema.validate(config, 'train')
  return train_lib.train_and_evaluate(config, workdir)


def extract(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Computes the features `config.features` of the dataset's images into
  `config.data.features_dir` (`memjax extract`); resumes at the first unwritten row.

  Returns:
    The extraction's summary (rows written, skipped files, images per second).

  Example:
    >>> api.extract(config, '/tmp/memjax/photos')['num_images']
  """
  from memjax import extract as extract_lib
  from memjax import schema

  schema.validate(config, 'extract')
  return extract_lib.extract(config, workdir)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a trained `workdir` recorded (its `run.json`, or `config.json` before), laid over
  `configs/default.py` (`memjax.recorded_config`).

  Raises:
    InputError: `workdir` records no run.
  """
  from memjax import recorded_config

  return recorded_config.config_of(workdir)


def load(workdir: str, config: ml_collections.ConfigDict | None = None) -> 'Model':
  """The trained fold ensemble of `workdir` and its extractors, ready to score images.

  Args:
    workdir: a workdir that `train` finished.
    config: the run's config; by default the one the workdir recorded.

  Example:
    >>> model = api.load('/tmp/memjax/photos')
    >>> model.num_folds
    15
  """
  return Model(workdir, config or load_config(workdir))


def _image(item, index: int) -> np.ndarray:
  """An input array as uint8 RGB [H, W, 3] (grayscale [H, W] becomes RGB)."""
  array = np.asarray(item)
  if array.dtype != np.uint8 or not (
    array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
  ):
    raise InputError(
      f'inputs[{index}]: expected a path or a uint8 image array [H, W], [H, W, 3] or [H, W, 4]; '
      f'got a {array.dtype} array of shape {array.shape}.'
    )
  return array


class Model:
  """A trained workdir's fold ensemble (use `load`): `score` gives one `Scored` per input."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    from memjax import predict

    self.workdir, self.config = workdir, config
    self._predictor = predict.Predictor(config, workdir)
    self.num_folds = self._predictor.num_folds

  def score(self, inputs: Sequence, batch_size: int = 32) -> list[Scored]:
    """Scores image files and arrays: the mean over the folds of each fold's score.

    Args:
      inputs: paths (str or os.PathLike) and uint8 arrays [H, W, 3] (RGB), [H, W, 4] (RGBA,
        composited on white) or [H, W] (grayscale), in any mix; each array is resized and
        centre-cropped as an image file would be.
      batch_size: images per call (rounded up to a multiple of the device count).

    Returns:
      One `Scored(path, score, error)` per input, in order: an unreadable file has score NaN and
      its error; arrays have path None.

    Raises:
      InputError: an input is neither a path nor a uint8 image array.

    Example:
      >>> [round(r.score, 3) for r in model.score(['a.jpg', np.zeros((64, 64, 3), np.uint8)])]
    """

    out: list[Scored | None] = [None] * len(inputs)
    is_path = [isinstance(x, str | os.PathLike) for x in inputs]
    paths = [(i, os.fspath(x)) for i, x in enumerate(inputs) if is_path[i]]
    arrays = [(i, _image(x, i)) for i, x in enumerate(inputs) if not is_path[i]]
    if paths:
      scores, _, errors = self._predictor.predict_paths([p for _, p in paths], batch_size)
      for (i, path), s, e in zip(paths, scores, errors, strict=True):
        out[i] = Scored(path, float(s), e)
    p = self._predictor
    devices = int(p.mesh.devices.size)
    step = math.ceil(max(batch_size, 1) / devices) * devices
    for start in range(0, len(arrays), step):
      chunk = arrays[start : start + step]
      rgb = [image_decode.to_rgb(Image.fromarray(a)) for _, a in chunk]
      rgb += [rgb[0]] * (-len(rgb) % devices)  # pad to the device count
      # cut as the extractors cut image files, once per geometry they take
      scores, _ = p.predict_images([np.stack([g.apply(x) for x in rgb]) for g in p.geometries])
      for (i, _), s in zip(chunk, scores, strict=False):
        out[i] = Scored(None, float(s), '')
    return out
