"""`--mode=predict` and the batch Python API: images in, memorability out.

The extractors of `config.features` run on the images, then every trained fold's chosen
checkpoint (`config.eval.checkpoint`) scores them; the prediction is the mean over folds of each
fold's m = sum_k p(k) s_k (its own thresholds), and the mean class probabilities. Everything after
decoding is one jitted function, vmapped over the stacked fold parameters. Extractors that want
different image geometries (e.g. ResMem's stretched 227 crop beside EfficientNet-Lite's crop,
`registry.build_groups`) get each image cut their way, as `--mode=extract` cut it for the store.

  predictor = Predictor(None, workdir)   # the config WORKDIR recorded
  scores, probs = predictor.predict_images((uint8_images,))   # per geometry: [B, S, S, 3] RGB

The config's fields that say what the parameters mean, and the extractors it builds, must be the
ones the workdir recorded (`run_record.check_model`, `run_record.check_extractors`).
"""

import csv
import functools
import glob
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from memjax import data_identity, parallel, recorded_config, run_parts, run_record, steps
from memjax.errors import InputError, out_of_space
from memjax.features import image_groups, registry
from memjax.features.store.spec import has_control_characters
from memjax.fold_consts import FoldConsts, host_consts
from memjax.runtime import atomic_files, progress, xla_options
from memjax.train_state import split_params

ON_ERROR = ('skip', 'stop')
SHOW = 5  # unreadable images quoted in a message


def _fold_dirs(workdir: str) -> list[str]:
  dirs = sorted(glob.glob(os.path.join(glob.escape(workdir), 'fold_*', 'checkpoints')))
  if not dirs:
    raise InputError(f'no trained folds in {workdir} (expected fold_K/checkpoints): train first.')
  return [os.path.dirname(d) for d in dirs]


