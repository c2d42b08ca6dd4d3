"""The VGG fc7 extractors (`vgg16_fc7`, `vgg19_fc7`) and the captioning embedding (`vse_semantic`).

Each reads its local weight files (`weights.py`) and wraps `model.fc7` or
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
  weights_path: str, depth: int = 16, *, arch: VGGArch | None = None
) -> Extractor:
  """The VGG fc7 extractor (`vgg16_fc7` / `vgg19_fc7`, 4096-d) with weights from a local file.

  Args:
    weights_path: Keras `.h5` / `.weights.h5` / `.keras` or torchvision `.pth` VGG weights; the
      preprocessing follows the file's origin.
    depth: 16 or 19.
    arch: overrides the network's shape (tests use narrow networks); its depth must be `depth`.

  Returns:
    The extractor; `weights_sha256` is the file's sha256.

  Raises:
    InputError: missing file, failed published checksum, or a file that does not match the
      network (missing/unexpected layers, wrong shapes; named).
  """
  arch = _arch(arch, depth)
  weights = vgg_weights.load_vgg_weights(weights_path, arch)
  logging.info(
    'VGG%d: loaded %s weights from %s (sha256 %s).',
    depth,
    weights.origin,
    weights_path,
    weights.sha256,
  )
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


def make_semantic_extractor(
  vgg19_weights_path: str, projection_npz_path: str, *, arch: VGGArch | None = None
) -> Extractor:
  """The captioning embedding extractor (`vse_semantic`, D = 1024 for the released models).

  Args:
    vgg19_weights_path: VGG19 weights (Keras `.h5` family or torchvision `.pth`). Kiros et al.
      used the original Caffe VGG19, which the Keras file holds.
    projection_npz_path: `.npz` with `W` [4096, D] (+ optional `b` [D]) or the original
      release's `ff_image_W` / `ff_image_b` (their `coco.npz`, `f30k.npz`, `f8k.npz`).
    arch: overrides the VGG19 shape (tests use a narrow network).

  Returns:
    The extractor; `weights_sha256` is the sha256 of the two files' sha256 hex digests joined by
    a newline (VGG first), so it changes when either file does.

  Raises:
    InputError: either file missing or malformed (see `make_vgg_extractor`,
      `vgg_weights.load_projection`).
  """
  arch = _arch(arch, 19)
  weights = vgg_weights.load_vgg_weights(vgg19_weights_path, arch)
  w, b, projection_sha = vgg_weights.load_projection(projection_npz_path, arch.fc_dim)
  combined = hashlib.sha256(f'{weights.sha256}\n{projection_sha}'.encode()).hexdigest()
  logging.info(
    'VSE: VGG19 %s weights %s (sha256 %s), projection %s %s (sha256 %s).',
    weights.origin,
    vgg19_weights_path,
    weights.sha256,
    projection_npz_path,
    w.shape,
    projection_sha,
  )
  return Extractor(
    name='vse_semantic',
    feature_dim=int(w.shape[1]),
    params=jax.device_put({'vgg': weights.params, 'W': w, 'b': b}),
    forward=functools.partial(semantic_embedding, arch=arch, origin=weights.origin),
    image_size=arch.image_size,
    resize_to=256,
    preprocessing=f'{PREPROCESSING[weights.origin]}; VGG19 fc7 L2-normalised, projected '
    f'{arch.fc_dim} -> {w.shape[1]}, L2-normalised',
    weights_sha256=combined,
  )


def _arch(arch: VGGArch | None, depth: int) -> VGGArch:
  if arch is None:
    return VGGArch(depth=depth)
  if arch.depth != depth:
    raise InputError(f'VGG arch has depth {arch.depth}, but depth={depth} was asked for.')
  return arch
