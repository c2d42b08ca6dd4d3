"""`--mode=extract`: frozen features of a dataset's images into the feature store.

The features `config.features` names are computed by the extractors `config.extractors` assigns
to them (jitted, batch sharded over every device) and written batch by batch to
`config.data.features_dir` with `StoreWriter`: an interrupted run resumes at the first unwritten
row. Extractors that want different image geometries (`registry.build_groups`) are fed by one
image pipeline per geometry, in step, and write into the one store; each feature's metadata
records its own preprocessing. An unreadable image is logged by path and either skipped
(`config.extract.on_error='skip'`: its row is left out of the finished store and listed in its
metadata) or stops the run (`'stop'`); failures seen so far are kept in `failed.json` inside the
unfinished store. The run holds a lock on the store (`.NAME.memjax.lock` beside it), so a second
extraction into the same store is refused while the first runs.
"""

import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from memjax import datasets, parallel
from memjax.errors import InputError
from memjax.features import image_groups, registry, store
from memjax.features.extractor import Extractor
from memjax.runtime import atomic_files, fault_points, progress, workdir_lock, xla_options

FAILED_FILE = 'failed.json'


def make_forward(extractors: dict[str, Extractor], mesh, compiler_options: dict | None = None):
  """Jitted `(params, images) -> {name: [B, D] float32}` of extractors that share one geometry
  (uint8 images, or float32 for a float geometry), batch sharded over `mesh`."""

  def forward(params, images_):
    return {n: e.forward(params[n], images_).astype(np.float32) for n, e in extractors.items()}

  rep, batch = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  return jax.jit(
    forward,
    in_shardings=(rep, batch),
    out_shardings=batch,
    compiler_options=compiler_options,
  )


def _read_failures(directory: str) -> dict[int, dict]:
  path = os.path.join(directory, FAILED_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return {int(k): v for k, v in json.load(f).items()}


def _write_failures(directory: str, failed: dict[int, dict]) -> None:
  text = json.dumps({str(k): v for k, v in sorted(failed.items())}, indent=2)
  atomic_files.write_text(os.path.join(directory, FAILED_FILE), text)


def _finish(writer, directory, ids, failed, meta, dtype) -> None:
  """Completes the store; skipped rows are dropped by rewriting it atomically without them."""
  if not failed:
    writer.finalize(meta)
    return
  writer.close()
  keep = np.setdiff1d(np.arange(len(ids)), np.fromiter(failed, int))
  arrays = {
    n: np.load(os.path.join(directory, f'{n}.npy'), mmap_mode='r') for n in meta['features']
  }
  meta = {**meta, 'skipped': [failed[k] for k in sorted(failed)]}
  store.write_store(
    directory,
    [ids[i] for i in keep],
    {n: a[keep] for n, a in arrays.items()},
    meta,
    dtype,
    overwrite=True,
  )


def extract(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Extracts `config.features` for the dataset's images into `config.data.features_dir`.

  Returns:
    A summary: counts, skipped images, images/s (also logged).

  Raises:
    InputError: no store path, a complete store lacking these features, bad images under
      `on_error='stop'`, another extraction writing the same store, or any data/weights problem.
  """
  del workdir  # the store path is the output; nothing else is written
  directory, cfg = config.data.features_dir, config.extract
  if not directory:
    raise InputError('config.data.features_dir is not set: where should the features go?')
  if cfg.on_error not in ('skip', 'stop'):
    raise InputError(f"config.extract.on_error must be 'skip' or 'stop', got {cfg.on_error!r}.")
  with workdir_lock.hold(directory, 'extract', lock_file=workdir_lock.store_lock_file(directory)):
    return _extract(config, directory)


def _extract(config: ml_collections.ConfigDict, directory: str) -> dict:
  cfg = config.extract
  ids, paths = datasets.image_paths(config)
  ids = [str(i) for i in ids]
  if store.is_complete(directory):
    _, _, meta = store.read_store(directory)
    absent = [n for n in config.features if n not in meta['features']]
    if absent:
      raise InputError(f'{directory} is a finished store without {absent}; choose another path.')
    logging.info('%s is already complete; nothing to extract.', directory)
    return {'features_dir': directory, 'num_images': meta['count'], 'already_complete': True}
  groups = registry.build_groups(config)
  extractors = image_groups.in_order(groups, config.features)
  mesh = parallel.make_mesh()
  parallel.check_divisible(cfg.batch_size, mesh, 'config.extract.batch_size')
  writer = store.StoreWriter(
    directory, ids, {n: e.feature_dim for n, e in extractors.items()}, dtype=cfg.dtype
  )
  failed = _read_failures(directory)
  options = xla_options.compiler_options('extract', config.cpu_library_fusions)
  forwards = [make_forward(group, mesh, options) for group in groups]
  params = [parallel.replicate({n: e.params for n, e in g.items()}, mesh) for g in groups]
  share = parallel.process_share(cfg.batch_size)
  start_row, start, last_log = writer.next_row, time.time(), time.time()
  logging.info(
    'extracting %s for %d images into %s, from row %d',
    list(extractors),
    len(ids),
    directory,
    start_row,
  )
  shown = progress.bar(len(ids), 'extract', 'img', initial=start_row)
  batches = image_groups.group_batches(paths, groups, batch_size=cfg.batch_size, start=start_row)
  for batch, pixels in batches:
    features = {}
    for forward, p, x in zip(forwards, params, pixels, strict=True):
      local = {'image': x[share]}
      features.update(parallel.fetch(forward(p, parallel.to_global(local, mesh, 0)['image'])))
    valid = batch['index'] >= 0
    bad = np.flatnonzero(valid & ~batch['ok'])
    for i in bad:
      row = int(batch['index'][i])
      failed[row] = {'id': ids[row], 'path': paths[row], 'error': batch['error'][i].decode()}
      logging.warning('unreadable image %s: %s', paths[row], failed[row]['error'])
    if bad.size:
      _write_failures(directory, failed)
      if cfg.on_error == 'stop':
        rows = [int(batch['index'][i]) for i in bad]
        listed = '; '.join(f'{failed[r]["path"]} ({failed[r]["error"]})' for r in rows)
        raise InputError(
          f'unreadable image(s): {listed}. Fix or remove them (then delete '
          f'{directory}), or set config.extract.on_error=skip.'
        )
    ok = batch['ok'][valid, None]
    fault_points.reached('extract_batch')
    writer.append({n: np.where(ok, f[valid], 0) for n, f in features.items()})
    done = writer.next_row
    shown.update(int(valid.sum()))
    if time.time() - last_log > config.log_every_secs or done == len(ids):
      rate = (done - start_row) / (time.time() - start)
      eta = (len(ids) - done) / max(rate, 1e-9)
      logging.info('extracted %d/%d images, %.1f images/s, ETA %.0f s', done, len(ids), rate, eta)
      last_log = time.time()
  shown.close()
  meta = {
    'source': f'{config.data.name} images ({config.data.dir})',
    'features': {n: e.store_descriptor() for n, e in extractors.items()},
  }
  _finish(writer, directory, ids, failed, meta, cfg.dtype)
  seconds = time.time() - start
  summary = {
    'features_dir': directory,
    'num_images': len(ids) - len(failed),
    'skipped': [failed[k]['path'] for k in sorted(failed)],
    'images_per_second': (len(ids) - start_row) / max(seconds, 1e-9),
    'wall_seconds': seconds,
  }
  logging.info('extraction done: %s', {k: v for k, v in summary.items() if k != 'skipped'})
  if failed:
    logging.warning('skipped %d unreadable images: %s', len(failed), summary['skipped'])
  return summary
