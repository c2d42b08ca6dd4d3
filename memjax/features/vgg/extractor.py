"""The VGG fc7 extractors (`vgg16_fc7`, `vgg19_fc7`) and the captioning embedding (`vse_semantic`).

`make_vgg_extractor` reads the local weight files (`weights.py`) and wraps `model.fc7` or
`model.semantic_embedding` as an `Extractor` whose preprocessing follows the file's origin.
"""

import functools
import hashlib

import jax
from absl import logging

from memjax.errors import InputError
from memjax.features.extractor import Extractor
from memjax.features.vgg import weights as vgg_weights
from memjax.features.vgg.model import PREPROCESSING, VGGArch, fc7, semantic_embedding


def make_vgg_extractor(
  kind: str, weights_path: str, projection_path: str | None = None, *, arch: VGGArch | None = None
) -> Extractor:
  """VGG fc7 (`vgg16`, `vgg19`: 4096-d) or the captioning embedding (`vse`: VGG19's fc7
  projected, D = 1024 for the released models), with weights from local files.

  Args:
    kind: 'vgg16', 'vgg19' or 'vse'.
    weights_path: Keras `.h5` / `.weights.h5` / `.keras` or torchvision `.pth` VGG weights (VGG19
      for `vse`: Kiros et al. used the original Caffe VGG19, which the Keras file holds); the
      preprocessing follows the file's origin.
    projection_path: `vse` only: `.npz` with `W` [4096, D] (+ optional `b` [D]) or the original
      release's `ff_image_W` / `ff_image_b` (their `coco.npz`, `f30k.npz`, `f8k.npz`).
    arch: overrides the network's shape (tests use narrow networks); its depth must be the
      kind's.

  Returns:
    The extractor (`vgg16_fc7`, `vgg19_fc7` or `vse_semantic`). `weights_sha256` is the VGG
    file's sha256; for `vse`, the sha256 of the two files' sha256 hex digests joined by a newline
    (VGG first), so it changes when either file does.

  Raises:
    InputError: a missing file, a failed published checksum, a file that does not match the
      network (missing/unexpected layers, wrong shapes; named), or a malformed projection
      (`vgg_weights.load_projection`).
  """
  depth = 19 if kind == 'vse' else int(kind[3:])
  arch = _arch(arch, depth)
  weights = vgg_weights.load_vgg_weights(weights_path, arch)
  logging.info(
    'VGG%d: loaded %s weights from %s (sha256 %s).',
    depth,
    weights.origin,
    weights_path,
    weights.sha256,
  )
  if kind != 'vse':
    return Extractor(
      name=f'vgg{depth}_fc7',
      feature_dim=arch.fc_dim,
      params=jax.device_put(weights.params),
      forward=functools.partial(fc7, arch=arch, origin=weights.origin),
      image_size=arch.image_size,
      resize_to=256,
      preprocessing=PREPROCESSING[weights.origin],
      weights_sha256=weights.sha256,
    )
  w, b, projection_sha = vgg_weights.load_projection(projection_path, arch.fc_dim)
  logging.info('VSE: projection %s %s (sha256 %s).', projection_path, w.shape, projection_sha)
  return Extractor(
    name='vse_semantic',
    feature_dim=int(w.shape[1]),
    params=jax.device_put({'vgg': weights.params, 'W': w, 'b': b}),
    forward=functools.partial(semantic_embedding, arch=arch, origin=weights.origin),
    preprocessing=f'{PREPROCESSING[weights.origin]}; VGG19 fc7 L2-normalised, projected '
    f'{arch.fc_dim} -> {w.shape[1]}, L2-normalised',
    image_size=arch.image_size,
    resize_to=256,
    weights_sha256=hashlib.sha256(f'{weights.sha256}\n{projection_sha}'.encode()).hexdigest(),
  )


def _arch(arch: VGGArch | None, depth: int) -> VGGArch:
  if arch is None:
    return VGGArch(depth=depth)
  if arch.depth != depth:
    raise InputError(f'VGG arch has depth {arch.depth}, but depth={depth} was asked for.')
  return arch
