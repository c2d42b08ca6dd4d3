"""memjax's ResMem == resmem's own code (its `ResMem` module and `transformer`) on real photos.

  python -m benchmarks.resmem_check --images=../shared/data/lnsim-dev/images --num=100

Needs the `resmem` package (`pip install resmem`: about 490 MB, with torch and torchvision; its
weights are under the ResMem Non-commercial License, (c) 2021 The University of Chicago) in the
interpreter that runs memjax. Without it the script says so and exits 0; it is not part of the
test suite (tests/test_resmem_torch.py checks the network against an independent torch.nn
ResMem on random weights).

On the first `--num` images of `--images` (sorted by name):

* resmem's side, as its README runs it: `transformer(Image.open(path).convert('RGB'))`, then
  `ResMem(pretrained=True).eval()` on the batch (torch, CPU, float32); the pooled feature is the
  ResNet's average pool (`features.avgpool`, read with a forward hook).
* memjax's side: the score from `memjax predict --config=configs/resmem_score.py` (the predict
  function on a CSV of the paths; it finds the installed package's model.pt), the pooled
  feature from the `kind='resmem'` extractor (`output='pooled'`) through memjax's image pipeline.

Printed: whether the preprocessing is resmem's (memjax's uint8 crops against resmem's tensors x
255), the max abs difference of score and pooled feature, and the score difference with both
networks on resmem's own pixels (the network alone); then the figures as one JSON line.
"""

import csv
import importlib.util
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string(
  'images',
  os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data', 'lnsim-dev', 'images')),
  'Folder of photos.',
)
flags.DEFINE_integer('num', 100, 'Photos compared (the first, by name).')
flags.DEFINE_integer('batch_size', 20, 'Images per forward pass (both).')


def resmem_side(paths: list[str]) -> dict:
  """resmem's own preprocessing and network: {'pixels', 'score', 'pooled'}."""
  import torch
  from PIL import Image
  from resmem import ResMem, transformer

  model = ResMem(pretrained=True).eval()
  pooled = []
  model.features.avgpool.register_forward_hook(
    lambda module, inputs, output: pooled.append(torch.flatten(output, 1))
  )
  pixels, scores = [], []
  for start in range(0, len(paths), FLAGS.batch_size):
    batch = []
    for path in paths[start : start + FLAGS.batch_size]:
      with Image.open(path) as image:
        batch.append(transformer(image.convert('RGB')))
    x = torch.stack(batch)
    with torch.no_grad():
      scores.append(model(x.view(-1, 3, 227, 227))[:, 0])
    pixels.append(x)
  return {
    'pixels': torch.cat(pixels).numpy(),
    'score': torch.cat(scores).numpy(),
    'pooled': torch.cat(pooled).numpy(),
  }


def memjax_side(paths: list[str], workdir: str) -> dict:
  """memjax predict's scores (configs/resmem_score.py), the extractor's pooled features, the
  uint8 crops, and the extractor object (for the network-only comparison)."""
  import jax

  from configs import resmem_score
  from memjax import predict
  from memjax.features import images
  from memjax.features.resmem import extractor as resmem

  config = resmem_score.get_config()
  listing = os.path.join(workdir, 'inputs.csv')
  with open(listing, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow([config.predict.path_column])
    writer.writerows([p] for p in paths)
  config.predict.input, config.predict.output = listing, os.path.join(workdir, 'scores.csv')
  predict.predict(config, workdir)
  with open(config.predict.output, newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['path'] for r in rows] == paths and not any(r['error'] for r in rows)
  e = resmem.make_extractor(None, 'pooled_score')
  fn = jax.jit(e.forward)
  crops, features = [], []
  for batch in images.image_batches(
    paths, batch_size=FLAGS.batch_size, resize_to=e.resize_to, image_size=e.image_size,
    geometry=e.geometry,
  ):  # fmt: skip
    keep = batch['index'] >= 0
    crops.append(batch['image'][keep])
    features.append(np.asarray(fn(e.params, batch['image']))[keep])
  features = np.concatenate(features)
  return {
    'score': np.array([float(r['score']) for r in rows]),
    'pooled': features[:, :-1],
    'extractor_score': features[:, -1],
    'crops': np.concatenate(crops),
    'forward': lambda x: np.asarray(fn(e.params, x)),
  }


def main(argv):
  del argv
  if importlib.util.find_spec('resmem') is None:
    print('resmem is not installed (pip install resmem: ~490 MB, non-commercial licence); '
          'nothing to compare.')  # fmt: skip
    return
  names = sorted(n for n in os.listdir(FLAGS.images) if n.lower().endswith(('.jpg', '.jpeg')))
  paths = [os.path.join(FLAGS.images, n) for n in names[: FLAGS.num]]
  ref = resmem_side(paths)
  with tempfile.TemporaryDirectory() as workdir:
    ours = memjax_side(paths, workdir)
  levels = np.round(ref['pixels'].transpose(0, 2, 3, 1) * 255.0)
  pixel_diff = np.abs(levels - ours['crops'].astype(np.float64))
  same_pixels = int((pixel_diff.reshape(len(paths), -1).max(axis=1) == 0).sum())
  # The network alone: memjax's forward on resmem's own pixels.
  network = np.concatenate([
    ours['forward'](levels[i : i + FLAGS.batch_size].astype(np.uint8))
    for i in range(0, len(paths), FLAGS.batch_size)
  ])  # fmt: skip
  result = {
    'images': len(paths),
    'folder': FLAGS.images,
    'identical_crops': same_pixels,
    'pixel_max_abs_levels': float(pixel_diff.max()),
    'score_max_abs': float(np.abs(ours['score'] - ref['score']).max()),
    'extractor_score_max_abs': float(np.abs(ours['extractor_score'] - ref['score']).max()),
    'pooled_max_abs': float(np.abs(ours['pooled'] - ref['pooled']).max()),
    'pooled_scale': float(np.abs(ref['pooled']).max()),
    'pooled_relative_l2': float(
      np.linalg.norm(ours['pooled'] - ref['pooled']) / np.linalg.norm(ref['pooled'])
    ),
    'network_score_max_abs': float(np.abs(network[:, -1] - ref['score']).max()),
    'network_pooled_max_abs': float(np.abs(network[:, :-1] - ref['pooled']).max()),
    'score_range': [float(ref['score'].min()), float(ref['score'].max())],
  }
  print(
    f"{len(paths)} photos of {FLAGS.images}: memjax crops identical to resmem transformer's "
    f'on {same_pixels} (max {result["pixel_max_abs_levels"]:.0f} levels); score max abs '
    f'{result["score_max_abs"]:.1e} (memjax predict) / {result["extractor_score_max_abs"]:.1e} '
    f'(extractor); pooled max abs {result["pooled_max_abs"]:.1e} (scale '
    f'{result["pooled_scale"]:.1f}); network alone: score {result["network_score_max_abs"]:.1e}, '
    f'pooled {result["network_pooled_max_abs"]:.1e}'
  )
  print(json.dumps(result))


if __name__ == '__main__':
  app.run(main)