class Predictor:
  """A trained fold ensemble plus its frozen extractors."""

  def __init__(self, config: ml_collections.ConfigDict | None, workdir: str):
    """Restores every fold of `workdir` and builds the extractors.

    Args:
      config: the config to score with; None: the one `workdir` recorded.
      workdir: a trained workdir.

    Raises:
      InputError: no trained folds; a config or extractor that differs from what the workdir's
        record or checkpoints say the parameters mean.
    """
    if config is None:
      config = recorded_config.config_of(workdir)
    self.config = config
    run_record.check_kind(workdir, 'predict')
    record = run_record.check_model(config, workdir)  # fields first: they name a wrong config best
    self.groups = registry.build_groups(config)  # as --mode=extract cut the images
    self.extractors = image_groups.in_order(self.groups, config.features)
    identities = {n: data_identity.extractor_identity(e) for n, e in self.extractors.items()}
    run_record.check_extractors(record, workdir, identities, 'config.extractors.{name}')
    self.mesh = parallel.make_mesh()
    dims = {n: e.feature_dim for n, e in self.extractors.items()}
    parts = run_parts.build_parts(config, self.extractors, dims, self.mesh)
    params, consts = [], []
    for fold_dir in _fold_dirs(workdir):
      fold_params, meta, _ = parts.restore(fold_dir, config.eval.checkpoint)
      params.append(jax.device_get(fold_params))
      consts.append(_consts(meta, dims))
    self.num_folds = len(params)
    self.head = parts.model.head
    stack = lambda *x: np.stack(x)
    self._folds = parallel.replicate(
      {'params': jax.tree.map(stack, *params), 'consts': jax.tree.map(stack, *consts)}, self.mesh
    )
    self._frozen = parts.frozen
    rep = parallel.replicated(self.mesh)
    group_of = {n: i for i, group in enumerate(self.groups) for n in group}  # geometry index
    self._fn = jax.jit(
      functools.partial(_predict, model=parts.model, backbone=parts.backbone, group_of=group_of),
      in_shardings=(rep, rep, parallel.batch_sharding(self.mesh)),
      out_shardings=parallel.batch_sharding(self.mesh),
      compiler_options=xla_options.compiler_options('predict', config.cpu_library_fusions),
    )
    self.geometries = tuple(image_groups.geometry_of(group) for group in self.groups)

  def predict_images(self, pixels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """Scores the same images cut in each of `self.geometries`: one array [B, S, S, 3] per
    geometry (uint8 RGB; float32 for a float geometry), B divisible by the device count.

    Returns:
      (scores [B], mean class probabilities [B, K] or None for the regression head).
    """
    if len(pixels) != len(self.geometries):
      raise ValueError(f'{len(pixels)} image arrays for {len(self.geometries)} geometries')
    images_ = tuple(parallel.to_global(dict(enumerate(pixels)), self.mesh, 0).values())
    out = parallel.fetch(self._fn(self._folds, self._frozen, images_))
    return out['score'], out.get('probs')

  def predict_paths(self, paths: list[str], batch_size: int = 32):
    """Decodes and scores image files.

    Returns:
      (scores [N] with NaN for unreadable files, probs [N, K] or None, errors [N] str).
    """
    batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
    scores, probs, errors = [], [], []
    shown = progress.bar(len(paths), 'predict', 'img')
    for batch, pixels in image_groups.group_batches(paths, self.groups, batch_size=batch_size):
      s, p = self.predict_images(pixels)
      valid = batch['index'] >= 0
      shown.update(int(valid.sum()))
      ok = batch['ok'][valid]
      scores.append(np.where(ok, s[valid], np.nan))
      probs.append(None if p is None else np.where(ok[:, None], p[valid], np.nan))
      errors += [e.decode() for e in batch['error'][valid]]
    shown.close()
    if not scores:
      return np.zeros(0), None, []
    return np.concatenate(scores), None if probs[0] is None else np.concatenate(probs), errors


def _consts(meta: dict, dims: dict) -> FoldConsts:
  """A fold's constants from its checkpoint's meta (no standardisation: shift 0, scale 1)."""
  shift = meta.get('shift') or {n: np.zeros(d) for n, d in dims.items()}
  scale = meta.get('scale') or {n: np.ones(d) for n, d in dims.items()}
  return host_consts(meta['thresholds'], meta['values'], shift, scale)


def _predict(folds, frozen, pixels, *, model, backbone, group_of):
  """Mean over the stacked folds of each fold's score (and class probabilities).

  `pixels` holds the images once per geometry; `group_of` names each feature's. Frozen
  extractors run once for all folds; fine-tuned ones once per fold, with its parameters.
  """
  images_ = {n: pixels[group_of[n]] for n in model.features}
  shared = None
  if not backbone.trained:
    shared = steps.raw_features(model, {}, frozen, backbone, images=images_)

  def one_fold(params, consts):
    head, trained = split_params(params, backbone)
    if shared is None:
      raw = steps.raw_features(model, {}, frozen, backbone, trained, images_)
    else:
      raw = shared
    out = model.apply({'params': head}, consts.standardize(raw), train=False)
    score, probs = steps.scores_and_probs(model, out, consts.values)
    return score, jnp.zeros(score.shape + (0,)) if probs is None else probs

  scores, probs = jax.vmap(one_fold)(folds['params'], folds['consts'])
  out = {'score': scores.mean(0)}
  if model.head == 'classification':
    out['probs'] = probs.mean(0)
  return out


def list_inputs(config: ml_collections.ConfigDict) -> list[str]:
  """Image paths from `config.predict.input`: a folder (searched recursively) or a CSV.

  A CSV's path column holds one image per row, as written (no spaces stripped): relative paths
  are relative to the folder holding the CSV (`..` included), absolute paths stay as they are.
  A header-only CSV lists no images.

  Raises:
    InputError: nothing there, no images in the folder; a CSV that cannot be read, without the
      path column, or with a row whose path cell is missing, blank or holds control characters
      (naming the file, the line and the column).
  """
  source = config.predict.input
  if not source or not os.path.exists(source):
    raise InputError(f'config.predict.input={source!r}: expected a folder of images or a CSV.')
  if os.path.isdir(source):
    from memjax.datasets import image_walk

    # Each real image once, symlink cycles cut (memjax/datasets/image_walk.py).
    paths = image_walk.list_files(source, Image.registered_extensions())
    if not paths:
      raise InputError(f'{source} holds no image files.')
    return paths
  column = config.predict.path_column
  base = os.path.dirname(os.path.abspath(source))
  paths = []
  try:
    with open(source, newline='', encoding='utf-8-sig') as f:
      reader = csv.DictReader(f)
      if column not in (reader.fieldnames or []):
        raise InputError(f'{source}: no column {column!r}; the header has {reader.fieldnames}.')
      for row in reader:
        paths.append(os.path.join(base, _path_cell(row, column, source, reader.line_num)))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise InputError(f'cannot read the predict CSV {source}: {e}') from e
  return paths


def _path_cell(row: dict, column: str, source: str, line: int) -> str:
  """The image path of one predict CSV row, as written."""
  from memjax.datasets import score_files

  expected = "an image path (relative to the CSV's folder, or absolute)"
  score_files.csv_cell(row, column, source, line, expected)  # missing or blank
  path = row[column]
  if has_control_characters(path):
    raise InputError(
      f'{source} line {line}, column {column!r}: path {path!r} holds control characters (NUL, '
      'escape, a stray byte-order mark); is the file damaged or in another encoding?'
    )
  return path


def write_csv(path: str, paths, scores, probs, errors, num_classes: int | None = None) -> None:
  """Writes `path,score,prob_0..prob_{K-1},error` atomically.

  Args:
    path: the output CSV.
    paths, scores, probs, errors: per image: its path, score (NaN when unreadable), class
      probabilities [N, K] (None for a regression head) and error text ('' when scored).
    num_classes: K, the model's number of classes (0 for a regression head), so that the columns
      are the same whatever the input, even with no images; None takes it from `probs`.

  Raises:
    ValueError: `num_classes` disagrees with `probs`.
  """
  if num_classes is None:
    num_classes = 0 if probs is None else probs.shape[1]
  elif probs is not None and len(paths) and probs.shape[1] != num_classes:
    raise ValueError(f'write_csv: probs have {probs.shape[1]} classes, num_classes={num_classes}')
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  kept = 'The previous file is unchanged; free' if os.path.exists(path) else 'Free'
  with (
    out_of_space(path, f'{kept} space and re-run.'),
    atomic_files.replacing(path, newline='') as f,
  ):
    out = csv.writer(f)
    out.writerow(['path', 'score'] + [f'prob_{k}' for k in range(num_classes)] + ['error'])
    for i, p in enumerate(paths):
      row_probs = [''] * num_classes if probs is None else [f'{x:.6f}' for x in probs[i]]
      score = '' if np.isnan(scores[i]) else f'{scores[i]:.6f}'
      out.writerow([p, score] + ([''] * num_classes if errors[i] else row_probs) + [errors[i]])


def zero_shot(config: ml_collections.ConfigDict) -> bool:
  """Whether `config` scores with ResMem's own memorability head, which needs no training: its
  one feature is `kind='resmem'` with `output='score'` (configs/resmem_score.py)."""
  if len(config.features) != 1 or config.features[0] not in config.extractors:
    return False
  spec = config.extractors[config.features[0]]
  return spec.kind == 'resmem' and spec.output == 'score'


def predict(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`--mode=predict`: writes `config.predict.output` (default WORKDIR/predictions.csv).

  With a `zero_shot` config (ResMem's score), no trained workdir is needed: WORKDIR is only where
  the CSV goes by default.

  Unreadable images get an empty score and their error in the CSV
  (`config.predict.on_error='skip'`), or stop the run before anything is written (`'stop'`).

  Raises:
    InputError: bad input list, checkpoints or config; unreadable images under `'stop'`.
  """
  start = time.time()
  if config.predict.on_error not in ON_ERROR:
    raise InputError(
      f'config.predict.on_error must be one of {ON_ERROR}, got {config.predict.on_error!r}.'
    )
  paths = list_inputs(config)
  if zero_shot(config):  # ResMem's own score: no trained workdir
    from memjax.features.resmem import extractor as resmem_extractor

    spec = config.extractors[config.features[0]]
    scores, errors = resmem_extractor.score_images(paths, spec.weights, config.extract.batch_size)
    probs, classes, num_folds = None, 0, 0
  else:
    predictor = Predictor(config, workdir)
    scores, probs, errors = predictor.predict_paths(paths, config.extract.batch_size)
    classes = config.num_classes if predictor.head == 'classification' else 0
    num_folds = predictor.num_folds
  failed = [(p, e) for p, e in zip(paths, errors, strict=True) if e]
  output = config.predict.output or os.path.join(workdir, 'predictions.csv')
  if failed and config.predict.on_error == 'stop':
    listed = '; '.join(f'{p} ({e})' for p, e in failed[:SHOW])
    more = f' and {len(failed) - SHOW} more' if len(failed) > SHOW else ''
    raise InputError(
      f'{len(failed)} unreadable image(s): {listed}{more}. Nothing was written to {output}; '
      'fix or remove them, or set config.predict.on_error=skip.'
    )
  if jax.process_index() == 0:
    write_csv(output, paths, scores, probs, errors, classes)
  for p, e in failed:
    logging.warning('unreadable image %s (%s): not scored', p, e)
  summary = {
    'output': output,
    'num_images': len(paths),
    'num_unreadable': len(failed),
    'num_folds': num_folds,
    'wall_seconds': time.time() - start,
  }
  logging.info('predictions: %s', summary)
  return summary
